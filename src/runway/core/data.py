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

from runway.core.catalog import SKLEARN_DATASETS
from runway.core.spec import DataSpec, ExperimentSpec, FeatureKind
from runway.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A loaded table and where it came from."""

    frame: pd.DataFrame
    source: str
    name: str

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

    @property
    def numeric(self) -> list[str]:
        """Numeric feature columns, in order."""
        return [c for c, k in self.features.items() if k == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """Categorical feature columns, in order."""
        return [c for c, k in self.features.items() if k == "categorical"]


def load_dataset(spec: DataSpec) -> Dataset:
    """Load the rows a spec points at (a CSV/Parquet file or a bundled dataset)."""
    source = spec.source
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        loader = getattr(importlib.import_module("sklearn.datasets"), SKLEARN_DATASETS[name])
        bunch = loader(as_frame=True)
        return Dataset(frame=bunch.frame, source=source, name=name)
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
        return {
            c: ("numeric" if _is_numeric(frame[c]) else "categorical")
            for c in columns
            if c != spec.target and c not in spec.drop
        }
    missing = [c for c in spec.features if c not in columns]
    if missing:
        raise DataError(
            f"{source}: feature column(s) {missing} not found; columns are: {_preview(columns)}"
        )
    for column, kind in spec.features.items():
        if kind == "numeric":
            _require_numeric(frame[column], source, column)
    return dict(spec.features)


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
        if kind == "numeric":
            # float64 throughout: an integer column cannot hold a missing value at
            # predict time, and MLflow's schema would refuse the float it becomes.
            X[column] = pd.to_numeric(X[column]).astype("float64")
        else:
            # object dtype with NaN for missing: what SimpleImputer and MLflow's
            # signature inference both understand, whatever pandas' string default.
            X[column] = X[column].astype("object").where(X[column].notna(), np.nan)
    stratify = None
    if spec.task == "classification":
        _check_classes(target, spec, dataset.source)
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
    return Split(X_train, X_holdout, y_train, y_holdout, features, source_dtypes)


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


def _preview(columns: list[Any], limit: int = 12) -> str:
    shown = ", ".join(map(str, columns[:limit]))
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
