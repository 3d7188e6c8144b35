"""Check incoming rows against the data contract a model was trained with.

The contract (``contract/contract.json``, written by :func:`infer_contract` at training time)
records each feature's kind, dtype, integrality, range and categories. Serving
and batch scoring both ask the same question before a row reaches the model:
would the model see what it was trained on? This module answers it, per row and
per column, vectorised so a million-row chunk stays cheap, and never guesses: a
value that would have to be coerced (``1.7`` into an integer column, ``"no"``
into a boolean, ``3000000000`` into int32) is a violation, not a silent cast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from runway.core.policy import InputPolicy
from runway.core.spec import FeatureKind

CONTRACT_VERSION = 1
MAX_CATEGORIES = 200


@dataclass
class CheckResult:
    """Rows that may be scored, and why the others may not.

    ``problems`` are frame-level (a missing or unknown column): every row is
    rejected then. ``rejected`` maps a row's position to its reasons.
    """

    valid: pd.DataFrame
    rejected: dict[int, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row passed."""
        return not self.problems and not self.rejected

    def first_error(self) -> str:
        """The first problem, phrased for an error response."""
        if self.problems:
            return self.problems[0]
        row = min(self.rejected)
        return f"row {row}: {self.rejected[row][0]}"


def infer_contract(
    X: pd.DataFrame,
    features: dict[str, FeatureKind],
    source_dtypes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The column contract serving and batch scoring check inputs against.

    Records, per column: kind, the dtype the model sees, the dtype the data had
    (``source_dtype``: an int32 column only takes integers in int32's range,
    though the model gets it as float64), the missing rate seen in training,
    numeric ranges and integrality, and categories.
    """
    columns: dict[str, Any] = {}
    for name, kind in features.items():
        series = X[name]
        entry: dict[str, Any] = {
            "kind": kind,
            "dtype": str(series.dtype),
            "source_dtype": (source_dtypes or {}).get(name, str(series.dtype)),
            "missing_rate": float(series.isna().mean()),
            "nullable": bool(series.isna().any()),
        }
        if kind == "numeric":
            values = series.dropna().astype("float64")
            entry["min"] = float(values.min()) if len(values) else None
            entry["max"] = float(values.max()) if len(values) else None
            entry["integer"] = bool(len(values) and np.all(np.mod(values, 1) == 0))
        else:
            counts = series.dropna().astype(str).value_counts()
            entry["categories"] = sorted(counts.index[:MAX_CATEGORIES].tolist())
            entry["categories_truncated"] = bool(len(counts) > MAX_CATEGORIES)
        columns[name] = entry
    return {"version": CONTRACT_VERSION, "n_rows": len(X), "columns": columns}


def check_frame(
    frame: pd.DataFrame,
    contract: Mapping[str, Any],
    policy: InputPolicy | None = None,
) -> CheckResult:
    """Check ``frame`` against ``contract``; cast valid rows to the training dtypes.

    Row numbers in messages are positions in ``frame`` (0-based).
    """
    policy = policy or InputPolicy()
    columns: dict[str, Any] = contract["columns"]
    problems = column_problems(list(frame.columns), contract, policy)
    if problems:
        return CheckResult(frame.iloc[0:0], {}, problems)

    reasons: dict[int, list[str]] = {}
    cast: dict[str, pd.Series] = {}
    for name, entry in columns.items():
        series = frame[name].reset_index(drop=True)
        if entry["kind"] == "numeric":
            values, bad = _numeric(series, entry)
        else:
            values, bad = _categorical(series, entry, policy)
        missing = series.isna().to_numpy()
        if policy.missing_values == "reject":
            bad = _merge(bad, missing, f"column {name!r}: missing value")
        for row, reason in bad:
            reasons.setdefault(int(row), []).append(reason)
        cast[name] = values
    checked = pd.DataFrame(cast, index=range(len(frame)))
    keep = np.ones(len(frame), dtype=bool)
    keep[list(reasons)] = False
    return CheckResult(checked[keep], dict(sorted(reasons.items())), [])


def column_problems(
    names: list[Any], contract: Mapping[str, Any], policy: InputPolicy | None = None
) -> list[str]:
    """Frame-level problems: required columns missing, unknown columns (unless passed)."""
    policy = policy or InputPolicy()
    columns: dict[str, Any] = contract["columns"]
    present = set(names)
    missing = [name for name in columns if name not in present]
    problems = []
    if missing:
        more = (
            f" ({len(missing)} required columns missing: {', '.join(map(repr, missing[:10]))}"
            + (" ...)" if len(missing) > 10 else ")")
            if len(missing) > 1
            else ""
        )
        problems.append(f"column {missing[0]!r}: required, missing from the input{more}")
    unknown = [c for c in names if c not in columns]
    if unknown and policy.unknown_columns == "reject":
        expected = ", ".join(list(columns)[:20]) + (
            f", ... ({len(columns)} columns)" if len(columns) > 20 else ""
        )
        problems.append(
            f"column {unknown[0]!r}: unknown; expected only {expected}"
            + (f" ({len(unknown)} unknown columns)" if len(unknown) > 1 else "")
        )
    return problems


def check_records(
    records: list[Mapping[str, Any]],
    contract: Mapping[str, Any],
    policy: InputPolicy | None = None,
) -> tuple[list[str], dict[int, list[str]]]:
    """The same verdicts as :func:`check_frame`, value by value, for a few rows.

    A serving request holds one row or a handful: building a DataFrame and
    checking it column-wise costs milliseconds there, a plain loop microseconds.
    Returns (frame-level problems, reasons per row); nothing is cast.
    """
    policy = policy or InputPolicy()
    columns: dict[str, Any] = contract["columns"]
    names: dict[Any, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    problems = column_problems(list(names), contract, policy)
    if problems:
        return problems, {}
    rejected: dict[int, list[str]] = {}
    for row, record in enumerate(records):
        reasons = []
        for name, entry in columns.items():
            if name not in record:
                reasons.append(f"column {name!r}: required, missing from the row")
                continue
            reason = value_problem(name, entry, record[name], policy)
            if reason:
                reasons.append(reason)
        if reasons:
            rejected[row] = reasons
    return [], rejected


def value_problem(
    name: str, entry: Mapping[str, Any], value: Any, policy: InputPolicy
) -> str | None:
    """Why one value breaks its column's contract, or None (the scalar twin of the vectorised checks)."""
    if value is None or (isinstance(value, float) and value != value):
        return f"column {name!r}: missing value" if policy.missing_values == "reject" else None
    if entry["kind"] == "numeric":
        if isinstance(value, (bool, np.bool_)):
            return f"column {name!r}: expected a number, got a boolean"
        if isinstance(value, str):
            return f"column {name!r}: expected a number, got text {value!r}"
        if not isinstance(value, (int, float, np.integer, np.floating)):
            return f"column {name!r}: expected a number"
        number = float(value)
        if number in (float("inf"), float("-inf")):
            return f"column {name!r}: expected a finite number"
        dtype = _source_dtype(entry)
        if dtype.startswith(("int", "uint", "Int", "UInt")):
            if number % 1 != 0:
                return f"column {name!r}: expected an integer, got {number:g}"
            info = np.iinfo(dtype.lower())
            if not info.min <= int(value) <= info.max:
                return _out_of_range(name, number, dtype, info)
        return None
    if _source_dtype(entry) == "bool":
        if isinstance(value, (bool, np.bool_)):
            return None
        return f"column {name!r}: expected true or false, got {value!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (str, int, float, np.integer, np.floating)
    ):
        return f"column {name!r}: expected a category (text), got {type(value).__name__}"
    known = entry.get("categories") or []
    if policy.unseen_categories == "reject" and known and not entry.get("categories_truncated"):
        text = str(value)
        if text not in known:
            return _unseen(name, text, known)
    return None


def _out_of_range(name: Any, value: float, dtype: str, info: np.iinfo) -> str:
    return f"column {name!r}: {value:.0f} is out of range for {dtype} [{info.min}, {info.max}]"


def _unseen(name: Any, text: str, known: list[str]) -> str:
    shown = ", ".join(map(repr, known[:10])) + (" ..." if len(known) > 10 else "")
    return f"column {name!r}: category {text!r} never seen in training; expected one of {shown}"


def _source_dtype(entry: Mapping[str, Any]) -> str:
    """The column's dtype in the training data (the model may see it as float64)."""
    return str(entry.get("source_dtype", entry["dtype"]))


Bad = list[tuple[int, str]]


def _merge(bad: Bad, mask: np.ndarray, reason: str) -> Bad:
    return bad + [(int(i), reason) for i in np.flatnonzero(mask)]


def _numeric(series: pd.Series, entry: Mapping[str, Any]) -> tuple[pd.Series, Bad]:
    name = series.name
    dtype = _source_dtype(entry)
    bad: Bad = []
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), _merge(
            bad, series.notna().to_numpy(), f"column {name!r}: expected a number, got a boolean"
        )
    if not pd.api.types.is_numeric_dtype(series):  # object, or pandas' str dtype
        series = series.astype(object)
        is_bool = series.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        for mask, kind in ((is_bool, "a boolean"), (is_text, "text")):
            for i in np.flatnonzero(mask):
                bad.append(
                    (int(i), f"column {name!r}: expected a number, got {kind} {series[i]!r}")
                )
        numbers = pd.to_numeric(series.where(~(is_bool | is_text)), errors="coerce")
        other = numbers.isna().to_numpy() & series.notna().to_numpy() & ~(is_bool | is_text)
        bad = _merge(bad, other, f"column {name!r}: expected a number")
    else:
        numbers = pd.to_numeric(series, errors="coerce")
    as_float = numbers.astype("float64")
    present = as_float.notna().to_numpy()
    finite = np.isfinite(as_float.to_numpy(na_value=0.0))
    bad = _merge(bad, present & ~finite, f"column {name!r}: expected a finite number")
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        info = np.iinfo(dtype.lower())
        values = as_float.to_numpy(na_value=0.0)
        fractional = present & finite & (np.mod(values, 1) != 0)
        for i in np.flatnonzero(fractional):
            bad.append((int(i), f"column {name!r}: expected an integer, got {values[i]:g}"))
        out_of_range = present & finite & ((values < info.min) | (values > info.max))
        for i in np.flatnonzero(out_of_range & ~fractional):
            bad.append((int(i), _out_of_range(name, values[i], dtype, info)))
        return as_float, bad  # scored as float64; the model's signature casts
    return as_float, bad


def _categorical(
    series: pd.Series, entry: Mapping[str, Any], policy: InputPolicy
) -> tuple[pd.Series, Bad]:
    name = series.name
    dtype = _source_dtype(entry)
    bad: Bad = []
    present = series.notna().to_numpy()
    if dtype == "bool":
        ok = series.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        for i in np.flatnonzero(present & ~ok):
            bad.append((int(i), f"column {name!r}: expected true or false, got {series[i]!r}"))
        return series, bad
    is_text = series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_number = series.map(
        lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    ).to_numpy(dtype=bool)
    wrong = present & ~(is_text | is_number)
    for i in np.flatnonzero(wrong):
        bad.append(
            (int(i), f"column {name!r}: expected a category (text), got {type(series[i]).__name__}")
        )
    text = series.where(~present, series.astype(str)).astype(object)
    text = text.where(present, np.nan)
    known = entry.get("categories") or []
    if policy.unseen_categories == "reject" and known and not entry.get("categories_truncated"):
        unseen = present & ~wrong & ~text.isin(known).to_numpy()
        for i in np.flatnonzero(unseen):
            bad.append((int(i), _unseen(name, text[i], known)))
    return text, bad
