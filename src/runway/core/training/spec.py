"""Experiment specs: YAML in, strict frozen pydantic models out.

The spec is the only file format of ours that describes a model; every problem
is reported as ``<file>: <field.path>: <what was expected>`` before any run
starts. Promotion policies live in :mod:`runway.core.governance.policy`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runway.core.columns.kinds import DATETIME_PARTS, DatetimePart, Kind
from runway.core.documents import Document
from runway.core.training.catalog import (
    BINARY_ONLY_METRICS,
    ESTIMATORS,
    METRICS,
    SKLEARN_DATASETS,
    Direction,
    Task,
)
from runway.core.validation import (
    Strict,
    fail,
    fail_here,
    format_validation_error,
    hint,
    read_mapping,
)
from runway.errors import SpecError

FeatureKind = Kind  # numeric | boolean | categorical | datetime (runway.core.columns.kinds)
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
SPEC_ARTIFACT = "spec/spec.yaml"  # the resolved spec, as every run records it


def _features_schema(schema: dict[str, Any]) -> None:
    """The JSON schema says what the validator takes: a mapping, or the word 'infer'."""
    schema["default"] = "infer"
    schema["anyOf"] = [*schema.get("anyOf", []), {"const": "infer"}]


class DataSpec(Strict):
    """Where the rows come from and which columns matter."""

    source: str = Field(
        description="A .csv/.parquet path (relative to the working directory) or "
        "'sklearn:<name>' for a dataset scikit-learn ships: " + ", ".join(sorted(SKLEARN_DATASETS)),
    )
    target: str = Field(min_length=1, description="The column to predict.")
    features: dict[str, FeatureKind] | None = Field(
        default=None,
        description="Feature columns and their kinds (numeric, boolean, categorical, datetime), "
        "or 'infer' (every other column: numbers are numeric, true/false columns boolean, "
        "ISO 8601 dates and timestamps datetime, everything else categorical).",
        json_schema_extra=_features_schema,
    )
    drop: tuple[str, ...] = Field(
        default=(), description="Columns to ignore when features are inferred (ids, leaks)."
    )
    positive_class: int | str | None = Field(
        default=None,
        description="Binary classification: the class f1, precision and recall are about "
        "(a label, or its name in class_names). Default: scikit-learn's convention, the "
        "greater of the two labels (1 of 0/1, 'yes' of no/yes).",
    )
    class_names: dict[int | str, str] | None = Field(
        default=None,
        description="Names for the target's labels (0: malignant), used in plots and in "
        "batch scoring's proba_<class> columns; predictions stay the labels. Default: the "
        "names a bundled scikit-learn dataset ships, else the labels themselves.",
    )

    @field_validator("features", mode="before")
    @classmethod
    def _infer_keyword(cls, value: Any) -> Any:
        if value == "infer":
            return None
        if isinstance(value, str):
            raise PydanticCustomError(
                "features", "expected 'infer' or a mapping of column -> numeric|categorical"
            )
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value.startswith("sklearn:"):
            name = value.removeprefix("sklearn:")
            if name not in SKLEARN_DATASETS:
                known = ", ".join(sorted(SKLEARN_DATASETS))
                raise PydanticCustomError(
                    "source",
                    "{message}",
                    {"message": f"unknown scikit-learn dataset {name!r}; expected one of {known}"},
                )
        elif not value.lower().endswith(DATA_SUFFIXES):
            raise PydanticCustomError(
                "source",
                "expected a path ending in .csv, .parquet or .pq, or 'sklearn:<name>'",
            )
        return value


class NumericPreprocessing(Strict):
    """How numeric columns are imputed and scaled."""

    impute: Literal["mean", "median", "most_frequent", "none"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class ManyLevels(Strict):
    """Categoricals with many distinct values: one-hot encoding makes a column per value."""

    threshold: int = Field(
        default=50,
        ge=2,
        description="A categorical with more distinct values than this in the training "
        "split is many-level: `spec check` and `train` warn about it.",
    )
    encode: Literal["same", "target"] = Field(
        default="same",
        description="How many-level categoricals are encoded: 'same' as the others "
        "(categorical.encode), or 'target' (scikit-learn's TargetEncoder: the target mean "
        "per value, cross-fitted; unseen values get the overall mean).",
    )


class CategoricalPreprocessing(Strict):
    """How categorical columns are imputed and encoded."""

    impute: Literal["most_frequent", "constant", "none"] = "constant"
    encode: Literal["onehot", "ordinal", "target"] = "onehot"
    min_frequency: int | None = Field(
        default=None, ge=1, description="Group categories rarer than this into one column."
    )
    many_levels: ManyLevels = ManyLevels()


class BooleanPreprocessing(Strict):
    """Boolean columns become 1.0/0.0; a missing value is imputed."""

    impute: Literal["mean", "most_frequent", "none"] = Field(
        default="mean",
        description="mean: the share of true in training (a missing value scores between "
        "false and true); most_frequent; none (the estimator must take NaN).",
    )


class DatetimePreprocessing(Strict):
    """Datetime columns become numeric parts inside the model (clients send the timestamp)."""

    parts: tuple[DatetimePart, ...] = Field(
        default=DATETIME_PARTS,
        min_length=1,
        description="Parts derived from each timestamp (UTC); elapsed_days counts from the "
        "earliest training timestamp.",
    )
    impute: Literal["mean", "median", "most_frequent", "none"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class PreprocessingSpec(Strict):
    """Per-kind preprocessing; unseen categories are always tolerated at predict time."""

    numeric: NumericPreprocessing = NumericPreprocessing()
    boolean: BooleanPreprocessing = BooleanPreprocessing()
    categorical: CategoricalPreprocessing = CategoricalPreprocessing()
    datetime: DatetimePreprocessing = DatetimePreprocessing()


class EstimatorSpec(Strict):
    """An allowed scikit-learn estimator, by class name, and its constructor params."""

    name: str = Field(description="One of: " + ", ".join(sorted(ESTIMATORS)))
    params: dict[str, Any] = Field(default_factory=dict)


class SplitSpec(Strict):
    """Holdout and cross-validation settings; one seed drives both."""

    holdout: float = Field(default=0.2, gt=0.0, lt=1.0, description="Fraction held out.")
    cv_folds: int = Field(default=5, ge=2, le=20)
    seed: int = Field(default=42, ge=0)
    stratify: bool = Field(default=True, description="Stratify by class (classification).")


class PrimaryMetric(Strict):
    """The metric runs are compared on, and which way is better."""

    name: str
    direction: Direction | None = Field(
        default=None, description="Defaults to the metric's natural direction."
    )


class ParamSpace(Strict):
    """One dimension of a search space: an int, a float (linear or log) or a choice."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: tuple[Any, ...] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                fail_here("choices", "a categorical dimension needs a non-empty list of choices")
            if self.low is not None or self.high is not None or self.log:
                fail_here("type", "a categorical dimension takes choices, not low/high/log")
            return self
        if self.choices is not None:
            fail_here("choices", f"choices are for categorical dimensions, this one is {self.type}")
        if self.low is None or self.high is None:
            fail_here(
                "low" if self.low is None else "high",
                f"an {self.type} dimension needs low and high",
            )
        if self.low > self.high:
            fail_here("low", f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.log and self.low <= 0:
            fail_here("low", "a log-scaled dimension needs low > 0")
        if self.log and self.step is not None and self.type == "float":
            fail_here("step", "a log-scaled float dimension cannot have a step")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            fail_here("low", "an int dimension needs whole-number bounds")
        return self


class SweepSpec(Strict):
    """An Optuna search around the spec's pipeline.

    ``space`` keys are the pipeline's ``step__param`` names (``model__max_depth``,
    ``preprocess__num__impute__strategy``). ``estimators`` makes the estimator
    itself a choice, each with its own sub-space; ``space`` then holds what the
    choices share.
    """

    trials: int = Field(default=20, ge=1, description="Number of trials (all workers together).")
    timeout: float | None = Field(default=None, gt=0, description="Time budget in seconds.")
    seed: int | None = Field(
        default=None, ge=0, description="Sampler seed; defaults to split.seed."
    )
    pruning: bool = Field(default=True, description="Median pruning on per-fold scores.")
    space: dict[str, ParamSpace] = Field(default_factory=dict)
    estimators: dict[str, dict[str, ParamSpace]] | None = None


class ExperimentSpec(Strict):
    """One problem: data, pipeline, evaluation and where runs are tracked."""

    experiment: str = Field(min_length=1, description="MLflow experiment name.")
    description: str = ""
    task: Task
    data: DataSpec
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    estimator: EstimatorSpec
    split: SplitSpec = SplitSpec()
    metrics: tuple[str, ...] = Field(min_length=1)
    primary_metric: PrimaryMetric
    model_name: str | None = Field(
        default=None, description="Registered model name; defaults to the experiment name."
    )
    tags: dict[str, str] = Field(default_factory=dict)
    sweep: SweepSpec | None = Field(default=None, description="Search space for `runway sweep`.")

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        _check_estimator(self.estimator, self.task)
        for i, metric in enumerate(self.metrics):
            entry = METRICS.get(metric)
            if entry is None:
                fail(f"metrics.{i}", f"unknown metric {metric!r}{hint(metric, METRICS)}")
            if entry.task != self.task:
                fail(f"metrics.{i}", f"{metric!r} is a {entry.task} metric, task is {self.task}")
        primary = self.primary_metric
        if primary.name not in self.metrics:
            fail("primary_metric.name", f"{primary.name!r} must also be listed in metrics")
        natural = METRICS[primary.name].direction
        if primary.direction is None:
            object.__setattr__(
                self, "primary_metric", PrimaryMetric(name=primary.name, direction=natural)
            )
        elif primary.direction != natural:
            fail("primary_metric.direction", f"{primary.name!r} is better when it is {natural}d")
        if self.sweep is not None:
            _check_sweep(self.sweep, self.estimator, self.task)
        if self.task != "classification":
            for name in ("positive_class", "class_names"):
                if getattr(self.data, name) is not None:
                    fail(f"data.{name}", f"only for classification, task is {self.task}")
        if self.data.features is not None:
            if self.data.target in self.data.features:
                fail(f"data.features.{self.data.target}", "the target cannot be a feature")
            if not self.data.features:
                fail("data.features", "expected at least one feature column, or 'infer'")
        return self

    @property
    def registered_model_name(self) -> str:
        """The name versions of this spec's model are registered under."""
        return self.model_name or self.experiment

    @property
    def binary_only_metrics(self) -> tuple[str, ...]:
        """Metrics that need exactly two classes (checked once the data is known)."""
        return tuple(m for m in self.metrics if m in BINARY_ONLY_METRICS)

    def spec_hash(self) -> str:
        """A stable hash of the resolved spec: same content, same hash."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_yaml(self) -> str:
        """The resolved spec as YAML (what a run records as its artifact)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _check_sweep(sweep: SweepSpec, estimator: EstimatorSpec, task: Task) -> None:
    if not sweep.space and not sweep.estimators:
        fail("sweep.space", "the search space is empty; give space and/or estimators")
    if sweep.estimators is None:
        _check_space_names(sweep.space, "sweep.space", estimator.name)
        return
    _check_space_names(sweep.space, "sweep.space", None)
    for name, sub in sweep.estimators.items():
        _check_estimator(EstimatorSpec(name=name), task, path=f"sweep.estimators.{name}")
        _check_space_names(sub, f"sweep.estimators.{name}", name)


def _check_space_names(space: dict[str, ParamSpace], path: str, estimator: str | None) -> None:
    """``model__*`` names must be params of the estimator; ``preprocess__*`` ones are
    checked against a built pipeline by the sweep (they depend on the columns)."""
    for key in space:
        step, sep, param = key.partition("__")
        if not sep or step not in {"model", "preprocess"}:
            fail(
                f"{path}.{key}", "expected a step__param name starting with model__ or preprocess__"
            )
        if step == "model":
            if estimator is None:
                fail(f"{path}.{key}", "model params belong under sweep.estimators.<name>")
            known = ESTIMATORS[estimator].load()().get_params(deep=False)
            if param not in known:
                fail(f"{path}.{key}", f"unknown field for {estimator}{hint(param, known)}")


def _check_estimator(spec: EstimatorSpec, task: Task, path: str = "estimator.name") -> None:
    entry = ESTIMATORS.get(spec.name)
    if entry is None:
        allowed = ", ".join(sorted(n for n, e in ESTIMATORS.items() if e.task == task))
        fail(
            path,
            f"{spec.name!r} is not on the allow-list{hint(spec.name, ESTIMATORS)}; "
            f"{task} estimators: {allowed}",
        )
    if entry.task != task:
        fail(path, f"{spec.name} is a {entry.task} estimator, task is {task}")
    estimator = entry.load()()
    known = estimator.get_params(deep=False)
    for key in spec.params:
        if key not in known:
            fail(f"estimator.params.{key}", f"unknown field{hint(key, known)}")
    estimator.set_params(**spec.params)
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        bad = next((k for k in spec.params if repr(k) in str(exc) or k in str(exc)), None)
        fail(f"estimator.params.{bad}" if bad else "estimator.params", str(exc))


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> Document:
    """Turn ``key.path=value`` strings into a mapping; values are parsed as YAML scalars."""
    overrides: Document = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {pair!r}: expected key.path=value")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise SpecError(f"--set {pair!r}: value is not valid YAML ({exc})") from exc
    return overrides


def _apply_override(doc: Document, dotted: str, value: object) -> None:
    node = doc
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise SpecError(f"--set {dotted}: {where} is not a mapping")
        node = child
    node[parts[-1]] = value


def load_spec(path: str | Path, overrides: Document | None = None) -> ExperimentSpec:
    """Read, override and validate a spec file.

    Raises:
        SpecError: the file is missing, is not YAML, or does not validate; the
            message names the file and each field path.
    """
    path = Path(path)
    doc = read_mapping(path, "spec file not found")
    for key, value in (overrides or {}).items():
        _apply_override(doc, key, value)
    return spec_from_dict(doc, source=str(path))


def spec_target(path: str | Path) -> str:
    """A logged spec's target, unvalidated: validating imports scikit-learn (the monitor's ~1 s)."""
    path = Path(path)
    data = read_mapping(path, "spec file not found").get("data")
    target = data.get("target") if isinstance(data, dict) else None
    if not isinstance(target, str) or not target:
        raise SpecError(f"{path}: data.target: expected the target column's name")
    return target


def spec_from_dict(doc: Document, source: str = "<spec>") -> ExperimentSpec:
    """Validate an in-memory spec; errors name ``source`` like a file."""
    try:
        return ExperimentSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None


def spec_schema() -> Document:
    """The JSON schema of an experiment spec."""
    return ExperimentSpec.model_json_schema()
