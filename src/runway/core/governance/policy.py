"""Promotion policies (``registry/<model>.yaml``): the gates, the reviewers, the input rules.

Validated like specs (strict, frozen, every problem named by file and field).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runway.core.columns.input_policy import InputPolicy
from runway.core.governance.monitor_policy import MonitorPolicy
from runway.core.training.catalog import METRICS
from runway.core.validation import Strict, fail, format_validation_error, hint, read_mapping
from runway.errors import SpecError

log = logging.getLogger(__name__)

_THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=|>|<)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


class Threshold(Strict):
    """``<metric> <op> <value>`` on the candidate's holdout metrics."""

    metric: str
    op: Literal[">=", ">", "<=", "<"]
    value: float

    def holds(self, observed: float) -> bool:
        """Whether ``observed`` satisfies the threshold."""
        return {
            ">=": observed >= self.value,
            ">": observed > self.value,
            "<=": observed <= self.value,
            "<": observed < self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class Improvement(Strict):
    """How much better than the current Production version, on the same data."""

    metric: str | None = Field(
        default=None, description="Defaults to the candidate's primary metric."
    )
    min_absolute: float | None = Field(default=None, description="e.g. 0.002 (roc_auc points).")
    min_relative: float | None = Field(default=None, description="e.g. 0.01 for 1% better.")


class StagingGates(Strict):
    """What a version must show to enter Staging (and, again, Production)."""

    thresholds: tuple[Threshold, ...] = Field(
        default=(), description="Strings such as 'roc_auc >= 0.95'."
    )
    improvement: Improvement | None = None
    allow_breaking_signature: bool = Field(
        default=False,
        description="Let the candidate's required input columns/types differ from Production's.",
    )
    max_latency_ms: float | None = Field(
        default=None, gt=0, description="Median single-row predict latency, in-process."
    )
    max_model_size_mb: float | None = Field(default=None, gt=0)

    @field_validator("thresholds", mode="before")
    @classmethod
    def _parse_thresholds(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        parsed = []
        for item in value:
            if isinstance(item, str):
                match = _THRESHOLD.match(item)
                if not match:
                    raise PydanticCustomError(
                        "threshold",
                        "{message}",
                        {
                            "message": f"{item!r}: expected '<metric> <op> <number>', op one of "
                            ">= > <= <"
                        },
                    )
                metric, op, number = match.groups()
                item = {"metric": metric, "op": op, "value": float(number)}
            parsed.append(item)
        return parsed


class ProductionGates(Strict):
    """Who may approve a version into Production."""

    reviewers: tuple[str, ...] = Field(min_length=1, description="Names allowed to approve.")
    four_eyes: bool = Field(
        default=True, description="The reviewer may not be the author of the candidate's run."
    )


class OnnxPolicy(Strict):
    """Whether each newly registered version is converted to ONNX (``runway onnx convert``) at once."""

    on_register: bool = Field(
        default=False,
        description="After `train --register`, `sweep` and `retrain` register a version, make its "
        "ONNX version (registered as the next version, stage None).",
    )
    required: bool = Field(
        default=False,
        description="A version with no faithful twin fails the command (exit 6); otherwise the "
        "refusal is a warning. The source version stays registered either way.",
    )


class PromotionPolicy(Strict):
    """The gates of one registered model: ``registry/<model>.yaml``."""

    model: str = Field(min_length=1, description="The registered model name.")
    description: str = ""
    staging: StagingGates = StagingGates()
    production: ProductionGates
    input: InputPolicy = Field(
        default_factory=InputPolicy,
        description="Input checks against the data contract, when serving and batch scoring.",
    )
    monitor: MonitorPolicy = Field(
        default_factory=MonitorPolicy,
        description="What `runway monitor` judges in each window of the prediction log, and does.",
    )
    onnx: OnnxPolicy = Field(
        default_factory=OnnxPolicy,
        description="Convert each new version to ONNX on registration (runway onnx convert).",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_onnx_key(cls, data: Any) -> Any:
        """``lighten:``, the section's name before ``onnx:``, is read as ``onnx:``."""
        if not isinstance(data, dict) or "lighten" not in data:
            return data
        if "onnx" in data:
            fail("lighten", "give onnx: only (lighten: is its old name)")
        log.warning(
            "policy of %s: `lighten:` is now `onnx:`; the old key still works", data.get("model")
        )
        return {("onnx" if k == "lighten" else k): v for k, v in data.items()}

    @model_validator(mode="after")
    def _known_metrics(self) -> PromotionPolicy:
        for i, rule in enumerate(self.staging.thresholds):
            if rule.metric not in METRICS:
                fail(
                    f"staging.thresholds.{i}",
                    f"unknown metric {rule.metric!r}{hint(rule.metric, METRICS)}",
                )
        improvement = self.staging.improvement
        if improvement is not None:
            if improvement.metric is not None and improvement.metric not in METRICS:
                fail(
                    "staging.improvement.metric",
                    f"unknown metric {improvement.metric!r}{hint(improvement.metric, METRICS)}",
                )
            if improvement.min_absolute is None and improvement.min_relative is None:
                fail("staging.improvement", "give min_absolute and/or min_relative")
        metric = self.monitor.performance.metric
        if metric is not None and metric not in METRICS:
            fail("monitor.performance.metric", f"unknown metric {metric!r}{hint(metric, METRICS)}")
        return self


def policy_path(model: str, registry_dir: str | Path) -> Path:
    """Where ``model``'s promotion policy lives under ``registry_dir``."""
    return Path(registry_dir) / f"{model}.yaml"


def read_policy(
    model: str, registry_dir: str | Path, policy_file: str | Path | None = None
) -> PromotionPolicy:
    """The policy that judges ``model``: ``policy_file``, else ``<registry_dir>/<model>.yaml``.

    Raises:
        SpecError: the file is missing or invalid, or it is another model's policy.
    """
    source = Path(policy_file) if policy_file else policy_path(model, registry_dir)
    policy = load_policy(source)
    if policy.model != model:
        raise SpecError(f"{source}: model: policy is for {policy.model!r}, not {model!r}")
    return policy


def load_policy(path: str | Path) -> PromotionPolicy:
    """Read and validate a promotion policy file.

    Raises:
        SpecError: the file is missing, is not YAML, or does not validate.
    """
    path = Path(path)
    doc = read_mapping(path, "policy file not found (one per model: registry/<model>.yaml)")
    try:
        return PromotionPolicy.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, str(path))) from None


def parse_policy(text: str, source: str) -> PromotionPolicy:
    """Validate a policy given as YAML text (the team's, stored on the server); errors name ``source``.

    Raises:
        SpecError: not YAML, not a mapping, or it does not validate.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{source}: expected a mapping at the top level")
    try:
        return PromotionPolicy.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None


def policy_sha256(policy: PromotionPolicy) -> str:
    """The hash of a validated policy (its canonical JSON): what a promotion seals and tags.

    Two files that say the same thing (comments, order, spacing aside) hash alike.
    """
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
