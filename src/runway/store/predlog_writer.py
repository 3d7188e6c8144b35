"""Recording served rows in the prediction log without making a request wait.

:class:`BackgroundWriter` takes a request's rows in O(1) and writes them from a
thread, in batches. A full queue drops rows (counted in ``dropped``) rather
than slow a response down: the log is for monitoring, the answer comes first.
Rows the sink refuses (the team's database is down) wait on local disk
(:mod:`runway.store.predlog_buffer`, bounded: what does not fit is dropped and
counted) and are written when it answers again; the outage is logged once when
it starts and once when it ends, not at every flush.

What is queued or being written is in memory only: a hard kill (SIGKILL, a lost
machine) loses the rows answered since the last flush, at most
:data:`FLUSH_SECONDS` of them (or :data:`FLUSH_ROWS`, whichever comes first)
plus the write in progress. SIGTERM writes them (``close``).
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from runway.core.columns.columnar import Columns
from runway.core.outage import Outage
from runway.net import redact_text, redact_url
from runway.store.predlog import (
    REPLICA,
    PredictionLog,
    rejected_frame,
    row_keys,
    scored_frame,
)
from runway.store.predlog_arrow import scored_table
from runway.store.predlog_buffer import DEFAULT_MAX_ROWS, DiskBuffer

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # the README's bound on rows a hard kill loses, with a write's time
FLUSH_ROWS = 1000


Rows = list[Mapping[str, Any]] | pd.DataFrame | Columns  # records, a checked frame, or columns


@dataclass
class _Request:
    model: str
    version: str
    rows: Rows
    request_id: str
    when: datetime
    response: bytes | None = None  # scored: the backend's answer
    rejected: dict[int, list[str]] = field(default_factory=dict)  # row -> reasons
    probabilities: dict[str, list[float]] | None = None  # class label -> per row (?proba=true)

    def frame(self) -> pd.DataFrame:
        keys = row_keys(self.request_id, len(self.rows))
        if self.response is not None:
            inputs = _inputs([self.rows])
            return scored_frame(
                inputs,
                _predictions(self.response),
                model=self.model,
                version=self.version,
                source="serve",
                request_id=self.request_id,
                timestamp=self.when,
                keys=keys,
                **_probabilities(self.probabilities),
            )
        rows = self.rows
        records: list[Mapping[Any, Any]] = (
            list(rows.to_dict("records"))
            if isinstance(rows, pd.DataFrame)
            else rows.records()
            if isinstance(rows, Columns)
            else list(rows)
        )
        positions = sorted(self.rejected)
        return rejected_frame(
            [records[i] for i in positions],
            ["; ".join(self.rejected[i]) for i in positions],
            model=self.model,
            version=self.version,
            source="serve",
            request_id=self.request_id,
            timestamp=self.when,
            keys=[keys[i] for i in positions],
            rows=positions,
        )


class BackgroundWriter:
    """Takes requests' rows without blocking and writes them from a thread, in batches."""

    def __init__(
        self,
        sink: PredictionLog,
        *,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
        max_pending: int = 10_000,
        buffer_rows: int = DEFAULT_MAX_ROWS,
        retry_seconds: float = 5.0,
        replica: str = "",
    ) -> None:
        self.sink = sink
        self.replica = replica  # written in every row's REPLICA column, when given
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds  # while the sink is down: how often held rows are tried
        self.queue_dropped = 0  # rows a full queue refused
        self.written = 0
        self.buffer = DiskBuffer(sink, buffer_rows)
        self.outage = Outage(f"the prediction log {redact_url(sink.target)}")
        self._next_try = 0.0
        self._said_full = False
        self._queue: queue.Queue[_Request | None] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="runway-predlog", daemon=True)
        self._thread.start()

    def submit(
        self,
        model: str,
        version: str,
        rows: Rows,
        response: bytes,
        request_id: str,
        probabilities: dict[str, list[float]] | None = None,
    ) -> None:
        """Queue one scored request's rows and its raw response body (parsed later, off the request path);
        ``probabilities``: the class probabilities the caller asked for, logged as ``proba.<class>``."""
        now = datetime.now(UTC)
        self._put(_Request(model, version, rows, request_id, now, response, {}, probabilities))

    def submit_rejected(
        self,
        model: str,
        version: str,
        rows: Rows,
        rejected: dict[int, list[str]],
        request_id: str,
    ) -> None:
        """Queue the rows of a request the contract refused, with their reasons."""
        if rejected:
            self._put(
                _Request(model, version, rows, request_id, datetime.now(UTC), rejected=rejected)
            )

    @property
    def dropped(self) -> int:
        """Rows that will never be in the log: a full queue's, and those the disk buffer
        had no room for."""
        return self.queue_dropped + self.buffer.dropped

    @property
    def buffered(self) -> int:
        """Rows held on disk until the sink answers again."""
        return self.buffer.rows

    def _put(self, request: _Request) -> None:
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self.queue_dropped += len(request.rows)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[_Request] = []
        rows = 0  # in pending (a running count: summing per request is quadratic)
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = _EMPTY
            if item is None:
                self._flush(pending)
                return
            if item is not _EMPTY:
                pending.append(item)
                rows += len(item.rows)
            if rows >= self.flush_rows or time.monotonic() >= deadline:
                self._flush(pending)
                pending, rows = [], 0
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, pending: list[_Request]) -> None:
        by_model: dict[str, list[pd.DataFrame | _Batch]] = {}
        batch: _Batch = []  # scored JSON-row requests, one version

        def close_batch() -> None:
            if batch:
                by_model.setdefault(batch[0][0].model, []).append(list(batch))
                batch.clear()

        for request in pending:
            try:
                if (
                    request.response is not None
                    and isinstance(request.rows, (list, Columns))
                    and request.probabilities is None  # those take the frame per request
                ):
                    # one frame for many requests: a frame per request cost the gateway's
                    # event loop (same GIL) about a third of its requests/s
                    predictions = _predictions(request.response)
                    if len(predictions) != len(request.rows):
                        raise ValueError(
                            f"{len(request.rows)} input rows but {len(predictions)} predictions"
                        )
                    first = batch[0][0] if batch else request
                    if (first.model, first.version) != (request.model, request.version):
                        close_batch()
                    batch.append((request, predictions))
                    continue
                close_batch()
                by_model.setdefault(request.model, []).append(request.frame())
            except Exception as exc:  # one odd response must not lose the others
                log.warning("prediction log: skipped request %s: %s", request.request_id, exc)
        close_batch()
        for model, parts in by_model.items():
            try:
                built = None
                if len(parts) == 1 and isinstance(parts[0], list) and not self.sink.is_database:
                    built = _scored_table(parts[0], self.replica)  # one version's JSON rows
                frame = self._frame(parts) if built is None else None
            except Exception as exc:  # rows no frame holds must not stop the writer
                log.warning("prediction log: skipped %s's rows: %s", model, exc)
                continue
            if built is not None:  # Arrow straight from the columns: no frame built
                self._write(model, None, (*built, functools.partial(self._frame, parts)))
            else:
                self._write(model, frame)
        if not by_model and self.buffer.rows and time.monotonic() >= self._next_try:
            self._write(None, None)  # idle: try the held rows now and then

    def _frame(self, parts: list[pd.DataFrame | _Batch]) -> pd.DataFrame:
        """One model's flushed rows as one frame in the log's shape."""
        frames = [p if isinstance(p, pd.DataFrame) else _scored_batch(p) for p in parts]
        frame = pd.concat(frames, ignore_index=True)
        outputs = frame.get("prediction")
        if outputs is not None and outputs.dtype == object and len(set(map(type, outputs))) > 1:
            # scalars next to multi-output JSON (or the NaN of rejected rows): one type per
            # column, or Parquet refuses it
            frame["prediction"] = outputs.map(
                lambda v: v if isinstance(v, str) or v is None or v != v else json.dumps(v)
            )
        if self.replica:
            frame[REPLICA] = pd.array([self.replica] * len(frame), dtype="str")
        return frame

    def _write(
        self, model: str | None, frame: pd.DataFrame | None, table: _Table | None = None
    ) -> None:
        """Held rows first (the sink answers again?), then ``frame`` (or ``table``: an Arrow
        table, its dictionary columns and how to make it a frame); what is refused is held."""
        replayed = 0
        try:
            if self.buffer.rows:
                replayed = self.buffer.replay()
                self.written += replayed
            if model is not None and table is not None:
                self.sink.write_table(model, table[0], table[1])
                self.written += table[0].num_rows
            elif model is not None and frame is not None:
                self.sink.write_frame(model, frame)
                self.written += len(frame)
        except Exception as exc:
            self._refused(frame if table is None else table[2](), exc)
            return
        detail = f"wrote {replayed} held rows; {self.dropped} rows dropped in all"
        if line := self.outage.recovered(detail):
            log.warning("%s", line)
            self._said_full = False

    def _refused(self, frame: pd.DataFrame | None, exc: Exception) -> None:
        self._next_try = time.monotonic() + self.retry_seconds
        if frame is not None:
            self.buffer.hold(frame)
        words = redact_text(str(exc)).strip().splitlines() or [type(exc).__name__]
        if line := self.outage.failed(words[0][:300]):
            log.warning(
                "%s; holding its rows in %s (up to %d rows), written once it answers",
                line,
                self.buffer.folder,
                self.buffer.max_rows,
            )
        if self.buffer.dropped and not self._said_full:
            self._said_full = True
            log.warning(
                "prediction log: %d rows held on disk, the most kept; newer rows are dropped "
                "(counted in runway_prediction_log_dropped_total)",
                self.buffer.rows,
            )


_EMPTY = _Request("", "", [], "", datetime.now(UTC))
_Batch = list[tuple[_Request, list[Any]]]  # scored requests of one version, their predictions
_Table = tuple[pa.Table, list[str], Callable[[], pd.DataFrame]]  # Arrow rows, text, as a frame


def _scored_table(batch: _Batch, replica: str) -> tuple[pa.Table, list[str]] | None:
    """Scored requests of one model version, each a :class:`Columns`, as the Arrow table
    :func:`_scored_batch`'s frame writes (no frame built); ``None``: take the frame."""
    if not all(isinstance(request.rows, Columns) for request, _ in batch):
        return None
    keys, ids, positions, micros = _batch_meta(batch)
    first = batch[0][0]
    return scored_table(
        [request.rows for request, _ in batch if isinstance(request.rows, Columns)],
        [value for _, predictions in batch for value in predictions],
        model=first.model,
        version=first.version,
        request_ids=ids,
        keys=keys,
        rows=positions,
        micros=micros,
        replica=replica,
    )


def _batch_meta(batch: _Batch) -> tuple[list[str], list[str], list[int], np.ndarray]:
    """Each row's key, request id, position in its request and time (microseconds, UTC)."""
    keys: list[str] = []
    ids: list[str] = []
    positions: list[int] = []
    counts: list[int] = []
    for request, _ in batch:
        n = len(request.rows)
        keys += row_keys(request.request_id, n)
        ids += [request.request_id] * n
        positions += range(n)
        counts.append(n)
    # a request's time repeated over its rows, in microseconds (a datetime per row cost ~1 ms)
    micros = np.repeat([_micros(request.when) for request, _ in batch], counts)
    return keys, ids, positions, micros


def _scored_batch(batch: _Batch) -> pd.DataFrame:
    """Scored requests of one model version as one frame, each row keeping its request's id,
    time, key and position."""
    keys, ids, positions, micros = _batch_meta(batch)
    first = batch[0][0]
    return scored_frame(
        _inputs([request.rows for request, _ in batch]),
        [value for _, predictions in batch for value in predictions],
        model=first.model,
        version=first.version,
        source="serve",
        request_id=ids,
        timestamp=pd.Series(micros.astype("datetime64[us]")).dt.tz_localize(UTC),
        keys=keys,
        rows=positions,
    )


def _micros(when: datetime) -> int:
    """``when`` as whole microseconds since the epoch (UTC)."""
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _inputs(parts: list[Rows]) -> pd.DataFrame:
    """The input columns of requests' rows as one frame, as ``pd.DataFrame(records)`` makes it.

    Checked :class:`Columns` of one contract are joined list by list (building a frame from
    records was most of the log's cost); anything else goes through records.
    """
    if len(parts) == 1 and isinstance(parts[0], pd.DataFrame):
        return parts[0]
    if all(isinstance(p, Columns) for p in parts):
        columns = [p for p in parts if isinstance(p, Columns)]
        names = list(columns[0].values)
        if all(list(c.values) == names for c in columns):
            return pd.DataFrame(
                {n: [v for c in columns for v in c.values[n]] for n in names},
                index=pd.RangeIndex(sum(c.n for c in columns)),
            )
    records: list[Any] = []
    for part in parts:
        if isinstance(part, pd.DataFrame):
            records += part.to_dict("records")
        else:
            records += part.records() if isinstance(part, Columns) else part
    return pd.DataFrame(records)


def _probabilities(by_class: dict[str, list[float]] | None) -> dict[str, Any]:
    """``scored_frame``'s probability arguments from ``{class: [p per row]}`` (none: {})."""
    if not by_class:
        return {}
    classes = list(by_class)
    return {"probabilities": np.column_stack([by_class[c] for c in classes]), "classes": classes}


def _predictions(response: bytes) -> list[Any]:
    """The per-row outputs in an MLflow scoring response (``{"predictions": [...]}`` or a list)."""
    body = json.loads(response)
    if isinstance(body, Mapping):
        body = body.get("predictions", body)
    if isinstance(body, Mapping):  # a DataFrame output: {"col": [..]} -> records
        body = pd.DataFrame(body).to_dict("records")
    if not isinstance(body, list):
        raise ValueError("predictions are not a list")
    if dict not in set(map(type, body)):  # labels: JSON gives no other Mapping than dict
        return body
    return [v if not isinstance(v, Mapping) else json.dumps(v) for v in body]
