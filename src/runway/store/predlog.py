"""The prediction log: every row serving and batch scoring saw, for monitoring to read later.

One row per input row, wide so drift checks read features directly::

    timestamp model version source request_id row key status reason
    input.<feature> ... prediction proba.<class> ... raw replica

- ``status`` is ``scored`` or ``rejected``; a rejected row has its ``reason``
  (every broken rule) and its values as received in ``raw`` (JSON text, cut at
  2,000 characters), not in ``input.*``, whose types stay those of the contract;
- ``row`` is the row's position in its request or input file, ``key`` what
  labels are joined by: the ``--key-column`` value(s) of a batch row (``|``-joined),
  or for a served row the request id (``X-Request-Id``, echoed on the response),
  with ``:<row>`` appended when the request held several rows;
- ``proba.<class>`` are a classifier's probabilities where the scorer had them
  (batch scoring computes them; serving forwards only labels, so ``runway
  monitor`` scores served rows' probabilities with the same version when it
  judges score drift);
- ``replica`` names the ``runway serve`` gateway that answered a served row
  (``RUNWAY_SERVE_REPLICA``, else ``<hostname>:<port>``), so rows of N
  replicas sharing one log tell apart; batch rows, and logs written before
  runway had it, have none (a table gets the nullable column on its next write).

Where it goes is a setting (``RUNWAY_PREDICTION_LOG``):

- a directory (default ``predictions``): Parquet part files
  ``<dir>/<model>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet``; appending
  never rewrites a file, so several servers and batch jobs can share it;
- a database URL (``sqlite:///...``, ``postgresql://...``): the table
  ``runway_predictions_<model>`` through SQLAlchemy (the team database);
  columns a newer runway adds are added to the table on write;
- ``off``: nothing is recorded.

:func:`PredictionLog.read_window` streams a time window back in batches, so
monitoring reads any volume in bounded memory.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runway.core.text import slug
from runway.net import redact_url
from runway.settings import get_settings, is_database_url

log = logging.getLogger(__name__)

META = ("timestamp", "model", "version", "source", "request_id", "row", "key", "status", "reason")
INPUT_PREFIX = "input."
PROBA_PREFIX = "proba."
PREDICTION = "prediction"
RAW = "raw"
REPLICA = "replica"
SCORED, REJECTED = "scored", "rejected"
MAX_RAW_CHARS = 2000
_counter = itertools.count()
_TEXT = pd.StringDtype(na_value=np.nan)  # pandas' "str"


def table_name(model: str) -> str:
    """The database table holding ``model``'s predictions."""
    return f"runway_predictions_{slug(model, '_', 'model')}"


def row_keys(request_id: str, n: int) -> list[str]:
    """The label keys of a served request's rows: its id, or ``<id>:<row>`` for several rows."""
    return [request_id] if n == 1 else [f"{request_id}:{i}" for i in range(n)]


def scored_frame(
    inputs: pd.DataFrame,
    predictions: Sequence[Any] | np.ndarray | pd.Series,
    *,
    model: str,
    version: str,
    source: str,
    request_id: str | Sequence[str] | None,
    timestamp: datetime | pd.Series | None = None,
    keys: Sequence[str] | None = None,
    rows: Sequence[int] | None = None,
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Scored rows in the log's shape (``probabilities`` columns follow ``classes``).

    ``request_id`` and ``timestamp`` are one for every row, or (a batch of requests) one a row.
    """
    n = len(inputs)
    if len(predictions) != n:
        raise ValueError(f"{n} input rows but {len(predictions)} predictions")
    columns: dict[str, object] = _meta(n, model, version, source, request_id, timestamp, keys, rows)
    columns["status"] = pd.array([SCORED] * n, dtype="str")
    columns["reason"] = pd.array([None] * n, dtype="str")
    for name in inputs.columns:
        series = inputs[name]
        # text stays in its Arrow array: to NumPy objects and back cost most of a log write
        dtype = series.dtype
        plain = isinstance(dtype, pd.StringDtype) and dtype == _TEXT and dtype.storage == "pyarrow"
        columns[f"{INPUT_PREFIX}{name}"] = series.array if plain else series.to_numpy()
    columns[PREDICTION] = _plain_predictions(predictions)
    if probabilities is not None and classes is not None:
        for i, label in enumerate(classes):
            columns[f"{PROBA_PREFIX}{label}"] = np.asarray(probabilities[:, i], dtype="float64")
    return pd.DataFrame(columns)


def rejected_frame(
    raw_rows: Sequence[Mapping[Any, Any]],
    reasons: Sequence[str],
    *,
    model: str,
    version: str,
    source: str,
    request_id: str | None,
    timestamp: datetime | None = None,
    keys: Sequence[str] | None = None,
    rows: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Rejected rows in the log's shape: the reason, and the values as received in ``raw``."""
    n = len(raw_rows)
    columns: dict[str, object] = _meta(n, model, version, source, request_id, timestamp, keys, rows)
    columns["status"] = pd.array([REJECTED] * n, dtype="str")
    columns["reason"] = pd.array(list(reasons), dtype="str")
    columns[RAW] = pd.array(
        [json.dumps(dict(r), default=str)[:MAX_RAW_CHARS] for r in raw_rows], dtype="str"
    )
    return pd.DataFrame(columns)


def _meta(
    n: int,
    model: str,
    version: str,
    source: str,
    request_id: str | Sequence[str] | None,
    timestamp: datetime | pd.Series | None,
    keys: Sequence[str] | None,
    rows: Sequence[int] | None,
) -> dict[str, object]:
    if isinstance(timestamp, pd.Series):
        stamps = timestamp
    else:
        when = (timestamp or datetime.now(UTC)).astimezone(UTC)
        stamps = pd.Series([when] * n, dtype="datetime64[us, UTC]")
    ids = [request_id] * n if request_id is None or isinstance(request_id, str) else request_id
    return {
        "timestamp": stamps,
        "model": pd.array([model] * n, dtype="str"),
        "version": pd.array([str(version)] * n, dtype="str"),
        "source": pd.array([source] * n, dtype="str"),
        "request_id": pd.array(list(ids), dtype="str"),
        "row": np.asarray(rows if rows is not None else range(n), dtype="int64"),
        "key": pd.array(list(keys) if keys is not None else [None] * n, dtype="str"),
    }


def _plain_predictions(predictions: Sequence[Any] | np.ndarray | pd.Series) -> Any:
    values = pd.Series(list(predictions) if not isinstance(predictions, pd.Series) else predictions)
    values = values.reset_index(drop=True)
    nested = (list, dict, tuple)  # asked of each type present, not of each of many rows
    if values.dtype == object and any(issubclass(t, nested) for t in set(map(type, values))):
        return values.map(json.dumps).to_numpy()  # multi-output: one JSON value per row
    return values.to_numpy()


class PredictionLog:
    """Append-only store of predictions at ``target`` (a directory, a database URL or ``off``)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.enabled = target.strip().lower() not in {"", "off", "none", "false", "0"}
        self.is_database = is_database_url(target)

    def __repr__(self) -> str:
        return f"PredictionLog({redact_url(self.target)!r})"

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
        frame = scored_frame(
            inputs,
            predictions,
            model=model,
            version=version,
            source=source,
            request_id=request_id,
            timestamp=timestamp,
        )
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
        partial, final = self.stage_parquet(model, frame)
        partial.replace(final)  # readers never see half a part file

    def stage_parquet(self, model: str, frame: pd.DataFrame) -> tuple[Path, Path]:
        """``frame`` as a hidden part file, and the name that publishes it (a rename)."""
        partial, final = self._part(model, frame["timestamp"].iloc[0])
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        # Dictionary-encode text only: tried on float features it fails and doubles the write.
        frame.to_parquet(partial, index=False, use_dictionary=text or False)
        return partial, final

    def write_table(self, model: str, table: Any, text: Sequence[str]) -> None:
        """Rows already in the log's shape as an Arrow table with the ``pandas`` metadata
        ``to_parquet`` writes (:mod:`runway.store.predlog_arrow`), as one Parquet part, written
        as :meth:`stage_parquet` writes a frame (``text``: the columns it dictionary-encodes)."""
        import pyarrow.parquet as pq

        if not self.enabled or table.num_rows == 0:
            return
        partial, final = self._part(model, table.column("timestamp")[0].as_py())
        pq.write_table(table, partial, compression="snappy", use_dictionary=list(text) or False)
        partial.replace(final)  # readers never see half a part file

    def _part(self, model: str, first: datetime) -> tuple[Path, Path]:
        """A new part's hidden name and its published one, in the day of its first row."""
        folder = Path(self.target) / model / f"date={first.strftime('%Y-%m-%d')}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{next(_counter)}.parquet"
        return folder / f".{name}.tmp", folder / name

    def _write_sql(self, model: str, frame: pd.DataFrame) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.target)
        table = table_name(model)
        try:
            _add_missing_columns(engine, table, frame)
            frame.to_sql(table, engine, if_exists="append", index=False)
        finally:
            engine.dispose()

    def read(self, model: str) -> pd.DataFrame:
        """Every recorded row of ``model``, oldest first (small logs and tests)."""
        batches = list(self.read_window(model, None, None))
        if not batches:
            return pd.DataFrame(columns=[*META, PREDICTION])
        frame = pd.concat(batches, ignore_index=True)
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)

    def read_window(
        self,
        model: str,
        since: datetime | None,
        until: datetime | None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 100_000,
    ) -> Iterator[pd.DataFrame]:
        """Rows of ``model`` logged in ``[since, until)``, a batch at a time (bounded memory).

        ``columns`` limits what is read (those a part file lacks are absent from its batches).
        """
        if not self.enabled:
            return
        if self.is_database:
            yield from self._read_sql(model, since, until, columns, batch_rows)
        else:
            yield from self._read_parquet(model, since, until, columns, batch_rows)

    def _read_parquet(
        self,
        model: str,
        since: datetime | None,
        until: datetime | None,
        columns: Sequence[str] | None,
        batch_rows: int,
    ) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        for part in self.parts(model, since, until):
            file = pq.ParquetFile(part)
            wanted = (
                None if columns is None else [c for c in columns if c in file.schema_arrow.names]
            )
            for batch in file.iter_batches(batch_size=batch_rows, columns=wanted):
                frame = batch.to_pandas()
                if "timestamp" in frame:
                    frame = frame.loc[_in_window(frame["timestamp"], since, until)]
                if len(frame):
                    yield frame.reset_index(drop=True)

    def parts(self, model: str, since: datetime | None, until: datetime | None) -> list[Path]:
        """The Parquet part files that may hold rows of ``[since, until)``.

        A part sits in the day partition of its first row, so the day before
        ``since`` is read too (a flush straddling midnight).
        """
        root = Path(self.target) / model
        first = (since - timedelta(days=1)).date() if since is not None else None
        last = until.date() if until is not None else None
        found = []
        for folder in sorted(root.glob("date=*")):
            try:
                day = datetime.strptime(folder.name[5:], "%Y-%m-%d").date()
            except ValueError:
                continue
            if (first is None or day >= first) and (last is None or day <= last):
                found.extend(sorted(folder.glob("part-*.parquet")))
        return found

    def _read_sql(
        self,
        model: str,
        since: datetime | None,
        until: datetime | None,
        columns: Sequence[str] | None,
        batch_rows: int,
    ) -> Iterator[pd.DataFrame]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.target)
        table = table_name(model)
        try:
            inspector = sqlalchemy.inspect(engine)
            if not inspector.has_table(table):
                return
            present = [c["name"] for c in inspector.get_columns(table)]
            wanted = present if columns is None else [c for c in columns if c in present]
            t = sqlalchemy.table(table, *(sqlalchemy.column(c) for c in present))
            query = sqlalchemy.select(*(t.c[c] for c in wanted))
            # SQLite keeps timestamps as text in pandas' format: compare them after reading.
            if engine.dialect.name != "sqlite":
                if since is not None:
                    query = query.where(t.c.timestamp >= since)
                if until is not None:
                    query = query.where(t.c.timestamp < until)
            with engine.connect() as connection:
                for frame in pd.read_sql_query(query, connection, chunksize=batch_rows):
                    if "timestamp" in frame:
                        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
                        frame = frame.loc[_in_window(frame["timestamp"], since, until)]
                    if len(frame):
                        yield frame.reset_index(drop=True)
        finally:
            engine.dispose()


def _in_window(stamps: pd.Series, since: datetime | None, until: datetime | None) -> np.ndarray:
    keep = np.ones(len(stamps), dtype=bool)
    if since is not None:
        keep &= (stamps >= since).to_numpy()
    if until is not None:
        keep &= (stamps < until).to_numpy()
    return keep


def _add_missing_columns(engine: Any, table: str, frame: pd.DataFrame) -> None:
    """Columns a newer runway writes that an older table lacks are added before appending.

    ``engine`` may be a connection in a transaction: the columns are added in it.
    """
    import sqlalchemy

    inspector = sqlalchemy.inspect(engine)
    if not inspector.has_table(table):
        return
    present = {c["name"] for c in inspector.get_columns(table)}
    missing = [c for c in frame.columns if c not in present]
    if not missing:
        return
    preparer = engine.dialect.identifier_preparer
    within = contextlib.nullcontext(engine)
    with engine.begin() if isinstance(engine, sqlalchemy.Engine) else within as connection:
        for name in missing:
            kind = "FLOAT" if pd.api.types.is_float_dtype(frame[name]) else "TEXT"
            if pd.api.types.is_integer_dtype(frame[name]):
                kind = "BIGINT"
            connection.execute(
                sqlalchemy.text(
                    f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(name)} {kind}"
                )
            )


def read_predictions(model: str, target: str | None = None) -> pd.DataFrame:
    """The prediction log of ``model`` (from ``RUNWAY_PREDICTION_LOG`` unless given)."""
    return PredictionLog(target or get_settings().prediction_log).read(model)
