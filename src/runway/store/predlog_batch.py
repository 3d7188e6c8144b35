"""A batch's prediction-log rows, held back until its output is committed, then logged once.

Batch scoring writes its output atomically (a rename or an upload at the end);
its rows go to the prediction log only after that, and only once per batch id:
a batch whose upload failed logs nothing, and a retried batch (the same model
version, input, output and ``--scored-at``: the same id) is not logged twice,
so the monitor judges each batch's rows once.

While scoring, each chunk's rows are spooled to a local Parquet file (bounded
memory); :meth:`StagedBatch.commit` then writes them:

- to a directory log: as hidden part files, then a claim
  ``<dir>/<model>/_batches/<batch id>`` created exclusively (the first writer
  wins), then the parts renamed into place; a loser removes its parts;
- to a database log: in one transaction with a row in ``runway_logged_batches``
  (the batch id is its primary key: a second writer's insert fails and rolls
  back its rows).

The spool is a folder ``runway-predlog-<pid>-*`` in the temporary directory. A
run killed outright (SIGKILL, a lost machine) leaves it behind: it is never
logged (only its own run commits a spool), and the next batch removes the
spools of processes that are gone, saying so.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from runway.store.predlog import PredictionLog, _add_missing_columns, table_name

log = logging.getLogger(__name__)

BATCHES_TABLE = "runway_logged_batches"
BATCHES_DIR = "_batches"
SPOOL_PREFIX = "runway-predlog-"


class StagedBatch:
    """The rows of batch ``batch_id``, spooled locally until :meth:`commit` or :meth:`discard`."""

    def __init__(self, sink: PredictionLog, model: str, batch_id: str) -> None:
        self.sink, self.model, self.batch_id = sink, model, batch_id
        self.rows = 0
        self._dir = None
        if sink.enabled:
            remove_stale_spools()
            self._dir = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-"))
        self._spooled: list[Path] = []

    def add(self, frame: pd.DataFrame) -> None:
        """Hold one chunk's rows (already in the log's shape)."""
        if self._dir is None or frame.empty:
            return
        path = self._dir / f"{len(self._spooled):06d}.parquet"
        frame.to_parquet(path, index=False)
        self._spooled.append(path)
        self.rows += len(frame)

    def _frames(self) -> Iterator[pd.DataFrame]:
        for path in self._spooled:
            yield pd.read_parquet(path)

    def commit(self) -> int:
        """Log the held rows unless this batch id is logged already; the rows written."""
        try:
            if not self._spooled:
                return 0
            if self.sink.is_database:
                written = _commit_sql(self.sink, self.model, self.batch_id, self._frames())
            else:
                written = _commit_parquet(self.sink, self.model, self.batch_id, self._frames())
            if not written:
                log.info(
                    "batch %s is in the prediction log already: not logged again", self.batch_id
                )
                return 0
            return self.rows
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the held rows (the output was not committed)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir, self._spooled = None, []


def remove_stale_spools(folder: Path | None = None) -> list[Path]:
    """Remove the spools of batches whose process is gone (killed before commit or discard)."""
    return remove_orphans(
        SPOOL_PREFIX,
        "unlogged rows of a batch killed before its output was committed (never logged)",
        folder,
    )


def remove_orphans(prefix: str, what: str, folder: Path | None = None) -> list[Path]:
    """Remove temporary folders ``<prefix><pid>-*`` whose process is gone, one line each."""
    removed = []
    for orphan in Path(folder or tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = orphan.name.removeprefix(prefix).split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not orphan.is_dir():
            continue
        log.warning("removing %s: %s", orphan, what)
        shutil.rmtree(orphan, ignore_errors=True)
        removed.append(orphan)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _commit_parquet(
    sink: PredictionLog, model: str, batch_id: str, frames: Iterator[pd.DataFrame]
) -> bool:
    staged: list[tuple[Path, Path]] = []
    try:
        for frame in frames:
            staged.append(sink.stage_parquet(model, frame))
        claims = Path(sink.target) / model / BATCHES_DIR
        claims.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(claims / batch_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as claim:
            claim.write(f"{datetime.now(UTC).isoformat()} {sum(1 for _ in staged)} parts\n")
        for partial, final in staged:
            partial.replace(final)
        staged = []
        return True
    finally:
        for partial, _ in staged:
            partial.unlink(missing_ok=True)


def _commit_sql(
    sink: PredictionLog, model: str, batch_id: str, frames: Iterator[pd.DataFrame]
) -> bool:
    import sqlalchemy
    from sqlalchemy.exc import IntegrityError

    engine = sqlalchemy.create_engine(sink.target)
    table = table_name(model)
    meta = sqlalchemy.MetaData()
    batches = sqlalchemy.Table(
        BATCHES_TABLE,
        meta,
        sqlalchemy.Column("batch_id", sqlalchemy.String(200), primary_key=True),
        sqlalchemy.Column("model", sqlalchemy.String(200)),
        sqlalchemy.Column("logged_at", sqlalchemy.String(40)),
    )
    try:
        meta.create_all(engine)
        with engine.begin() as connection:
            found = connection.execute(
                sqlalchemy.select(batches.c.batch_id).where(batches.c.batch_id == batch_id)
            ).first()
            if found is not None:
                return False
            connection.execute(
                batches.insert().values(
                    batch_id=batch_id, model=model, logged_at=datetime.now(UTC).isoformat()
                )
            )
            for frame in frames:
                _add_missing_columns(connection, table, frame)
                frame.to_sql(table, connection, if_exists="append", index=False)
        return True
    except IntegrityError:  # another run of the same batch committed first
        return False
    finally:
        engine.dispose()
