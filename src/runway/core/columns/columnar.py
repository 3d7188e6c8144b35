"""Many JSON rows checked and put in canonical form column by column, not value by value.

A 100-row request spent most of the gateway's time in per-value Python (#31). From
:data:`VECTOR_ROWS` rows the checks run per column, with a plain pass for a clean column
(no pandas call); the checked values come out as :class:`Columns`, one list a column, the
one form the backend's body, the prediction cache and the prediction log all read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.checks import as_text, check_column
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.kinds import boolean_value, is_missing, timestamp_value
from runway.core.columns.schema import ColumnContract, DataContract

# From this many rows a JSON request is checked column by column, not value by value.
VECTOR_ROWS = 32


@dataclass(frozen=True)
class Columns:
    """Checked rows as one list per contract column, each value canonical (``None`` missing)."""

    values: dict[str, list[Any]]
    n: int

    def __len__(self) -> int:
        return self.n

    def records(self) -> list[Mapping[str, Any]]:
        """The rows as records (the prediction cache keys rows)."""
        values = self.values
        return [{name: values[name][i] for name in values} for i in range(self.n)]


def canonical_columns(
    records: list[Mapping[str, Any]],
    contract: DataContract,
    by_column: Mapping[str, list[Any]] | None = None,
) -> Columns:
    """Checked records as :class:`Columns`: floats, ``True``/``False``, naive UTC timestamps,
    text; ``None`` when missing (what :func:`~runway.core.columns.contract.check_frame` gives).
    ``by_column``: the records' values by column, if known (every record has those keys)."""
    out: dict[str, list[Any]] = {}
    for name, entry in contract.columns.items():
        out[name] = canonical_column(_column(records, name, by_column), entry)
    return Columns(out, len(records))


def _column(
    records: list[Mapping[str, Any]], name: str, by_column: Mapping[str, list[Any]] | None
) -> list[Any]:
    """The values of ``name`` in each record (``None`` where it is absent)."""
    if by_column is None:
        return [record.get(name) for record in records]
    found = by_column.get(name)
    return found if found is not None else [None] * len(records)


_NONE = type(None)


def canonical_column(values: list[Any], entry: ColumnContract) -> list[Any]:
    """One column's values in canonical form; plain JSON values of the column's kind without
    a call per value (only a comprehension)."""
    kind = entry.effective_kind
    types = set(map(type, values)) if len(values) >= VECTOR_ROWS else {object}  # few: one by one
    if types <= {_NONE}:
        return [None] * len(values)
    if kind == "numeric" and types <= {float, int, _NONE}:
        return [None if v is None or v != v else float(v) for v in values]
    if (kind == "categorical" and types <= {str, _NONE}) or (
        kind == "boolean" and types <= {bool, _NONE}
    ):
        return list(values)
    out: list[Any] = []
    for value in values:
        if is_missing(value):
            out.append(None)
        elif kind == "numeric":
            out.append(float(value))
        elif kind == "boolean":
            out.append(boolean_value(value))
        elif kind == "datetime":
            out.append(timestamp_value(value))
        else:
            out.append(as_text(value))
    return out


def rejected_by_column(
    records: list[Mapping[str, Any]],
    contract: DataContract,
    policy: InputPolicy,
    by_column: Mapping[str, list[Any]] | None = None,
) -> dict[int, list[str]]:
    """:func:`~runway.core.columns.contract.check_records`' verdicts for many rows, column by
    column (the batch path's checks); ``by_column``: the records' values by column, if known.

    Numbers keep pandas' inferred dtype; other kinds stay objects (``7`` is the category "7").
    """
    rejected: dict[int, list[str]] = {}
    for name, entry in contract.columns.items():
        values = _column(records, name, by_column)
        reasons: dict[int, str] = {}
        if not plainly_valid(values, entry, policy):
            dtype = None if entry.effective_kind == "numeric" else object
            _, bad = check_column(pd.Series(values, dtype=dtype, name=name), entry, policy)
            reasons = dict(reversed(bad))  # one reason a row and column: the first, as the loop's
        if not entry.optional and (by_column is None or name not in by_column):
            for row in [row for row, record in enumerate(records) if name not in record]:
                reasons[row] = f"column {name!r}: required, missing from the row"
        for row, reason in reasons.items():
            rejected.setdefault(row, []).append(reason)
    return dict(sorted(rejected.items()))


def plainly_valid(values: list[Any], entry: ColumnContract, policy: InputPolicy) -> bool:
    """Finite numbers, known texts, plain booleans, and gaps (``None``; NaN for numbers) where
    missing values pass: a clean column passes without pandas' calls (a gap sent it there,
    ~1 ms of a 100-row request's 2)."""
    types = set(map(type, values))
    gaps = type(None) in types
    if gaps:
        if policy.missing_values == "reject":
            return False
        types.discard(type(None))
        if not types:  # nothing but gaps, of any kind
            return True
    kind = entry.effective_kind
    if kind == "numeric":
        if not types <= {float, int}:
            return False
        numbers = np.array(values, dtype=np.float64)  # None -> NaN: missing, as a NaN is
        present = numbers[~np.isnan(numbers)]
        if len(present) < len(numbers) and policy.missing_values == "reject":
            return False
        if not np.isfinite(present).all():
            return False
        dtype = entry.training_dtype
        if not dtype.startswith(("int", "uint", "Int", "UInt")) or not len(present):
            return True
        info = np.iinfo(dtype.lower())
        whole = bool((np.mod(present, 1) == 0).all())
        return whole and info.min < present.min() and present.max() < info.max  # bounds: full check
    if kind == "boolean":
        return types <= {bool}
    if kind == "categorical" and types <= {str}:
        known = entry.known_levels
        texts = values if not gaps else [v for v in values if v is not None]
        return policy.unseen_categories != "reject" or known is None or known.issuperset(texts)
    return False
