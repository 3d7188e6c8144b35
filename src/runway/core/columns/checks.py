"""One column's values against its contract entry: the per-kind checks, vectorised and scalar.

:mod:`runway.core.columns.contract` applies them to a frame (batch, Spark, a CSV or
Parquet request) or to records (a JSON request); both give the same reason for
the same value, word for word.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.kinds import (
    BOOLEAN_EXPECTED,
    DATETIME_EXPECTED,
    INVALID,
    boolean_series,
    boolean_value,
    coerce_numbers,
    is_missing,
    timestamp_series,
    timestamp_value,
)
from runway.core.columns.schema import ColumnContract


def value_problem(name: str, entry: ColumnContract, value: Any, policy: InputPolicy) -> str | None:
    """Why one value breaks its column's contract, or None (the scalar twin of the vectorised checks)."""
    if is_missing(value):
        return f"column {name!r}: missing value" if policy.missing_values == "reject" else None
    kind = entry.effective_kind
    if kind == "numeric":
        return _number_problem(name, entry, value)
    if kind == "boolean":
        if boolean_value(value) is INVALID:
            return f"column {name!r}: {BOOLEAN_EXPECTED}, got {_show(value)}"
        return None
    if kind == "datetime":
        if timestamp_value(value) is INVALID:
            return f"column {name!r}: {DATETIME_EXPECTED}, got {_show(value)}"
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (str, int, float, np.integer, np.floating)
    ):
        return f"column {name!r}: expected a category (text), got {type(value).__name__}"
    known = entry.known_levels
    if policy.unseen_categories == "reject" and known is not None:
        text = as_text(value)
        if text not in known:
            return _unseen(name, text, entry)
    return None


def _number_problem(name: str, entry: ColumnContract, value: Any) -> str | None:
    if isinstance(value, (bool, np.bool_)):
        return f"column {name!r}: expected a number, got a boolean"
    if isinstance(value, str):
        return f"column {name!r}: expected a number, got text {value!r}"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return f"column {name!r}: expected a number"
    number = float(value)
    if number in (float("inf"), float("-inf")):
        return f"column {name!r}: expected a finite number"
    dtype = entry.training_dtype
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        if number % 1 != 0:
            return f"column {name!r}: expected an integer, got {number:g}"
        info = np.iinfo(dtype.lower())
        if not info.min <= int(value) <= info.max:
            return _out_of_range(name, number, dtype, info)
    return None


def _show(value: Any) -> str:
    """A value as messages quote it: the Python value, not its NumPy wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def as_text(value: Any) -> str:
    """A category as text, the way training saw it (``7`` and ``"7"`` are the same level)."""
    return str(value.item() if isinstance(value, np.generic) else value)


def _out_of_range(name: Any, value: float, dtype: str, info: np.iinfo) -> str:
    return f"column {name!r}: {value:.0f} is out of range for {dtype} [{info.min}, {info.max}]"


def _unseen(name: Any, text: str, entry: ColumnContract) -> str:
    known = entry.categories or []
    shown = ", ".join(map(repr, known[:10])) + (" ..." if len(known) > 10 else "")
    return f"column {name!r}: category {text!r} never seen in training; expected one of {shown}"


Bad = list[tuple[int, str]]


def merge(bad: Bad, mask: np.ndarray, reason: str) -> Bad:
    return bad + [(int(i), reason) for i in np.flatnonzero(mask)]


def numeric_column(series: pd.Series, entry: ColumnContract) -> tuple[pd.Series, Bad]:
    name = series.name
    dtype = entry.training_dtype
    bad: Bad = []
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), merge(
            bad, series.notna().to_numpy(), f"column {name!r}: expected a number, got a boolean"
        )
    if not pd.api.types.is_numeric_dtype(series):  # object, or pandas' str dtype
        series = series.astype(object)
        is_bool = series.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        bad = merge(bad, is_bool, f"column {name!r}: expected a number, got a boolean")
        for i in np.flatnonzero(is_text):
            bad.append((int(i), f"column {name!r}: expected a number, got text {series[i]!r}"))
        numbers = coerce_numbers(series.where(~(is_bool | is_text)))
        other = numbers.isna().to_numpy() & series.notna().to_numpy() & ~(is_bool | is_text)
        bad = merge(bad, other, f"column {name!r}: expected a number")
    else:
        numbers = pd.to_numeric(series, errors="coerce")
    as_float = numbers.astype("float64")
    present = as_float.notna().to_numpy()
    finite = np.isfinite(as_float.to_numpy(na_value=0.0))
    bad = merge(bad, present & ~finite, f"column {name!r}: expected a finite number")
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        info = np.iinfo(dtype.lower())
        values = np.where(finite, as_float.to_numpy(na_value=0.0), 0.0)
        fractional = present & finite & (np.mod(values, 1) != 0)
        for i in np.flatnonzero(fractional):
            bad.append((int(i), f"column {name!r}: expected an integer, got {values[i]:g}"))
        out_of_range = present & finite & ((values < info.min) | (values > info.max))
        for i in np.flatnonzero(out_of_range & ~fractional):
            bad.append((int(i), _out_of_range(name, values[i], dtype, info)))
    return as_float, bad  # scored as float64; the model's signature casts


def boolean_column(series: pd.Series) -> tuple[pd.Series, Bad]:
    values, invalid = boolean_series(series)
    reasons = [
        (int(i), f"column {series.name!r}: {BOOLEAN_EXPECTED}, got {_show(series.iloc[i])}")
        for i in np.flatnonzero(invalid)
    ]
    return values, reasons


def datetime_column(series: pd.Series) -> tuple[pd.Series, Bad]:
    stamps, invalid = timestamp_series(series)
    reasons = [
        (int(i), f"column {series.name!r}: {DATETIME_EXPECTED}, got {_show(series.iloc[i])}")
        for i in np.flatnonzero(invalid)
    ]
    return stamps, reasons


def categorical_column(
    series: pd.Series, entry: ColumnContract, policy: InputPolicy
) -> tuple[pd.Series, Bad]:
    name = series.name
    bad: Bad = []
    present = series.notna().to_numpy()
    is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_number = series.map(
        lambda v: (
            isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_))
        )
    ).to_numpy(dtype=bool)
    wrong = present & ~(is_text | is_number)
    for i in np.flatnonzero(wrong):
        kind = type(series.iloc[i]).__name__
        bad.append((int(i), f"column {name!r}: expected a category (text), got {kind}"))
    text = series.astype(object).map(as_text, na_action="ignore")
    text = text.where(present, np.nan).astype(object)
    known = entry.known_levels
    if policy.unseen_categories == "reject" and known is not None:
        unseen = present & ~wrong & ~text.isin(known).to_numpy()
        for i in np.flatnonzero(unseen):
            bad.append((int(i), _unseen(name, text[i], entry)))
    return text, bad


def check_column(
    series: pd.Series, entry: ColumnContract, policy: InputPolicy
) -> tuple[pd.Series, Bad]:
    """One named column checked by its kind, vectorised: its canonical values and bad rows."""
    kind = entry.effective_kind
    if kind == "numeric":
        values, bad = numeric_column(series, entry)
    elif kind == "boolean":
        values, bad = boolean_column(series)
    elif kind == "datetime":
        values, bad = datetime_column(series)
    else:
        values, bad = categorical_column(series, entry, policy)
    if policy.missing_values == "reject":
        bad = merge(bad, series.isna().to_numpy(), f"column {series.name!r}: missing value")
    return values, bad
