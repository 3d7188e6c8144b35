"""runway's own scikit-learn transformers: the steps of a logged pipeline that are not scikit-learn's.

They sit inside the logged model, so every client sends the raw column (a
timestamp, a boolean) and every path (REST, batch, Spark, in-process) derives
the same features from it with the same code. They follow scikit-learn's
estimator conventions (parameters only in ``__init__``, ``fit`` returns
``self``, learned state ends in ``_``) and hold only plain NumPy state, so skops
can save and load them; as runway's own types they are listed by name in a
model's ``skops_trusted_types``. Keep every such class in this module.

This module travels inside every model runway logs (its ``code`` directory,
:data:`runway.core.governance.trust.MODEL_CODE_FILES`), so a plain MLflow
target loads the model without runway: it and what it imports may import only
NumPy, pandas, scikit-learn, the standard library and each other.

Fully qualified names: ``runway.core.training.transformers.DatetimeParts``,
``runway.core.training.transformers.BooleanEncoder`` and ``runway.core.training.transformers.CategoryText``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from runway.core.columns.kinds import (
    ALL_DATETIME_PARTS,
    BOOLEAN_EXPECTED,
    DATETIME_EXPECTED,
    DATETIME_PARTS,
    DatetimePart,
    boolean_floats,
    is_missing,
    timestamp_series,
)

_SECONDS_PER_DAY = 86_400.0


def _frame(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


def _bad_value(column: Any, series: pd.Series, bad: np.ndarray, expected: str) -> ValueError:
    row = int(np.flatnonzero(bad)[0])
    return ValueError(
        f"column {column!r}: {expected}, got {series.iloc[row]!r} (row {row}; "
        f"{int(bad.sum())} such value(s))"
    )


class _ColumnwiseTransformer(TransformerMixin, BaseEstimator):
    """Remembers the input columns; names output features ``<column>_<part>``."""

    def _remember_columns(self, X: Any) -> pd.DataFrame:
        frame = _frame(X)
        self.n_features_in_ = frame.shape[1]
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return frame

    def _columns_of(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "n_features_in_")
        frame = _frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_features_in_} column(s), "
                f"got {frame.shape[1]}"
            )
        return frame

    def _input_names(self, input_features: Any = None) -> list[str]:
        if input_features is not None:
            return [str(c) for c in input_features]
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(c) for c in names]
        return [f"x{i}" for i in range(self.n_features_in_)]


class DatetimeParts(_ColumnwiseTransformer):
    """Timestamps to numeric parts (hour, day of week, month, days since training began).

    Why a transformer: the parts must be derived inside the logged model, so a
    client sends the timestamp it has and REST, batch, Spark and in-process
    scoring cannot derive different parts. Accepts timestamps and ISO 8601 texts
    (see :mod:`runway.core.columns.kinds`); a missing timestamp gives NaN parts for the
    imputer after it; an unreadable one raises ``ValueError`` naming the column,
    row and value.

    Args:
        parts: which parts, from ``year month day dayofweek hour minute elapsed_days``.
            ``elapsed_days`` counts from the earliest timestamp seen in ``fit``.
    """

    def __init__(self, parts: tuple[DatetimePart, ...] = DATETIME_PARTS) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DatetimeParts:
        """Learn each column's earliest timestamp (the origin of ``elapsed_days``)."""
        unknown = [p for p in self.parts if p not in ALL_DATETIME_PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts must be some of {ALL_DATETIME_PARTS}, got {self.parts!r}")
        frame = self._remember_columns(X)
        origins = []
        for column in frame.columns:
            stamps = self._stamps(frame[column], column)
            first = stamps.min()
            origins.append(0.0 if pd.isna(first) else _epoch_seconds(pd.Series([first]))[0])
        self.origins_ = np.asarray(origins, dtype="float64")
        return self

    def _stamps(self, series: pd.Series, column: Any) -> pd.Series:
        stamps, bad = timestamp_series(series)
        if bad.any():
            raise _bad_value(column, series, bad, DATETIME_EXPECTED)
        return stamps

    def transform(self, X: Any) -> np.ndarray:
        """One float column per (input column, part); NaN where the timestamp is missing."""
        frame = self._columns_of(X)
        check_is_fitted(self, "origins_")
        out = np.empty((len(frame), frame.shape[1] * len(self.parts)), dtype="float64")
        for i, column in enumerate(frame.columns):
            stamps = self._stamps(frame[column].reset_index(drop=True), column)
            for j, part in enumerate(self.parts):
                if part == "elapsed_days":
                    values = (_epoch_seconds(stamps) - self.origins_[i]) / _SECONDS_PER_DAY
                else:
                    values = getattr(stamps.dt, part).to_numpy(dtype="float64", na_value=np.nan)
                out[:, i * len(self.parts) + j] = values
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<column>_<part>`` for every column and part."""
        names = self._input_names(input_features)
        return np.asarray([f"{c}_{p}" for c in names for p in self.parts], dtype=object)


def _epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Seconds since 1970 as float64 (NaN for NaT), from microsecond timestamps."""
    micros = stamps.astype("datetime64[us]").to_numpy().astype("int64").astype("float64")
    micros[stamps.isna().to_numpy()] = np.nan
    return micros / 1e6


class BooleanEncoder(_ColumnwiseTransformer):
    """Booleans to 1.0/0.0, missing to NaN (for the imputer after it).

    Why a transformer: a missing boolean must reach the model's imputer on every
    path; containers disagree on how they hold one (``None`` in an object column,
    ``pd.NA`` in a nullable column, NaN from Arrow), and a plain ``astype(bool)``
    turns it into ``False``. Accepts the spellings of :mod:`runway.core.columns.kinds`;
    anything else raises ``ValueError`` naming the column, row and value.
    """

    def fit(self, X: Any, y: Any = None) -> BooleanEncoder:
        """Remember the columns (nothing else is learned)."""
        self._remember_columns(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One float column per input column."""
        frame = self._columns_of(X)
        out = np.empty(frame.shape, dtype="float64")
        for i, column in enumerate(frame.columns):
            series = frame[column].reset_index(drop=True)
            floats, bad = boolean_floats(series)
            if bad.any():
                raise _bad_value(column, series, bad, BOOLEAN_EXPECTED)
            out[:, i] = floats
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input column names."""
        return np.asarray(self._input_names(input_features), dtype=object)


class CategoryText(_ColumnwiseTransformer):
    """Categories as text, every kind of missing value as NaN (for the imputer after it).

    Why a transformer: scikit-learn's imputer sees NaN as missing but not ``None``
    or ``pd.NA``, which other containers use for a missing text (an object column,
    a Spark or Arrow conversion); and a level sent as the number ``7`` must meet
    the ``"7"`` training saw. Without it, the same row would be encoded
    differently depending on the path it came by.
    """

    def fit(self, X: Any, y: Any = None) -> CategoryText:
        """Remember the columns (nothing else is learned)."""
        self._remember_columns(X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """An object array of text, NaN where missing."""
        frame = self._columns_of(X)
        out = np.empty(frame.shape, dtype=object)
        for i, column in enumerate(frame.columns):
            out[:, i] = [
                np.nan if is_missing(v) else str(v.item() if isinstance(v, np.generic) else v)
                for v in frame[column].to_numpy(dtype=object)
            ]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input column names."""
        return np.asarray(self._input_names(input_features), dtype=object)
