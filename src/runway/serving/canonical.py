"""The body a backend scores: the checked rows in one canonical form, whatever the client sent.

MLflow reads each request format its own way, so the gateway never forwards the
client's body: it sends the values the contract check produced, typed as the
model's signature (:func:`canonical`), as Parquet or, for a few JSON rows whose
values MLflow's JSON reader cannot change, as column-wise ``inputs`` JSON.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runway.core.columns.columnar import Columns, canonical_columns
from runway.core.columns.contract import DataContract, cast_to_signature, signature_columns
from runway.serving.payload import JSON_TYPE, PARQUET_TYPE

_ARROW_TYPES = {
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.timestamp("ns"),
}


LAZY_ROWS = 64  # up to this many rows, the Parquet body is built only if a backend needs it


class Canonical:
    """Checked rows in their canonical form: the body a backend scores, the rows the log keeps.

    The body of a small request is built when first asked for: one the
    prediction cache answers whole never needs it. ``rows`` of JSON records are
    :class:`Columns`: the body, the cache and the log read that one form.
    """

    def __init__(
        self,
        build: Callable[[], bytes],
        rows: Columns | pd.DataFrame,
        content_type: str = PARQUET_TYPE,
    ) -> None:
        self._build = build
        self.rows = rows
        self.content_type = content_type

    @functools.cached_property
    def body(self) -> bytes:
        """The body a backend scores, in :attr:`content_type`."""
        return self._build()


def canonical(
    data: list[Mapping[str, Any]] | pd.DataFrame,
    contract: DataContract,
    input_types: Mapping[str, str],
    by_column: Mapping[str, list[Any]] | None = None,
    lean: bool = False,
) -> Canonical:
    """Checked rows (records, or the valid frame of a check) as the body a backend scores.

    Why not forward the client's body: MLflow reads each format its own way
    (JSON casts a missing boolean to ``False``, Parquet refuses an int64 column
    for a double, CSV infers per request), so the same row could score
    differently by format. The gateway sends every backend the values the
    contract check produced, typed as the model's signature: in Parquet, the
    one format MLflow reads without recasting, missing booleans included; or,
    for a few JSON rows whose values MLflow's JSON reading cannot change (see
    :func:`_json_inputs`), as column-wise ``inputs`` JSON, which MLflow's scoring
    server reads faster than a Parquet file when the rows are few. ``by_column``: the
    records' values by column when the request came column-wise (not taken apart again).
    ``lean``: the backend is an ONNX twin's lean route, which reads column ``inputs`` JSON
    exactly (gaps of every kind included), so JSON records go as JSON at any row count:
    encoding and reading JSON cost a fraction of a Parquet file's (#31).
    """
    columns = signature_columns(contract)
    types = {name: input_types.get(name, kind) for name, kind, _ in columns}
    if isinstance(data, pd.DataFrame):
        frame = cast_to_signature(data, types, list(types))

        def arrays() -> list[pa.Array]:
            kinds = {name: _ARROW_TYPES.get(types[name]) for name in types}
            return [pa.array(frame[n], type=kinds[n], from_pandas=True) for n in types]

        logged: Columns | pd.DataFrame = data
        as_json = None
    else:
        logged = canonical_columns(data, contract, by_column)
        values = logged.values

        def arrays() -> list[pa.Array]:  # canonical values: None is the only missing marker
            return [
                pa.array(values[n], type=_ARROW_TYPES.get(types[n], pa.string())) for n in types
            ]

        if lean:  # a twin's lean route reads JSON of any size exactly
            as_json = _lean_inputs(values, types, contract)
        else:
            as_json = _json_inputs(values, types) if len(data) <= LAZY_ROWS else None

    def build() -> bytes:
        table = pa.Table.from_arrays(arrays(), names=list(types))
        sink = io.BytesIO()
        pq.write_table(
            table, sink, compression="none", use_dictionary=False, write_statistics=False
        )
        return sink.getvalue()

    checked = Canonical(build, logged) if as_json is None else Canonical(as_json, logged, JSON_TYPE)
    if len(data) > LAZY_ROWS:  # built here, off the event loop when the rows are many
        _ = checked.body
    return checked


_JSON_EXACT = frozenset({"double", "float", "long", "integer", "string", "boolean"})
_JSON_INT = frozenset({"long", "integer"})


def _json_inputs(
    values: Mapping[str, list[Any]], types: Mapping[str, str]
) -> Callable[[], bytes] | None:
    """The rows as ``{"inputs": {column: [values]}}`` if MLflow reads them back as the Parquet
    body would be.

    Why ``inputs``, not ``dataframe_split``: MLflow casts each column of it
    straight to a numpy array of the signature's type, where for a split it
    builds a frame and then casts it column by column; measured on a one-row
    LogisticRegression twin, the backend's parse drops from 0.93 to 0.04 ms and
    the whole request by ~0.6 ms (``_enforce_schema`` then makes the frame).
    Exact for finite floats (missing ones become NaN, as in Parquet), whole
    numbers, texts and booleans, but a missing boolean becomes ``False``, a
    missing text the text ``'None'``, a missing whole number fails the cast,
    numpy drops a text's trailing NUL characters, and timestamps are re-parsed
    from text. Rows with any of those go as Parquet (``None`` here).
    """
    if not types:
        return None
    for name, kind in types.items():
        if kind not in _JSON_EXACT:
            return None
        column = values[name]
        if kind in ("double", "float"):
            exact = all(v is None or math.isfinite(v) for v in column)
        elif kind in _JSON_INT:
            exact = all(v is not None and float(v).is_integer() and abs(v) < 2**53 for v in column)
        elif kind == "string":
            exact = all(isinstance(v, str) and not v.endswith("\x00") for v in column)
        else:
            exact = all(isinstance(v, bool) for v in column)
        if not exact:
            return None
    whole = {name for name in types if types[name] in _JSON_INT}

    def build() -> bytes:
        columns = {
            name: [int(v) for v in values[name]] if name in whole else values[name]
            for name in types
        }
        return json.dumps({"inputs": columns}).encode()

    return build


def _lean_inputs(
    values: Mapping[str, list[Any]], types: Mapping[str, str], contract: DataContract
) -> Callable[[], bytes]:
    """The rows as ``{"inputs": {column: [values]}}`` for a twin's lean route, which reads
    every canonical value back as the Parquet body gives it: ``null`` where missing (of any
    kind), numbers as numbers, timestamps as ISO text (naive UTC, to the microsecond)."""
    stamps = {n for n, e in contract.columns.items() if e.effective_kind == "datetime"}

    def build() -> bytes:
        columns = {
            name: [None if v is None else v.isoformat() for v in values[name]]
            if name in stamps or types[name] == "datetime"
            else values[name]
            for name in types
        }
        return json.dumps({"inputs": columns}).encode()

    return build
