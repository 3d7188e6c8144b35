"""The ``monitor:`` section of a model's policy: what ``runway monitor`` judges, and what it does.

Every threshold is named here, with the statistic it applies to; a window is
judged by these and only these (never by a statistic picked from the row count).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runway.core.validation import Strict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``1d``, ``2w`` -> a timedelta; ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r}: expected a duration such as 30m, 12h, 1d or 2w")
    value, unit = float(match.group(1)), match.group(2)
    duration = timedelta(**{_UNITS[unit]: value})
    if duration.total_seconds() <= 0:
        raise ValueError(f"{text!r}: a window must be longer than zero")
    return duration


class FeatureDrift(Strict):
    """When a feature, and the whole input, has drifted from the training data."""

    statistic: Literal["psi", "chi2"] = Field(
        default="psi",
        description="psi: population stability index on the reference bins; chi2: two-sample "
        "chi-square test of the binned counts (both computed and reported, this one decides).",
    )
    psi_threshold: float = Field(default=0.2, gt=0, description="A feature drifts at PSI >= this.")
    p_value: float = Field(
        default=0.01, gt=0, lt=1, description="A feature drifts at chi-square p-value < this."
    )
    drift_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="The input has drifted when at least this share of features drifted.",
    )
    per_feature: Literal["breach", "note"] = Field(
        default="breach",
        description="breach: one drifted feature crosses the threshold on its own; note: a "
        "drifted feature is reported, and only the drift share breaches.",
    )


class PredictionDrift(Strict):
    """When what the model outputs has drifted from what it output on the holdout."""

    psi_threshold: float = Field(
        default=0.2, gt=0, description="Predictions (or a class's scores) drift at PSI >= this."
    )


class QualityLimits(Strict):
    """Rates of bad input in a window, each a breach above its limit."""

    max_missing_increase: float = Field(
        default=0.1, ge=0, le=1, description="Missing rate of a feature above training's, absolute."
    )
    max_out_of_range: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of a numeric feature outside the training range.",
    )
    max_unseen_categories: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of a categorical feature never seen in training.",
    )
    max_rejected: float = Field(
        default=0.05, ge=0, le=1, description="Share of rows the data contract rejected."
    )


class PerformanceFloor(Strict):
    """The live metric (labels joined by key) that must hold."""

    metric: str | None = Field(default=None, description="Defaults to the spec's primary metric.")
    min_value: float | None = Field(
        default=None, description="An absolute floor (ceiling for metrics where lower is better)."
    )
    max_drop: float | None = Field(
        default=0.05, ge=0, description="How far the live metric may fall behind the holdout's."
    )
    min_labelled_rows: int = Field(default=50, ge=1, description="Fewer joined labels: not judged.")


class Trigger(Strict):
    """How many of the last windows must breach before the action runs (N of M)."""

    breaches: int = Field(default=1, ge=1, description="N: windows that breached.")
    of_last: int = Field(
        default=1, ge=1, description="M: the windows looked at, this one included."
    )

    @model_validator(mode="after")
    def _n_of_m(self) -> Trigger:
        if self.breaches > self.of_last:
            raise PydanticCustomError(
                "trigger",
                "breaches ({n}) cannot exceed of_last ({m})",
                {"n": self.breaches, "m": self.of_last},
            )
        return self


class RetrainPlan(Strict):
    """How a triggered retrain runs."""

    mode: Literal["train", "sweep"] = "train"
    trials: int | None = Field(
        default=None, ge=1, description="Sweep trials (default: the spec's)."
    )


class MonitorPolicy(Strict):
    """The ``monitor:`` section of ``registry/<model>.yaml``."""

    window: str = Field(default="1d", description="Window length: 30m, 12h, 1d, 2w ...")
    min_rows: int = Field(
        default=200, ge=1, description="Fewer scored rows: the window is not judged."
    )
    features: FeatureDrift = FeatureDrift()
    predictions: PredictionDrift = PredictionDrift()
    quality: QualityLimits = QualityLimits()
    performance: PerformanceFloor = PerformanceFloor()
    trigger: Trigger = Trigger()
    action: Literal["report", "retrain"] = Field(
        default="report",
        description="report: exit 10 and record; retrain: also retrain and put the new version "
        "through the Staging gates (never Production).",
    )
    retrain: RetrainPlan = RetrainPlan()

    @field_validator("window")
    @classmethod
    def _window(cls, value: Any) -> Any:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("window", "{message}", {"message": str(exc)}) from None
        return value

    @property
    def window_length(self) -> timedelta:
        """The window as a timedelta."""
        return parse_duration(self.window)
