"""Batch scoring: a file in, a registered model's scores out, every row accounted for.

``runway score MODEL --input PATH --output PATH`` resolves the model once
(:func:`runway.store.registry.resolve`, as serving does), then reads the input in
chunks so memory stays flat whatever the file size. Each chunk is checked
against the data contract logged with the model (:func:`runway.core.columns.contract.check_frame`,
under the input policy recorded on the version): rows that break it go to the
rejects file with their reasons, the rest are cast to the model's signature and
scored. Rows in = rows scored + rows rejected, always (asserted per chunk).

What comes out:

- the output (``--output``, CSV or Parquet, local or ``s3://``): the input
  columns (or only ``--key-column`` ones), ``prediction``, ``proba_<class>`` for
  classifiers, and lineage: ``model``, ``model_version``, ``run_id``,
  ``scored_at`` (one timestamp per run: ``--scored-at`` or the run's start);
- the rejects file next to it (``<stem>.rejects.<ext>``, always written, empty
  when nothing was rejected): the input columns as read, ``row`` (0-based row
  number in the input) and ``reason``;
- the scored rows appended to the prediction log monitoring reads
  (``RUNWAY_PREDICTION_LOG``), with the batch id as ``request_id``: once the
  output is committed, and once per batch id (:mod:`runway.store.predlog_batch`).

Both files appear atomically (:mod:`runway.scoring.io`). When the reject rate
exceeds the threshold the rejects file is published but the output is not (and
an older output at that path is removed, so it cannot be mistaken for this
run's): :class:`RejectRateExceeded`, exit 7. A file the model cannot be applied
to at all (missing required columns, columns the policy rejects, unreadable)
stops before anything is scored or written: :class:`~runway.errors.ScoringError`,
exit 7.

The engine that does the work is pluggable: :class:`PandasEngine` (chunks in
this process, the default) here, ``runway.scoring.spark.SparkEngine`` from the
caller. Re-running the same command replaces both files; with the same
``scored_at`` the output is byte-for-byte the same, otherwise only ``scored_at``
differs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from runway.core.columns.contract import unverified
from runway.core.threads import threads_for
from runway.errors import ScoringError
from runway.jobs.interrupt import terminable
from runway.scoring import io as batch_io
from runway.scoring import stop
from runway.scoring.model import LoadedModel, load_model
from runway.scoring.pandas_engine import PandasEngine
from runway.scoring.result import BatchResult, RejectRateExceeded
from runway.settings import Settings, get_settings
from runway.store import predlog_batch
from runway.store.served import ResolvedModel

log = logging.getLogger(__name__)

__all__ = ["BatchResult", "Engine", "PandasEngine", "RejectRateExceeded", "ScoringOptions"]


@dataclass(frozen=True)
class ScoringOptions:
    """How a file is scored (defaults: every input column carried, probabilities, now).

    Attributes:
        key_columns: input columns to carry into the output instead of all of them.
        chunk_rows: rows per chunk for the pandas engine (default ``RUNWAY_BATCH_CHUNK_ROWS``).
        max_reject_rate: largest rejected fraction that still passes
            (default ``RUNWAY_BATCH_MAX_REJECT_RATE``).
        proba: add ``proba_<class>`` columns for classifiers.
        scored_at: the ``scored_at`` value (default: now); a scheduler passes its
            logical time so a retried run writes the same bytes.
        progress: show a progress bar on stderr.
    """

    key_columns: Sequence[str] = ()
    chunk_rows: int | None = None
    max_reject_rate: float | None = None
    proba: bool = True
    scored_at: datetime | None = None
    progress: bool = False


class Engine(Protocol):
    """Scores ``result.input`` into ``result.output`` with a loaded model; fills in the counts."""

    name: str

    def check_paths(self, input: str, output: str) -> None:
        """Refuse paths this engine cannot read or write, before the model is downloaded."""
        ...

    def run(
        self,
        loaded: LoadedModel,
        result: BatchResult,
        key_columns: Sequence[str],
        settings: Settings,
    ) -> None:
        """Score every row; set ``result``'s counts and ``published``."""
        ...


DOWNLOAD_PREFIX = "runway-score-"


# SIGTERM raises Terminated (runway.scoring.stop): the engine removes what it wrote, the CLI
# exits 143. The model download is named by pid: the next run removes a killed run's.
@terminable()
def score_file(
    model: str,
    input: str | Path,
    output: str | Path,
    options: ScoringOptions | None = None,
    *,
    stage: str | None = "Production",
    version: str | int | None = None,
    engine: Engine | None = None,
    settings: Settings | None = None,
) -> BatchResult:
    """Score every row of ``input`` with ``model`` into ``output`` (see the module docstring).

    ``input`` and ``output`` are CSV or Parquet files (by suffix), local or
    ``s3://bucket/key``; ``version`` pins a version, else ``stage`` picks one.

    Raises:
        RegistryError: the model or version does not exist.
        ScoringError: the input cannot be scored (exit 7), or too many rows were
            rejected (:class:`RejectRateExceeded`; the rejects file is written).
    """
    settings = settings or get_settings()
    options = options or ScoringOptions()
    started = time.perf_counter()
    input, output = str(input), str(output)
    chunk_rows, threshold = _limits(options, settings)
    engine = engine or PandasEngine(chunk_rows, progress=options.progress)
    _check_paths(engine, input, output)
    scored_at = (options.scored_at or datetime.now(UTC)).astimezone(UTC)

    predlog_batch.remove_orphans(DOWNLOAD_PREFIX, "the model download of a killed batch")
    with tempfile.TemporaryDirectory(prefix=f"{DOWNLOAD_PREFIX}{os.getpid()}-") as tmp:
        loaded = _load(model, stage, version, Path(tmp), options.proba, engine.name, settings)
        resolved = loaded.resolved
        result = BatchResult(
            model=resolved.name,
            version=resolved.version,
            stage=resolved.stage,
            run_id=resolved.run_id,
            input=input,
            output=output,
            rejects=batch_io.sibling(output, "rejects"),
            engine=engine.name,
            batch_id=_batch_id(resolved, input, output, scored_at),
            scored_at=scored_at,
            max_reject_rate=threshold,
            load_seconds=time.perf_counter() - started,
        )
        log.info(
            "scoring %s with %s v%s (%s) -> %s", input, model, result.version, result.stage, output
        )
        engine.run(loaded, result, options.key_columns, settings)
    if stop.arrived_while_committing():
        log.warning("SIGTERM arrived while the output was being committed: the run finished it")
    result.seconds = time.perf_counter() - started
    if result.rows_in != result.rows_scored + result.rows_rejected:  # pragma: no cover
        raise AssertionError(f"row accounting broken: {result}")
    if not result.published:
        raise RejectRateExceeded(result)
    return result


def _load(
    model: str,
    stage: str | None,
    version: str | int | None,
    workdir: Path,
    proba: bool,
    engine: str,
    settings: Settings,
) -> LoadedModel:
    """The model, with the threads its engine predicts with; says what its contract cannot check."""
    threads = threads_for("spark" if engine == "spark" else "batch", settings.threads)
    loaded = load_model(
        model,
        stage=stage,
        version=version,
        workdir=workdir,
        proba=proba,
        threads=threads,
        settings=settings,
    )
    for note in unverified(loaded.contract, loaded.policy):
        log.warning("%s", note)
    return loaded


def _limits(options: ScoringOptions, settings: Settings) -> tuple[int, float]:
    """Chunk size and reject-rate threshold: the options', else the settings', checked."""
    chunk_rows = options.chunk_rows or settings.batch_chunk_rows
    if chunk_rows <= 0:
        raise ScoringError(f"--chunk-rows must be positive, got {chunk_rows}")
    threshold = options.max_reject_rate
    if threshold is None:
        threshold = settings.batch_max_reject_rate
    if not 0 <= threshold <= 1:
        raise ScoringError(f"--max-reject-rate must be between 0 and 1, got {threshold}")
    return chunk_rows, threshold


def _check_paths(engine: Engine, input: str, output: str) -> None:
    """What can be refused before the model loads (that takes seconds): the paths."""
    engine.check_paths(input, output)
    batch_io.require_output_folder(output)
    if batch_io.is_s3(output) == batch_io.is_s3(input) and _same_path(input, output):
        raise ScoringError(f"{output}: the output would overwrite the input")


def _same_path(a: str, b: str) -> bool:
    if batch_io.is_s3(a):
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _batch_id(resolved: ResolvedModel, input: str, output: str, scored_at: datetime) -> str:
    """Deterministic per (model version, input, output, scored_at): a retry logs the same id."""
    text = "\n".join([resolved.name, resolved.version, input, output, scored_at.isoformat()])
    return "batch-" + hashlib.sha256(text.encode()).hexdigest()[:16]
