"""Check incoming rows against the data contract a model was trained with.

The contract (``contract/contract.json``, written by :func:`infer_contract` at
training time) records each feature's kind (numeric, boolean, categorical,
datetime; :mod:`runway.core.columns.kinds`), dtype, whether it is required, its range
and every category. Serving and batch scoring both ask the same question before
a row reaches the model: would the model see what it was trained on? This
module answers it, per row and per column, vectorised so a million-row chunk
stays cheap, and never guesses: a value that would have to be coerced (``1.7``
into an integer column, ``"no"`` into a boolean, ``3000000000`` into int32) is
a violation, not a silent cast. The rows that pass come out in one canonical
form per kind, whatever format they arrived in, so every path hands the model
the same values.

Optional columns: a column with missing values in training is optional (the
model has an imputation for it). A request or file may leave it out; it is then
missing on every row. The signature logged with the model says the same
(:func:`signature_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.checks import check_column, value_problem
from runway.core.columns.columnar import (
    VECTOR_ROWS,
    Columns,
    canonical_columns,
    rejected_by_column,
)
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.kinds import (
    Kind,
    numbers_from_text,
)
from runway.core.columns.schema import (
    CONTRACT_VERSION,
    ColumnContract,
    DataContract,
    TargetInfo,
)

__all__ = [
    "CONTRACT_VERSION",
    "VECTOR_ROWS",
    "CheckResult",
    "ColumnContract",
    "Columns",
    "DataContract",
    "TargetInfo",
    "canonical_records",
    "cast_to_signature",
    "check_frame",
    "check_records",
    "column_problems",
    "infer_contract",
    "parse_csv_numbers",
    "signature_columns",
    "text_columns",
    "unverified",
]
# Every level is recorded up to this many; beyond, the contract says it is incomplete
# and the unseen-category rule cannot be verified for that column (see unverified()).
MAX_CATEGORIES = 100_000
MLFLOW_TYPES: dict[Kind, str] = {
    "numeric": "double",
    "boolean": "boolean",
    "categorical": "string",
    "datetime": "datetime",
}


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


def signature_columns(contract: DataContract) -> list[tuple[str, str, bool]]:
    """(name, MLflow type, required) per column: the model signature, from the contract."""
    return [
        (name, MLFLOW_TYPES[entry.effective_kind], not entry.optional)
        for name, entry in contract.columns.items()
    ]


def infer_contract(
    X: pd.DataFrame,
    features: dict[str, Kind],
    source_dtypes: dict[str, str] | None = None,
    target: TargetInfo | None = None,
) -> DataContract:
    """The column contract serving and batch scoring check inputs against.

    Records, per column: kind, the dtype the model sees, the dtype the data had
    (``source_dtype``: an int32 column only takes integers in int32's range,
    though the model gets it as float64), the missing rate seen in training and
    whether the column is required, numeric ranges and integrality, timestamp
    ranges, and every category. ``target`` (classes, names, positive class) is
    recorded as given.
    """
    columns = {
        name: _column(X[name], kind, (source_dtypes or {}).get(name))
        for name, kind in features.items()
    }
    if target is None:
        return DataContract(version=CONTRACT_VERSION, n_rows=len(X), columns=columns)
    return DataContract(version=CONTRACT_VERSION, n_rows=len(X), columns=columns, target=target)


def _column(series: pd.Series, kind: Kind, source: str | None) -> ColumnContract:
    """One column's entry, with exactly the fields its kind records (in the file's order)."""
    nullable = bool(series.isna().any())
    doc: dict[str, object] = {
        "kind": kind,
        "dtype": str(series.dtype),
        "source_dtype": source or str(series.dtype),
        "missing_rate": float(series.isna().mean()),
        "nullable": nullable,
        "required": not nullable,
    }
    values = series.dropna()
    if kind == "numeric":
        numbers = values.astype("float64")
        extra: dict[str, object] = {
            "min": float(numbers.min()) if len(numbers) else None,
            "max": float(numbers.max()) if len(numbers) else None,
            "integer": bool(len(numbers) and np.all(np.mod(numbers, 1) == 0)),
        }
    elif kind == "boolean":
        extra = {"true_rate": float(values.astype(bool).mean()) if len(values) else None}
    elif kind == "datetime":
        extra = {
            "min": values.min().isoformat() if len(values) else None,
            "max": values.max().isoformat() if len(values) else None,
        }
    else:
        levels = sorted(values.astype(str).unique().tolist())
        extra = {
            "categories": levels[:MAX_CATEGORIES],
            "n_categories": len(levels),
            "categories_truncated": len(levels) > MAX_CATEGORIES,
        }
    return ColumnContract.model_validate(doc | extra)


def unverified(contract: DataContract, policy: InputPolicy | None = None) -> list[str]:
    """What the checks cannot verify for this contract, said once (at load), never silently.

    Today: the unseen-category rule on a column whose contract lists only part of
    its levels (more than :data:`MAX_CATEGORIES`, or a contract written before
    every level was kept, which kept 200).
    """
    policy = policy or InputPolicy()
    if policy.unseen_categories != "reject":
        return []
    notes = []
    for name, entry in contract.columns.items():
        if entry.effective_kind == "categorical" and entry.categories_truncated:
            kept = len(entry.categories or [])
            total = entry.n_categories
            of = f"{kept:,} of {total:,}" if total else f"only {kept:,}"
            notes.append(
                f"column {name!r}: the contract lists {of} levels, so values never seen in "
                "training are not rejected for this column (retrain to record every level)"
            )
    return notes


def check_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    policy: InputPolicy | None = None,
) -> CheckResult:
    """Check ``frame`` against ``contract``; cast valid rows to their canonical form.

    An optional column the frame does not have is missing on every row. Row
    numbers in messages are positions in ``frame`` (0-based).
    """
    policy = policy or InputPolicy()
    columns = contract.columns
    problems = column_problems(list(frame.columns), contract, policy)
    if problems:
        return CheckResult(frame.iloc[0:0], {}, problems)

    reasons: dict[int, list[str]] = {}
    cast: dict[str, pd.Series] = {}
    for name, entry in columns.items():
        if name in frame.columns:
            series = frame[name].reset_index(drop=True)
        else:  # an optional column left out
            series = pd.Series([None] * len(frame), dtype=object, name=name)
        series.name = name
        values, bad = check_column(series, entry, policy)
        for row, reason in bad:
            reasons.setdefault(int(row), []).append(reason)
        cast[name] = values
    checked = pd.DataFrame(cast, index=range(len(frame)))
    keep = np.ones(len(frame), dtype=bool)
    keep[list(reasons)] = False
    return CheckResult(checked[keep], dict(sorted(reasons.items())), [])


def text_columns(contract: DataContract) -> list[str]:
    """Columns a CSV reader keeps as text: every kind but numeric (leading zeros, ``TRUE``)."""
    return [n for n, e in contract.columns.items() if e.effective_kind != "numeric"]


def parse_csv_numbers(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Numeric columns a CSV reader left as text (one bad cell does that), parsed cell by cell.

    Values that parse become numbers; the others stay as written, so the check
    rejects exactly their rows, naming the value. Serving and batch read CSV
    through this one function.
    """
    numeric = [
        n
        for n, e in contract.columns.items()
        if e.effective_kind == "numeric"
        and n in frame.columns
        and not pd.api.types.is_numeric_dtype(frame[n])
    ]
    if not numeric:
        return frame
    frame = frame.copy()
    for name in numeric:
        frame[name] = numbers_from_text(frame[name])
    return frame


def column_problems(
    names: list[Any], contract: DataContract, policy: InputPolicy | None = None
) -> list[str]:
    """Frame-level problems: required columns missing, unknown columns (unless passed)."""
    policy = policy or InputPolicy()
    columns = contract.columns
    present = set(names)
    missing = [n for n, e in columns.items() if n not in present and not e.optional]
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
    contract: DataContract,
    policy: InputPolicy | None = None,
    by_column: Mapping[str, list[Any]] | None = None,
) -> tuple[list[str], dict[int, list[str]]]:
    """The same verdicts as :func:`check_frame`, value by value, for a few rows.

    A serving request holds one row or a handful: building a DataFrame and
    checking it column-wise costs milliseconds there, a plain loop microseconds.
    Returns (frame-level problems, reasons per row); nothing is cast (see
    :func:`canonical_records`). ``by_column``: the records' values by column when the
    request came column-wise (every record then has exactly those keys).
    """
    policy = policy or InputPolicy()
    columns = contract.columns
    names = by_column if by_column is not None else dict.fromkeys(chain.from_iterable(records))
    problems = column_problems(list(names), contract, policy)
    if problems:
        return problems, {}
    if len(records) >= VECTOR_ROWS:
        return [], rejected_by_column(records, contract, policy, by_column)
    rejected: dict[int, list[str]] = {}
    for row, record in enumerate(records):
        reasons = []
        for name, entry in columns.items():
            if name not in record and not entry.optional:
                reasons.append(f"column {name!r}: required, missing from the row")
                continue
            reason = value_problem(name, entry, record.get(name), policy)
            if reason:
                reasons.append(reason)
        if reasons:
            rejected[row] = reasons
    return [], rejected


def canonical_records(
    records: list[Mapping[str, Any]], contract: DataContract
) -> dict[str, list[Any]]:
    """Checked records as one list per contract column, each value in its canonical form.

    The scalar twin of what :func:`check_frame` returns for valid rows: floats,
    ``True``/``False``, naive UTC timestamps, text; ``None`` when missing.
    """
    return canonical_columns(records, contract).values


def cast_to_signature(
    valid: pd.DataFrame, input_types: Mapping[str, str], features: list[str]
) -> pd.DataFrame:
    """Checked rows in the signature's column order and types.

    The contract check gives numeric columns as float64, so integers read from
    a file never meet pyfunc's "cannot safely convert int64 to float64";
    integer signature columns (models logged before every number was float64)
    become int64 again, kept float64 when a value is missing. Booleans stay an
    object column of ``True``/``False``/``None`` (a missing one must reach the
    imputer, not become ``False``); timestamps are ``datetime64[ns]``.
    """
    out = {}
    for name in list(input_types) or features:
        series = valid[name]
        kind = input_types.get(name)
        if kind in {"long", "integer"} and not series.isna().any():
            series = series.astype("int64" if kind == "long" else "int32")
        elif kind == "float":
            series = series.astype("float32")
        elif kind == "double" and series.dtype != np.float64:
            series = series.astype("float64")
        elif kind == "boolean":
            series = series.astype(object).where(series.notna(), None)
        elif kind == "datetime":
            series = series.astype("datetime64[ns]")
        out[name] = series
    return pd.DataFrame(out, index=valid.index)
