"""The Arrow tables a batch writes: scored rows with lineage, rejects, prediction-log rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from runway.core.columns.contract import CheckResult
from runway.scoring import io as batch_io
from runway.scoring.model import PREDICTION, LoadedModel
from runway.scoring.result import LINEAGE, REJECT_COLUMNS, BatchResult
from runway.store.predlog import INPUT_PREFIX, SCORED, rejected_frame
from runway.store.predlog import PROBA_PREFIX as LOG_PROBA_PREFIX


def log_frame(
    loaded: LoadedModel,
    result: BatchResult,
    chunk: batch_io.Chunk,
    check: CheckResult,
    key_columns: Sequence[str],
    labels: np.ndarray,
    probabilities: np.ndarray | None,
) -> pd.DataFrame:
    """A chunk's rows in the prediction log's shape (:mod:`runway.store.predlog`), built columnwise.

    Scored rows carry their inputs, prediction and probabilities; rejected rows
    their reasons and values as read. Both carry their input row number and
    their ``--key-column`` value(s), what labels are joined by later.
    """
    valid = check.valid
    positions = valid.index.to_numpy()
    columns: dict[str, object] = dict(_log_constants(result, len(valid)))
    columns["row"] = positions + chunk.offset
    columns["key"] = _keys(chunk.frame, key_columns, positions)
    for name in valid.columns:
        columns[f"{INPUT_PREFIX}{name}"] = valid[name].to_numpy()
    columns[PREDICTION] = labels
    if probabilities is not None:
        for i, label in enumerate(loaded.classes or []):
            columns[f"{LOG_PROBA_PREFIX}{label}"] = probabilities[:, i]
    scored = pd.DataFrame(columns, copy=False)
    if not check.rejected:
        return scored
    rejected = np.fromiter(check.rejected, dtype=np.int64, count=len(check.rejected))
    raw = chunk.frame.iloc[rejected].to_dict("records")
    refused = rejected_frame(
        raw,
        ["; ".join(reasons) for reasons in check.rejected.values()],
        model=result.model,
        version=result.version,
        source="batch",
        request_id=result.batch_id,
        timestamp=result.scored_at,
        keys=_keys(chunk.frame, key_columns, rejected),
        rows=list(rejected + chunk.offset),
    )
    return pd.concat([scored, refused], ignore_index=True) if len(scored) else refused


def _keys(frame: pd.DataFrame, key_columns: Sequence[str], positions: np.ndarray) -> Any:
    """The label key of each row: its key column value(s), ``|``-joined; none without keys."""
    if not key_columns:
        return pd.array([None] * len(positions), dtype="str")
    parts = frame[list(key_columns)].iloc[positions].astype(str)
    joined = parts.iloc[:, 0] if len(key_columns) == 1 else parts.agg("|".join, axis=1)
    return pd.array(joined.to_numpy(dtype=object), dtype="str")


_constants_cache: dict[tuple[str, int], dict[str, object]] = {}


def _log_constants(result: BatchResult, n: int) -> dict[str, object]:
    """The per-run columns of ``n`` log rows; built once per run and chunk size (read-only)."""
    key = (result.batch_id, n)
    if key not in _constants_cache:
        _constants_cache.clear()
        when = np.datetime64(result.scored_at.astimezone(UTC).replace(tzinfo=None), "us")
        _constants_cache[key] = {
            "timestamp": pd.array(np.full(n, when), dtype="datetime64[us]").tz_localize("UTC"),
            **{
                name: pd.array(np.full(n, value, dtype=object), dtype="str")
                for name, value in (
                    ("model", result.model),
                    ("version", result.version),
                    ("source", "batch"),
                    ("request_id", result.batch_id),
                    ("status", SCORED),
                )
            },
            "reason": pd.array([None] * n, dtype="str"),
        }
    return _constants_cache[key]


def _constant(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type=type_), n)


def output_table(
    loaded: LoadedModel,
    result: BatchResult,
    chunk: batch_io.Chunk,
    check: CheckResult,
    passthrough: list[str],
    labels: np.ndarray,
    probabilities: np.ndarray | None,
) -> pa.Table:
    positions = check.valid.index.to_numpy()
    n = len(positions)
    if chunk.table is not None:  # Parquet: the stored values and types, exactly
        table = chunk.table.select(passthrough).take(pa.array(positions, type=pa.int64()))
        columns, names = list(table.columns), list(table.column_names)
    else:  # CSV: checked numbers as float64, the rest as the text it was
        frame = chunk.frame.iloc[positions]
        columns, names = [], []
        for name in passthrough:
            if name in loaded.numeric:
                columns.append(pa.array(check.valid[name].to_numpy(), type=pa.float64()))
            else:
                columns.append(
                    pa.array(frame[name].to_numpy(dtype=object), type=pa.string(), from_pandas=True)
                )
            names.append(name)
    if n and labels.dtype == object:
        labels = labels.astype(str) if isinstance(labels[0], str) else labels
    columns.append(pa.array(labels) if n else pa.array([], type=pa.int64()))
    names.append(PREDICTION)
    if loaded.proba:
        for i, name in enumerate(loaded.proba_names()):
            values = probabilities[:, i] if probabilities is not None else np.empty(0)
            columns.append(pa.array(values, type=pa.float64()))
            names.append(name)
    resolved = loaded.resolved
    columns += [
        _constant(resolved.name, n, pa.string()),
        _constant(resolved.version, n, pa.string()),
        _constant(resolved.run_id, n, pa.string()),
        _constant(result.scored_at, n, pa.timestamp("us", tz="UTC")),
    ]
    names += list(LINEAGE)
    return pa.Table.from_arrays(columns, names=names)


def rejects_schema(reader: batch_io.ChunkReader) -> pa.Schema:
    """Input columns as stored (Parquet) or as text (CSV), then ``row`` and ``reason``."""
    if reader.arrow_schema is not None:
        fields = list(reader.arrow_schema)
    else:
        fields = [pa.field(name, pa.string()) for name in reader.columns]
    return pa.schema([*fields, pa.field("row", pa.int64()), pa.field("reason", pa.string())])


def rejects_table(
    reader: batch_io.ChunkReader, chunk: batch_io.Chunk, check: CheckResult
) -> pa.Table:
    positions = np.fromiter(check.rejected, dtype=np.int64, count=len(check.rejected))
    rows = pa.array(positions + chunk.offset, type=pa.int64())
    reasons = pa.array(["; ".join(r) for r in check.rejected.values()], type=pa.string())
    if chunk.table is not None:
        table = chunk.table.take(pa.array(positions, type=pa.int64()))
        return table.append_column("row", rows).append_column("reason", reasons)
    frame = chunk.frame.iloc[positions]
    arrays = [_as_text(frame[name]) for name in reader.columns]
    return pa.Table.from_arrays([*arrays, rows, reasons], names=[*reader.columns, *REJECT_COLUMNS])


def _as_text(series: pd.Series) -> pa.Array:
    values = series.to_numpy(dtype=object)
    text = [
        None if v is None or (isinstance(v, float) and np.isnan(v)) else _text(v) for v in values
    ]
    return pa.array(text, type=pa.string())


def _text(value: Any) -> str:
    """A value back as it was written: a CSV column read as floats turns ``13`` into 13.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)
