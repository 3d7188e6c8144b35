"""Scored JSON requests' rows as the prediction log's Arrow table, with no pandas frame (#31).

The gateway's log writer shares the event loop's GIL: building a pandas frame per flush and
then converting it to Arrow was a fifth of a 100-row request's gateway CPU. The checked rows
are already plain lists per column (:class:`~runway.core.columns.columnar.Columns`), so the
Parquet part is built straight from them: one Arrow array a column, typed as pandas would
infer the frame (:func:`~runway.store.predlog.scored_frame`), with the same ``pandas``
schema metadata, so a part reads back exactly as one written through pandas. A column of
values outside the plain kinds gives ``None``: the caller takes the pandas path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from runway.core.columns.columnar import Columns
from runway.store.predlog import INPUT_PREFIX, PREDICTION, REPLICA, SCORED

TEXT = pa.large_string()  # pandas' "str" columns are Arrow large strings
NUMERIC = frozenset({"float64", "int64", "bool"})  # what to_parquet leaves out of dictionaries
_NONE = type(None)
_NAIVE_US = ("us", None)  # canonical timestamps (kinds.timestamp_value)
Column = tuple[pa.Array, str]  # an Arrow array and the pandas dtype the frame would have


def scored_table(
    inputs: Sequence[Columns],
    predictions: list[Any],
    *,
    model: str,
    version: str,
    request_ids: list[str],
    keys: list[str],
    rows: list[int],
    micros: np.ndarray,
    replica: str = "",
) -> tuple[pa.Table, list[str]] | None:
    """The rows as the table ``scored_frame`` + ``to_parquet`` would write, and the columns
    to dictionary-encode (the non-numeric ones); ``None`` if a column is not plain."""
    n = len(predictions)
    names = list(inputs[0].values)
    if any(list(part.values) != names for part in inputs):
        return None
    stamps = pa.array(micros.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC"))
    columns: dict[str, Column] = {
        "timestamp": (stamps, "datetime64[us, UTC]"),
        "model": (_repeat(model, n), "str"),
        "version": (_repeat(str(version), n), "str"),
        "source": (_repeat("serve", n), "str"),
        "request_id": (pa.array(request_ids, type=TEXT), "str"),
        "row": (pa.array(rows, type=pa.int64()), "int64"),
        "key": (pa.array(keys, type=TEXT), "str"),
        "status": (_repeat(SCORED, n), "str"),
        "reason": (pa.nulls(n, TEXT), "str"),
    }
    for name in names:
        joined = [v for part in inputs for v in part.values[name]]
        column = _input(joined)
        if column is None:
            return None
        columns[f"{INPUT_PREFIX}{name}"] = column
    prediction = _prediction(predictions)
    if prediction is None:
        return None
    columns[PREDICTION] = prediction
    if replica:
        columns[REPLICA] = (_repeat(replica, n), "str")
    schema = _schema(tuple((name, array.type, dtype) for name, (array, dtype) in columns.items()))
    table = pa.Table.from_arrays([array for array, _ in columns.values()], schema=schema)
    return table, [name for name, (_, dtype) in columns.items() if dtype not in NUMERIC]


def _repeat(text: str, n: int) -> pa.Array:
    return pa.array([text] * n, type=TEXT)


def _input(values: list[Any]) -> Column | None:
    """A canonical input column as ``pd.DataFrame`` infers it from the joined list."""
    types = set(map(type, values))
    gaps = _NONE in types
    types.discard(_NONE)
    if not types:
        return pa.nulls(len(values)), "object"
    if types <= {float, int} and (float in types or gaps):
        return pa.array(values, type=pa.float64(), from_pandas=True), "float64"  # NaN: null
    if types == {str}:
        return pa.array(values, type=TEXT), "str"
    if types == {bool}:
        return pa.array(values, type=pa.bool_()), "object" if gaps else "bool"
    if types == {pd.Timestamp} and all(v is None or (v.unit, v.tz) == _NAIVE_US for v in values):
        return pa.array(values, type=pa.timestamp("us")), "datetime64[us]"
    return None


def _prediction(values: list[Any]) -> Column | None:
    """The backend's per-row outputs as ``scored_frame`` types them, if plain."""
    types = set(map(type, values))
    if _NONE in types or not types:
        return None
    try:
        if types == {int}:
            return pa.array(values, type=pa.int64()), "int64"
        if types <= {float, int}:
            return pa.array(values, type=pa.float64(), from_pandas=True), "float64"
    except (OverflowError, pa.ArrowException):  # beyond int64: pandas' own inference
        return None
    if types == {str}:
        return pa.array(values, type=TEXT), "str"
    if types == {bool}:
        return pa.array(values, type=pa.bool_()), "bool"
    return None


@functools.lru_cache(maxsize=64)
def _schema(fields: tuple[tuple[str, pa.DataType, str], ...]) -> pa.Schema:
    """The Arrow schema with the ``pandas`` metadata ``to_parquet`` writes for a frame of
    these dtypes (pyarrow's own, from an empty frame: it depends on the dtypes alone)."""
    proxy = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, _, dtype in fields})
    plain = pa.schema([(name, kind) for name, kind, _ in fields])
    return pa.Table.from_pandas(proxy, schema=plain, preserve_index=False).schema
