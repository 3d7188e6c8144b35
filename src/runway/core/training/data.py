"""Data in: loading, checking and splitting.

Knows nothing of MLflow. Every check fails with a :class:`DataError` naming the
source, the column (and row, where there is one) and what was expected.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from runway.core.columns.kinds import (
    BOOLEAN_EXPECTED,
    DATETIME_EXPECTED,
    boolean_series,
    looks_boolean,
    looks_like_timestamps,
    timestamp_series,
)
from runway.core.columns.schema import TargetInfo
from runway.core.training.catalog import SKLEARN_DATASETS
from runway.core.training.spec import DataSpec, ExperimentSpec, FeatureKind
from runway.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A loaded table and where it came from."""

    frame: pd.DataFrame
    source: str
    name: str
    # names a bundled dataset gives its integer labels (breast_cancer: 0 malignant, 1 benign)
    class_names: dict[Any, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """A content hash of the rows (see :func:`frame_digest`)."""
        return frame_digest(self.frame)


def frame_digest(frame: pd.DataFrame) -> str:
    """A content hash of a table: column names, dtypes and values, not the index."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    h = hashlib.sha256(hashed.tobytes())
    h.update(",".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Train and holdout partitions of the features and target."""

    X_train: pd.DataFrame
    X_holdout: pd.DataFrame
    y_train: pd.Series
    y_holdout: pd.Series
    features: dict[str, FeatureKind] = field(default_factory=dict)
    # dtypes as read, before numerics became float64: an int32 column stays "int32" here
    source_dtypes: dict[str, str] = field(default_factory=dict)
    target: Target | None = None  # classification: classes, names, positive class
    many_levels: tuple[str, ...] = ()  # categoricals with more levels than the threshold
    notes: tuple[str, ...] = ()  # what `infer` decided and what to look at, for people

    @property
    def pos_label(self) -> Any:
        """The positive class of a binary target (None otherwise): what f1/precision/recall use."""
        return self.target.positive if self.target is not None else None

    def kind(self, kind: FeatureKind) -> list[str]:
        """Feature columns of one kind, in order."""
        return [c for c, k in self.features.items() if k == kind]

    @property
    def numeric(self) -> list[str]:
        """Numeric feature columns, in order."""
        return self.kind("numeric")

    @property
    def categorical(self) -> list[str]:
        """Categorical feature columns, in order."""
        return self.kind("categorical")

    def columns_by_kind(self) -> dict[str, Any]:
        """Keyword arguments of :func:`runway.core.training.pipeline.build_pipeline` for these columns."""
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "boolean": self.kind("boolean"),
            "datetime": self.kind("datetime"),
            "many_levels": self.many_levels,
        }


@dataclass(frozen=True)
class Target:
    """A classification target: its labels, their names, and the positive class of a binary one."""

    classes: tuple[Any, ...]
    names: dict[Any, str]
    positive: Any = None  # binary only: the label f1/precision/recall are about

    def name(self, label: Any) -> str:
        """The display name of ``label`` (the label itself when it has none)."""
        return self.names.get(label, str(label))

    def shown(self, label: Any) -> str:
        """``1 (churned)``, or ``1`` alone when the label has no other name (not ``1 (1)``)."""
        name = self.name(label)
        return repr(label) if name == str(label) else f"{label!r} ({name})"

    def info(self) -> TargetInfo:
        """The contract's ``target`` section."""
        return TargetInfo(
            classes=[_plain(c) for c in self.classes],
            class_names=[self.name(c) for c in self.classes],
            positive_class=_plain(self.positive),
        )


def load_dataset(spec: DataSpec) -> Dataset:
    """Load the rows a spec points at (a CSV/Parquet file or a bundled dataset)."""
    source = spec.source
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        loader = getattr(importlib.import_module("sklearn.datasets"), SKLEARN_DATASETS[name])
        bunch = loader(as_frame=True)
        names = getattr(bunch, "target_names", None)
        labels = {}
        if names is not None and pd.api.types.is_integer_dtype(bunch.frame["target"]):
            labels = {i: str(n) for i, n in enumerate(names) if str(n) != str(i)}
        return Dataset(frame=bunch.frame, source=source, name=name, class_names=labels)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(
            f"{source}: data file not found (relative paths are read from {Path.cwd()})"
        )
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except Exception as exc:  # whatever the reader raises, the file is the problem
        raise DataError(f"{source}: cannot read as {path.suffix[1:]}: {exc}") from exc
    return Dataset(frame=frame, source=str(path), name=path.stem)


def resolve_features(spec: DataSpec, frame: pd.DataFrame, source: str) -> dict[str, FeatureKind]:
    """The feature columns and their kinds, declared or inferred, checked against the data."""
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DataError(
            f"{source}: dataset is empty ({frame.shape[0]} rows, {frame.shape[1]} columns)"
        )
    columns = list(frame.columns)
    if spec.target not in columns:
        raise DataError(
            f"{source}: target column {spec.target!r} not found; columns are: {_preview(columns)}"
        )
    if spec.features is None:
        missing_drop = [c for c in spec.drop if c not in columns]
        if missing_drop:
            raise DataError(f"{source}: data.drop names unknown column(s) {missing_drop}")
        return {c: infer_kind(frame[c]) for c in columns if c != spec.target and c not in spec.drop}
    missing = [c for c in spec.features if c not in columns]
    if missing:
        raise DataError(
            f"{source}: feature column(s) {missing} not found; columns are: {_preview(columns)}"
        )
    for column, kind in spec.features.items():
        if kind == "numeric":
            _refuse_booleans(frame[column], source, column)
            _require_numeric(frame[column], source, column)
    return dict(spec.features)


def infer_kind(series: pd.Series) -> FeatureKind:
    """What ``features: infer`` makes of a column: numbers, true/false, ISO timestamps, or text."""
    if looks_boolean(series):
        return "boolean"
    if _is_numeric(series):
        return "numeric"
    if looks_like_timestamps(series):
        return "datetime"
    return "categorical"


def inference_notes(spec: DataSpec, features: dict[str, FeatureKind]) -> list[str]:
    """One line per column ``infer`` did not make numeric or categorical, saying why."""
    if spec.features is not None:
        return []
    notes = []
    for column, kind in features.items():
        if kind == "datetime":
            notes.append(
                f"column {column!r}: ISO 8601 timestamps, inferred as datetime (the model "
                "derives its parts: preprocessing.datetime.parts); declare it categorical "
                "in data.features to keep it as text"
            )
        elif kind == "boolean":
            notes.append(f"column {column!r}: true/false values, inferred as boolean")
    return notes


def prepare(spec: ExperimentSpec, dataset: Dataset) -> Split:
    """Check the rows against the spec and split them, deterministically by seed."""
    frame = dataset.frame
    features = resolve_features(spec.data, frame, dataset.source)
    target = frame[spec.data.target]
    missing_target = target.isna()
    if missing_target.all():
        raise DataError(f"{dataset.source}: target column {spec.data.target!r} has no values")
    if missing_target.any():
        log.warning(
            "%s: dropping %d row(s) with no %r value",
            dataset.source,
            int(missing_target.sum()),
            spec.data.target,
        )
        frame = frame.loc[~missing_target]
        target = target.loc[~missing_target]
    X = frame[list(features)].copy()
    source_dtypes = {column: str(X[column].dtype) for column in features}
    for column, kind in features.items():
        X[column] = canonical_training_column(X[column], kind, dataset.source)
    stratify, classes = None, None
    if spec.task == "classification":
        _check_classes(target, spec, dataset.source)
        classes = resolve_target(spec.data, target, dataset)
        stratify = target if spec.split.stratify else None
    else:
        _require_numeric(target, dataset.source, spec.data.target, role="target")
        target = pd.to_numeric(target).astype("float64")
    n_holdout = math.ceil(len(X) * spec.split.holdout)
    if len(X) - n_holdout < spec.split.cv_folds:
        raise DataError(
            f"{dataset.source}: {len(X)} rows leave {len(X) - n_holdout} for training, "
            f"fewer than split.cv_folds={spec.split.cv_folds}"
        )
    X_train, X_holdout, y_train, y_holdout = train_test_split(
        X,
        target,
        test_size=spec.split.holdout,
        random_state=spec.split.seed,
        stratify=stratify,
    )
    threshold = spec.preprocessing.categorical.many_levels.threshold
    levels = level_counts(X_train, features)
    many = tuple(c for c, n in levels.items() if n > threshold)
    notes = [
        *inference_notes(spec.data, features),
        *many_level_notes(X_train, levels, threshold),
    ]
    return Split(
        X_train,
        X_holdout,
        y_train,
        y_holdout,
        features,
        source_dtypes,
        classes,
        many,
        tuple(notes),
    )


def canonical_training_column(series: pd.Series, kind: FeatureKind, source: str) -> pd.Series:
    """A training column in the form the model is fitted on, and every path scores with.

    numeric: float64 (an integer column cannot hold a missing value at predict
    time, and MLflow's schema would refuse the float it becomes); boolean: object
    ``True``/``False``/``None``; datetime: naive UTC ``datetime64[us]``; categorical:
    object text with NaN for missing (what SimpleImputer and MLflow's signature
    inference both understand, whatever pandas' string default).
    """
    name = series.name
    if kind == "numeric":
        return pd.to_numeric(series).astype("float64")
    if kind == "boolean":
        values, bad = boolean_series(series)
        _refuse(bad, series, source, f"column {name!r} is boolean: {BOOLEAN_EXPECTED}")
        return values
    if kind == "datetime":
        stamps, bad = timestamp_series(series)
        _refuse(bad, series, source, f"column {name!r} is datetime: {DATETIME_EXPECTED}")
        return stamps
    present = series.notna()
    text = series.astype("object").where(present, np.nan)
    return text.where(~present, text.astype(str)).astype(object)


def _refuse(bad: np.ndarray, series: pd.Series, source: str, what: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {what}, but row {row} holds {series.iloc[row]!r} "
            f"({int(bad.sum())} such value(s))"
        )


def level_counts(X: pd.DataFrame, features: dict[str, FeatureKind]) -> dict[str, int]:
    """Distinct values per categorical column."""
    return {c: int(X[c].nunique(dropna=True)) for c, k in features.items() if k == "categorical"}


def many_level_notes(X: pd.DataFrame, levels: dict[str, int], threshold: int) -> list[str]:
    """A warning per categorical with more levels than ``threshold``, or nearly one per row."""
    notes = []
    for column, n in levels.items():
        present = int(X[column].notna().sum())
        unique = n >= 20 and present and n / present > 0.5
        if n <= threshold and not unique:
            continue
        why = f"{n:,} distinct values in {present:,} training rows"
        why += " (nearly one per row)" if unique else f" (more than {threshold})"
        notes.append(
            f"column {column!r}: {why}: one-hot encoding makes a column per value and new "
            "rows often hold values never seen in training. If it is an identifier, leave it "
            "out (data.drop); if it holds timestamps, declare it datetime; otherwise set "
            "preprocessing.categorical.min_frequency or preprocessing.categorical.many_levels."
            "encode: target"
        )
    return notes


def resolve_target(spec: DataSpec, target: pd.Series, dataset: Dataset) -> Target:
    """The labels, their names (spec, else the bundled dataset's) and the positive class."""
    classes = tuple(_plain(c) for c in sorted(target.dropna().unique()))
    given = {str(k): v for k, v in (spec.class_names or {}).items()}
    unknown = [k for k in given if k not in {str(c) for c in classes}]
    if unknown:
        raise DataError(
            f"{dataset.source}: data.class_names names label(s) {unknown} the target "
            f"{spec.target!r} does not have; its labels are {list(classes)}"
        )
    shipped = {str(k): v for k, v in dataset.class_names.items()}
    names = {c: given.get(str(c), shipped.get(str(c), str(c))) for c in classes}
    positive = None
    if len(classes) == 2:
        positive = classes[1]  # scikit-learn's convention: the greater label
        wanted = spec.positive_class
        if wanted is not None:
            matches = [c for c in classes if str(c) == str(wanted) or names[c] == str(wanted)]
            if not matches:
                raise DataError(
                    f"{dataset.source}: data.positive_class {wanted!r} is not a class of "
                    f"{spec.target!r}; classes are "
                    + ", ".join(
                        f"{c!r} ({names[c]})" if names[c] != str(c) else repr(c) for c in classes
                    )
                )
            positive = matches[0]
    elif spec.positive_class is not None:
        raise DataError(
            f"{dataset.source}: data.positive_class is for binary targets; {spec.target!r} "
            f"has {len(classes)} classes"
        )
    return Target(classes, names, positive)


def _check_classes(target: pd.Series, spec: ExperimentSpec, source: str) -> None:
    counts = target.value_counts()
    name = spec.data.target
    if len(counts) < 2:
        raise DataError(
            f"{source}: target {name!r} has a single class ({_plain(counts.index[0])!r}); "
            "need two or more"
        )
    rare = counts[counts < 2]
    if len(rare):
        label, n = _plain(rare.index[0]), int(rare.iloc[0])
        raise DataError(
            f"{source}: target {name!r} class {label!r} has {n} sample; every class needs at "
            f"least 2 (better {spec.split.cv_folds}) to be split and cross-validated"
        )
    binary_only = spec.binary_only_metrics
    if len(counts) > 2 and binary_only:
        raise DataError(
            f"{source}: target {name!r} has {len(counts)} classes but metrics "
            f"{list(binary_only)} need exactly two; use f1_macro / roc_auc_ovr"
        )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so messages read ``2``, not ``np.int64(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _require_numeric(series: pd.Series, source: str, column: str, role: str = "column") -> None:
    if _is_numeric(series):
        return
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna() & series.notna()
    if bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        raise DataError(
            f"{source}: {role} {column!r} is numeric but row {row} holds {series.iloc[row]!r} "
            f"({int(bad.sum())} non-numeric value(s))"
        )


def _refuse_booleans(series: pd.Series, source: str, column: str) -> None:
    """A True/False column declared numeric trains, then every row fails scoring: refuse it."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series) or (
        series.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in values)
    ):
        raise DataError(
            f"{source}: column {column!r} holds True/False values but is declared numeric; "
            f"declare it boolean in data.features ({column!r}: boolean), so training and "
            "every scoring path read True/False, true/false and 1/0 alike"
        )


def _preview(columns: list[Any], limit: int = 12) -> str:
    shown = ", ".join(map(str, columns[:limit]))
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
