"""The reference profile of a model's training data: what drift checks compare against.

Quantile bins and summary statistics per numeric feature, value frequencies
per categorical or boolean one, the range of a datetime one and how often each
of its cyclic parts occurs (hour, day of week, month: what the model's
``DatetimeParts`` derives), and what the model predicted on the holdout;
logged with every model (``contract/reference_profile.json``) as a
:class:`ReferenceProfile`, read back by monitoring as one.

Versions: ``version`` is the file's schema version. 1 had no
``frequencies_truncated`` and no ``predictions``; 2 has both; 3
(:data:`PROFILE_VERSION`) adds a datetime's ``parts``. Older files read as they
are and dump back exactly as read (a datetime without ``parts`` is not compared).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.kinds import Kind as FeatureKind
from runway.core.columns.kinds import timestamp_series
from runway.core.columns.schema import JsonRecord

PROFILE_VERSION = 3  # 2: prediction profile, frequencies_truncated; 3: datetime parts
# The cyclic parts of a timestamp, with the span that holds each one's whole cycle: a part's
# distribution is comparable only between samples that each span its cycle.
CYCLIC_PARTS: dict[str, int] = {"hour": 1, "dayofweek": 7, "month": 365}  # days
_CYCLE_VALUES = {"hour": range(24), "dayofweek": range(7), "month": range(1, 13)}
PROFILE_BINS = 10
MAX_PROFILE_CATEGORIES = 200


class FeatureProfile(JsonRecord):
    """One distribution: a feature in training, or a class's probability on the holdout."""

    kind: FeatureKind | None = None
    count: int | None = None
    missing_rate: float | None = None
    mean: float | None = None  # numeric: summary, quantiles and quantile bins
    std: float | None = None
    quantiles: dict[str, float] | None = None
    bin_edges: list[float] | None = None
    bin_fractions: list[float] | None = None
    min: str | None = None  # datetime: the range only
    max: str | None = None
    frequencies: dict[str, float] | None = None  # categorical, boolean: the most frequent first
    frequencies_truncated: bool | None = None
    parts: dict[str, FeatureProfile] | None = None  # datetime: each cyclic part's frequencies


class PredictionProfile(FeatureProfile):
    """What the model predicted on the holdout; a classifier's per-class probability bins."""

    scores: dict[str, FeatureProfile] | None = None


class ReferenceProfile(JsonRecord):
    """The reference profile of a model version (``contract/reference_profile.json``)."""

    version: int = 1
    n_rows: int | None = None
    features: dict[str, FeatureProfile]
    predictions: PredictionProfile | None = None

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """A profile from its file's text (any version)."""
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        """The file's text (two-space indent)."""
        return json.dumps(self.to_json_dict(), indent=2)


def infer_profile(
    X: pd.DataFrame,
    features: dict[str, FeatureKind],
    predictions: PredictionProfile | None = None,
) -> ReferenceProfile:
    """A reference profile for drift checks: quantile bins or category frequencies per feature."""
    profile: dict[str, FeatureProfile] = {}
    for name, kind in features.items():
        series = X[name]
        entry: dict[str, object] = {
            "kind": kind,
            "count": int(series.notna().sum()),
            "missing_rate": float(series.isna().mean()),
        }
        if kind == "numeric":
            entry.update(numeric_entry(series.dropna().astype("float64").to_numpy()))
        elif kind == "datetime":  # timestamps move on by nature: their range and cyclic parts
            entry.update(datetime_entry(series))
        else:  # categorical and boolean: how often each value occurs
            entry.update(categorical_entry(series.dropna().astype(str)))
        profile[name] = FeatureProfile.model_validate(entry)
    if predictions is None:
        return ReferenceProfile(version=PROFILE_VERSION, n_rows=len(X), features=profile)
    return ReferenceProfile(
        version=PROFILE_VERSION, n_rows=len(X), features=profile, predictions=predictions
    )


def numeric_entry(values: np.ndarray) -> dict[str, object]:
    """Summary, quantiles and quantile bins of numbers (empty for no values)."""
    if not len(values):
        return {}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)))
    counts = np.histogram(values, bins=edges)[0] if len(edges) > 1 else np.array([len(values)])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "quantiles": {
            str(q): float(np.quantile(values, q)) for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
        },
        "bin_edges": [float(e) for e in edges],
        "bin_fractions": [float(c) / len(values) for c in counts],
    }


def datetime_entry(series: pd.Series) -> dict[str, object]:
    """The range of timestamps, and the frequencies of their cyclic parts (keys ``"0"``, ``"13"``)."""
    stamps = timestamp_series(series)[0].dropna()
    if not len(stamps):
        return {}
    parts = {
        part: {"kind": "categorical", "count": len(stamps), **part_entry(stamps, part)}
        for part in CYCLIC_PARTS
    }
    return {"min": stamps.min().isoformat(), "max": stamps.max().isoformat(), "parts": parts}


def part_values(stamps: pd.Series, part: str) -> pd.Series:
    """One part of timestamps as text labels (``"0"`` .. ``"23"`` for hours), NaN kept."""
    values = getattr(stamps.dt, part)
    return values.astype("Int64").astype(str).where(values.notna())


def part_entry(stamps: pd.Series, part: str) -> dict[str, object]:
    """Frequencies of one part over its whole cycle (hour 0 to 23, zeros kept), in order.

    Every value of the cycle is a bin, so a window's night hours show as hours
    (``0``, ``1``), not as ``(unseen)``, when training saw only office hours.
    """
    values = getattr(stamps.dt, part).astype("int64")
    freq = values.value_counts(normalize=True)
    return {"frequencies": {str(k): float(freq.get(k, 0.0)) for k in _CYCLE_VALUES[part]}}


def categorical_entry(values: pd.Series) -> dict[str, object]:
    """Category frequencies (the most frequent first, at most MAX_PROFILE_CATEGORIES)."""
    freq = values.value_counts(normalize=True)
    return {
        "frequencies": {str(k): float(v) for k, v in freq.iloc[:MAX_PROFILE_CATEGORIES].items()},
        "frequencies_truncated": bool(len(freq) > MAX_PROFILE_CATEGORIES),
    }


def prediction_profile(fitted: Any, X: pd.DataFrame) -> PredictionProfile:
    """What the model predicts on ``X`` (the holdout): the reference for prediction drift.

    Classifiers: the predicted class frequencies, and quantile bins of each
    class's probability (``scores``); regressors: quantile bins of the values.
    """
    predicted = np.asarray(fitted.predict(X))
    classes = getattr(fitted, "classes_", None)
    if classes is None:
        return PredictionProfile.model_validate(
            {
                "kind": "numeric",
                "count": len(predicted),
                **numeric_entry(predicted.astype("float64")),
            }
        )
    doc: dict[str, object] = {
        "kind": "categorical",
        "count": len(predicted),
        **categorical_entry(pd.Series(predicted).astype(str)),
    }
    if hasattr(fitted, "predict_proba"):
        probabilities = np.asarray(fitted.predict_proba(X), dtype="float64")
        doc["scores"] = {
            str(label): {"count": len(predicted), **numeric_entry(probabilities[:, i])}
            for i, label in enumerate(classes)
        }
    return PredictionProfile.model_validate(doc)
