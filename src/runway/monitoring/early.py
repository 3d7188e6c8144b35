"""Count the window while MLflow loads: the monitor's reading, overlapped with its start-up.

Importing MLflow and opening its store take about two seconds of one core before
``runway monitor`` knows which version to judge; reading and counting a large
window takes most of another second, and Arrow and NumPy do it outside the GIL.
So the CLI starts :func:`start` first: a thread counts the window over the bins
of the reference profile that the last run of the same model and stage used (a
small JSON file in runway's state folder), while the main thread imports MLflow
and resolves the version.

The early counts are used only when the registry's answer is the same in full:
the same version, source run, reference profile and data contract, compared as
their JSON text and field by field (:meth:`EarlyCount.counted`). Anything else
(no file yet, a new Production version, an edited artifact, rows whose
probabilities the model would have to compute, any error in the thread) drops
them, the window is counted as before, and the registry's reference is
remembered for the next run. Labels and database logs are never counted early.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from runway.core.columns.profile import ReferenceProfile
from runway.core.columns.schema import DataContract
from runway.core.governance.monitor_policy import parse_duration
from runway.core.governance.policy import read_policy
from runway.monitoring.window import Window, WindowStats, count_window, resolve_window
from runway.settings import Settings, state_dir
from runway.store.predlog import PredictionLog

if TYPE_CHECKING:
    from runway.store.served import ResolvedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """What the counts were made against: the version and the two artifacts that set the bins."""

    version: str
    run_id: str
    profile: ReferenceProfile
    contract: DataContract

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "run_id": self.run_id,
                "profile": self.profile.model_dump(mode="json"),
                "contract": self.contract.model_dump(mode="json"),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        doc = json.loads(text)
        return cls(
            str(doc["version"]),
            str(doc["run_id"]),
            ReferenceProfile.model_validate(doc["profile"]),
            DataContract.model_validate(doc["contract"]),
        )


class _NeedsModel(Exception):
    """Served rows without probabilities: the model must score them, which is not done early."""


def _no_scorer(frame: pd.DataFrame) -> np.ndarray:
    raise _NeedsModel


class _Stopped(Exception):
    """The monitor ended (an error) before the early count was needed."""


class _StoppableLog(PredictionLog):
    """The prediction log, read until the monitor says stop (checked between batches)."""

    def __init__(self, target: str, stop: threading.Event) -> None:
        super().__init__(target)
        self.stop = stop

    def read_window(
        self,
        model: str,
        since: datetime | None,
        until: datetime | None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 100_000,
    ) -> Iterator[pd.DataFrame]:
        for batch in super().read_window(model, since, until, columns, batch_rows):
            if self.stop.is_set():
                raise _Stopped
            yield batch


class EarlyCount:
    """A window being counted in a thread against the last run's reference (see the module)."""

    def __init__(self, path: Path, window: Window, settings: Settings) -> None:
        self.path, self.window = path, window
        self._stop = threading.Event()
        self.sink = _StoppableLog(settings.prediction_log, self._stop)
        self.guess: Reference | None = None
        self.text = ""  # the file as read: the reference compared in full, order and types
        self._result: tuple[WindowStats, dict[str, int]] | None = None
        self._thread: threading.Thread | None = None

    def begin(self, model: str) -> None:
        """Start the thread if the last run's reference is remembered."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            self.text = self.path.read_text(encoding="utf-8")
            self.guess = Reference.from_json(self.text)
        # A database log is read through SQLAlchemy, which MLflow is importing meanwhile:
        # two threads importing one package is not worth the risk; it is counted as before.
        if self.guess is None or not self.sink.enabled or self.sink.is_database:
            return
        # What the thread would import first, imported here: while the main thread imports
        # MLflow, the counting thread imports nothing (no two threads in one package).
        import pyarrow.pandas_compat
        import pyarrow.parquet
        import pyarrow.vendored.version  # noqa: F401

        self._thread = threading.Thread(
            target=self._count, args=(model, self.guess), name="runway-monitor-early"
        )
        self._thread.start()

    def _count(self, model: str, guess: Reference) -> None:
        try:
            stats = WindowStats.for_reference(guess.profile, guess.contract)
            scorer = _no_scorer if stats.classes else None
            others = count_window(
                stats, self.sink, model, guess.version, self.window, scorer=scorer
            )
            self._result = (stats, others)
        except _Stopped:
            pass
        except _NeedsModel:
            log.debug("early count dropped: served rows need the model's probabilities")
        except Exception as exc:  # anything: the window is counted again, the usual way
            log.debug("early count dropped: %s", exc)

    def counted(
        self, resolved: ResolvedModel, profile: ReferenceProfile, contract: DataContract
    ) -> tuple[WindowStats, dict[str, int]] | None:
        """The early counts if they were made against exactly this reference, else None;
        the reference is remembered for the next run either way."""
        actual = Reference(resolved.version, resolved.run_id or "", profile, contract)
        text = actual.to_json()
        if text != self.text or actual != self.guess:
            self.stop()  # counting against another reference: no use waiting for it
            self._remember(text)
            return None
        if self._thread is not None:
            self._thread.join()
        return self._result

    def stop(self) -> None:
        """End the thread (at its next batch) if it still runs: the monitor is done."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _remember(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(self.path)  # whole or not at all, whoever else runs


def reference_file(model: str, stage: str, version: str | None, settings: Settings) -> Path:
    """Where the last reference of ``model`` at ``stage`` (or ``version``) is kept, per store."""
    key = json.dumps([settings.tracking_uri, model, version or stage])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return state_dir() / "monitor-reference" / f"{digest}.json"


def start(
    model: str,
    stage: str,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    length: str | None,
    policy_file: str | None,
    settings: Settings,
) -> EarlyCount | None:
    """Begin counting the window ``runway monitor`` will judge, in a thread, when a reference
    is remembered; None when the window is not known yet. Never raises: the monitor reports
    any problem (a missing policy, a bad ``--window``) itself, in its own order."""
    try:
        policy = read_policy(model, settings.registry_dir, policy_file).monitor
        window = resolve_window(
            since, until, parse_duration(length) if length else policy.window_length
        )
        early = EarlyCount(reference_file(model, stage, version, settings), window, settings)
        early.begin(model)
    except Exception as exc:  # an early count is an optimisation, never a reason to fail
        log.debug("no early count: %s", exc)
        return None
    return early
