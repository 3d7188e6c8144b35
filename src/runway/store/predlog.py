"""The prediction log: scored rows with their inputs, for monitoring to read later.

Serving and batch scoring both append here; monitoring reads it back with
:func:`read_predictions`. One row per scored input row, wide so drift checks can
read features directly::

    timestamp  model  version  source  request_id  input.<feature> ...  prediction

Where it goes is a setting (``RUNWAY_PREDICTION_LOG``):

- a directory (default ``predictions``): Parquet part files
  ``<dir>/<model>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet``; appending
  never rewrites a file, so several servers and batch jobs can share it;
- a database URL (``sqlite:///...``, ``postgresql://...``): the table
  ``runway_predictions_<model>`` through SQLAlchemy (the team database);
- ``off``: nothing is recorded.

The gateway must not wait on any of this: :class:`BackgroundWriter` takes
records in O(1) and writes them from a thread, in batches.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runway.core.text import slug
from runway.settings import get_settings, is_database_url

log = logging.getLogger(__name__)

META = ("timestamp", "model", "version", "source", "request_id")
INPUT_PREFIX = "input."
_counter = itertools.count()


def table_name(model: str) -> str:
    """The database table holding ``model``'s predictions."""
    return f"runway_predictions_{slug(model, '_', 'model')}"


class PredictionLog:
    """Append-only store of predictions at ``target`` (a directory, a database URL or ``off``)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.enabled = target.strip().lower() not in {"", "off", "none", "false", "0"}
        self.is_database = is_database_url(target)

    def __repr__(self) -> str:
        return f"PredictionLog({self.target!r})"

    def append(
        self,
        inputs: pd.DataFrame,
        predictions: Sequence[Any] | pd.Series,
        *,
        model: str,
        version: str,
        source: str,
        request_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> int:
        """Record ``inputs`` (one row per prediction) with their predictions; returns rows written."""
        if not self.enabled or len(inputs) == 0:
            return 0
        frame = _frame(inputs, predictions, model, version, source, request_id, timestamp)
        self.write_frame(model, frame)
        return len(frame)

    def write_frame(self, model: str, frame: pd.DataFrame) -> None:
        """Write rows already in the log's shape (see the module docstring)."""
        if not self.enabled or frame.empty:
            return
        if self.is_database:
            self._write_sql(model, frame)
        else:
            self._write_parquet(model, frame)

    def _write_parquet(self, model: str, frame: pd.DataFrame) -> None:
        day = frame["timestamp"].iloc[0].strftime("%Y-%m-%d")
        folder = Path(self.target) / model / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{next(_counter)}.parquet"
        partial = folder / f".{name}.tmp"
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        # Dictionary-encode text only: tried on float features it fails and doubles the write.
        frame.to_parquet(partial, index=False, use_dictionary=text or False)
        partial.replace(folder / name)  # readers never see half a part file

    def _write_sql(self, model: str, frame: pd.DataFrame) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.target)
        try:
            frame.to_sql(table_name(model), engine, if_exists="append", index=False)
        finally:
            engine.dispose()

    def read(self, model: str) -> pd.DataFrame:
        """Every recorded prediction of ``model``, oldest first."""
        if not self.enabled:
            return pd.DataFrame(columns=[*META, "prediction"])
        if self.is_database:
            import sqlalchemy

            engine = sqlalchemy.create_engine(self.target)
            table = table_name(model)
            try:
                if not sqlalchemy.inspect(engine).has_table(table):
                    return pd.DataFrame(columns=[*META, "prediction"])
                frame = pd.read_sql_table(table, engine)
            finally:
                engine.dispose()
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        else:
            parts = sorted((Path(self.target) / model).glob("date=*/part-*.parquet"))
            if not parts:
                return pd.DataFrame(columns=[*META, "prediction"])
            frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _frame(
    inputs: pd.DataFrame,
    predictions: Sequence[Any] | pd.Series,
    model: str,
    version: str,
    source: str,
    request_id: str | None,
    timestamp: datetime | None,
) -> pd.DataFrame:
    n = len(inputs)
    if len(predictions) != n:
        raise ValueError(f"{n} input rows but {len(predictions)} predictions")
    meta = pd.DataFrame(
        {
            "timestamp": pd.Series(
                [timestamp or datetime.now(UTC)] * n, dtype="datetime64[us, UTC]"
            ),
            "model": model,
            "version": str(version),
            "source": source,
            "request_id": request_id,
        }
    )
    features = inputs.reset_index(drop=True).add_prefix(INPUT_PREFIX)
    values = pd.Series(list(predictions) if not isinstance(predictions, pd.Series) else predictions)
    values = values.reset_index(drop=True)
    if values.map(lambda v: isinstance(v, (list, dict, tuple))).any():
        values = values.map(json.dumps)  # multi-output: one JSON value per row
    return pd.concat([meta, features, values.rename("prediction")], axis=1)


def read_predictions(model: str, target: str | None = None) -> pd.DataFrame:
    """The prediction log of ``model`` (from ``RUNWAY_PREDICTION_LOG`` unless given)."""
    return PredictionLog(target or get_settings().prediction_log).read(model)


class BackgroundWriter:
    """Takes records without blocking and writes them from a thread, in batches.

    A full queue drops records (counted in :attr:`dropped`) rather than slow a
    request down: the prediction log is for monitoring, the response comes first.
    """

    def __init__(
        self,
        sink: PredictionLog,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        self.sink = sink
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="runway-predlog", daemon=True)
        self._thread.start()

    def submit(
        self,
        model: str,
        version: str,
        rows: list[Mapping[str, Any]] | pd.DataFrame,
        response: bytes,
        request_id: str | None,
    ) -> None:
        """Queue one request's rows and its raw response body (parsed later, off the request path)."""
        try:
            self._queue.put_nowait((model, version, rows, response, request_id, datetime.now(UTC)))
        except queue.Full:
            self.dropped += len(rows)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ()
            if item is None:
                self._flush(pending)
                return
            if item:
                pending.append(item)
            if sum(len(p[2]) for p in pending) >= self.flush_rows or time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, pending: list[tuple[Any, ...]]) -> None:
        by_model: dict[str, list[pd.DataFrame]] = {}
        for model, version, rows, response, request_id, when in pending:
            try:
                predictions = _predictions(response)
                inputs = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
                frame = _frame(inputs, predictions, model, version, "serve", request_id, when)
            except Exception as exc:  # one odd response must not lose the others
                log.warning("prediction log: skipped request %s: %s", request_id, exc)
                continue
            by_model.setdefault(model, []).append(frame)
        for model, frames in by_model.items():
            frame = pd.concat(frames, ignore_index=True)
            outputs = frame["prediction"]
            if outputs.dtype == object and outputs.map(type).nunique() > 1:
                # scalars next to multi-output JSON: one type per column, or Parquet refuses it
                frame["prediction"] = outputs.map(
                    lambda v: v if isinstance(v, str) else json.dumps(v)
                )
            try:
                self.sink.write_frame(model, frame)
                self.written += len(frame)
            except Exception as exc:
                self.dropped += len(frame)
                log.warning(
                    "prediction log: cannot write %d rows to %s: %s", len(frame), self.sink, exc
                )


def _predictions(response: bytes) -> list[Any]:
    """The per-row outputs in an MLflow scoring response (``{"predictions": [...]}`` or a list)."""
    body = json.loads(response)
    if isinstance(body, Mapping):
        body = body.get("predictions", body)
    if isinstance(body, Mapping):  # a DataFrame output: {"col": [..]} -> records
        body = pd.DataFrame(body).to_dict("records")
    if not isinstance(body, list):
        raise ValueError("predictions are not a list")
    return [v if not isinstance(v, Mapping) else json.dumps(v) for v in body]
