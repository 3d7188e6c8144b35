"""Prediction-log rows held on local disk while their sink (the team's database) is down.

:class:`DiskBuffer` keeps each batch the sink refused as a Parquet file in the
user's own state folder (``<state dir>/predlog-buffer/<sink digest>``, 0700,
files 0600: they hold request data), up to ``max_rows`` rows; what does not
fit is dropped and counted. :meth:`DiskBuffer.replay` writes the files to the
sink, oldest first, once it answers again. A server restarted during an outage
finds the files of its predecessor and replays them too; a file is claimed by
a rename before it is written, so two servers sharing the folder do not log
it twice.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from pathlib import Path

import pandas as pd

from runway.net import redact_url
from runway.settings import state_dir
from runway.store.predlog import PredictionLog

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 100_000
_SUFFIX = ".parquet"
_CLAIMED = ".replaying-"  # <file>.replaying-<pid>: being written by that process
_counter = itertools.count()


def buffer_dir(target: str) -> Path:
    """Where rows refused by the sink at ``target`` wait (one folder per sink)."""
    digest = hashlib.sha256(redact_url(target).encode()).hexdigest()[:16]
    return state_dir() / "predlog-buffer" / digest


class DiskBuffer:
    """Rows of a :class:`PredictionLog` its sink refused, on disk, bounded by ``max_rows``."""

    def __init__(self, sink: PredictionLog, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.sink = sink
        self.max_rows = max_rows
        self.folder = buffer_dir(sink.target)
        self.dropped = 0  # rows that did not fit
        self._release_orphans()
        self.rows = sum(_rows_in(path) for path in self._files())  # held now

    def hold(self, frame: pd.DataFrame) -> int:
        """Keep ``frame`` (rows in the log's shape) to write later; the rows kept.

        Rows beyond ``max_rows`` are dropped (the newest: what is held stays in order).
        """
        room = max(0, self.max_rows - self.rows)
        kept = frame.head(room)
        self.dropped += len(frame) - len(kept)
        if kept.empty:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        stamp = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}"
        final = self.folder / f"{stamp}-{len(kept)}{_SUFFIX}"
        partial = self.folder / f".{final.name}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        kept.to_parquet(partial, index=False)
        partial.replace(final)
        self.rows += len(kept)
        return len(kept)

    def replay(self) -> int:
        """Write the held rows to the sink, oldest first; the rows written.

        Stops (raising) at the first batch the sink refuses: that one waits for the next try.
        """
        written = 0
        for path in self._files():
            claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another server took it
                continue
            try:
                frame = pd.read_parquet(claimed)
                self.sink.write_frame(str(frame["model"].iloc[0]), frame)
            except BaseException:
                claimed.rename(path)  # not written: it stays for the next try
                raise
            claimed.unlink()
            self.rows = max(0, self.rows - len(frame))
            written += len(frame)
        return written

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"*{_SUFFIX}"))

    def _release_orphans(self) -> None:
        """Files a crashed server had claimed: back in the queue."""
        if not self.folder.is_dir():
            return
        for claimed in self.folder.glob(f"*{_SUFFIX}{_CLAIMED}*"):
            pid = claimed.name.rsplit(_CLAIMED, 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                claimed.rename(claimed.with_name(claimed.name.split(_CLAIMED)[0]))


def _rows_in(path: Path) -> int:
    """The rows a held file holds (its name says; the file is not read)."""
    count = path.name.removesuffix(_SUFFIX).rsplit("-", 1)[-1]
    return int(count) if count.isdigit() else 0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
