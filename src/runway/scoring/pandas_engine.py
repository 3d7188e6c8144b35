"""The default batch engine: pandas chunks in this process, one writer thread beside them.

Memory is bounded by the chunk: CSV is read with ``read_csv(chunksize=)``,
Parquet page by page; chunk i is written while chunk i+1 is checked and scored.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd
import pyarrow as pa

from runway.core.columns.contract import CheckResult, check_frame, parse_csv_numbers
from runway.core.threads import limit
from runway.errors import ScoringError
from runway.net import redact_text
from runway.scoring import io as batch_io
from runway.scoring import stop
from runway.scoring.model import LoadedModel
from runway.scoring.result import BatchResult, reason_kind
from runway.scoring.tables import log_frame, output_table, rejects_schema, rejects_table
from runway.settings import Settings
from runway.store.predlog import PredictionLog
from runway.store.predlog_batch import StagedBatch

log = logging.getLogger(__name__)


class PandasEngine:
    """Score a local or S3 CSV/Parquet file ``chunk_rows`` rows at a time."""

    name = "pandas"

    def __init__(self, chunk_rows: int, *, progress: bool = False) -> None:
        self.chunk_rows = chunk_rows
        self.progress = progress

    def check_paths(self, input: str, output: str) -> None:
        """Both files have a known format; a local input exists (before the model downloads)."""
        batch_io.file_format(input)
        batch_io.file_format(output)
        if not batch_io.is_s3(input):
            batch_io.require_file(input)

    def run(
        self,
        loaded: LoadedModel,
        result: BatchResult,
        key_columns: Sequence[str],
        settings: Settings,
    ) -> None:
        """Score every chunk, write output and rejects, publish both (see :mod:`runway.scoring.batch`)."""
        out_format = batch_io.file_format(result.output)
        with batch_io.local_copy(result.input) as local:
            reader = batch_io.ChunkReader(
                local, batch_io.file_format(local), self.chunk_rows, frozenset(loaded.numeric)
            )
            passthrough = loaded.passthrough(reader.columns, key_columns, result.input)
            out_file = batch_io.AtomicFile(result.output)
            rej_file = batch_io.AtomicFile(result.rejects)
            bar = _progress(reader.total_rows, self.progress)
            out = batch_io.TableWriter(out_file.local, out_format)
            rej = batch_io.TableWriter(rej_file.local, out_format, rejects_schema(reader))
            # the rows go to the prediction log once the output is committed, once per batch id
            staged = StagedBatch(
                PredictionLog(settings.prediction_log), result.model, result.batch_id
            )
            try:
                columns = (passthrough, list(key_columns))
                self._chunks(loaded, result, reader, columns, (out, rej, staged), bar)
                out.close()
                rej.close()
                bar.close()
            except BaseException:  # SIGTERM too (Terminated): nothing of this run stays
                bar.close()
                out_file.discard()
                rej_file.discard()
                staged.discard()
                raise
            stop.committing()  # the output and its log rows: both or neither
            try:
                _publish(result, out_file, rej_file)
            except BaseException:
                out_file.discard()
                rej_file.discard()
                staged.discard()
                raise
            _log(result, staged)

    def _chunks(
        self,
        loaded: LoadedModel,
        result: BatchResult,
        reader: batch_io.ChunkReader,
        columns: tuple[list[str], list[str]],
        writers: tuple[batch_io.TableWriter, batch_io.TableWriter, StagedBatch],
        bar: Any,
    ) -> None:
        passthrough, key_columns = columns
        out, rej, staged = writers
        started = time.perf_counter()

        def write(out_table: pa.Table, rej_table: pa.Table, logged: pd.DataFrame) -> None:
            out.write(out_table)
            rej.write(rej_table)
            staged.add(logged)

        # One writer thread: chunk i is written while chunk i+1 is checked and scored
        # (pyarrow and scikit-learn release the GIL). At most one chunk waits, so
        # memory stays bounded by the chunk size.
        pending: Future[None] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="runway-score-writer") as writer:
            for chunk in reader:
                present = [c for c in loaded.features if c in chunk.frame.columns]
                features = chunk.frame[present]
                if chunk.table is None:
                    features = parse_csv_numbers(features, loaded.contract)
                check = check_frame(features, loaded.contract, loaded.policy)
                if check.problems:  # pragma: no cover - passthrough() caught these
                    raise ScoringError(f"{result.input}: {check.problems[0]}")
                with limit(loaded.threads):
                    labels, probabilities = loaded.predict(loaded.cast(check.valid))
                tables = (
                    output_table(loaded, result, chunk, check, passthrough, labels, probabilities),
                    rejects_table(reader, chunk, check),
                    log_frame(loaded, result, chunk, check, key_columns, labels, probabilities)
                    if staged.sink.enabled
                    else pd.DataFrame(),
                )
                if pending is not None:
                    pending.result()
                pending = writer.submit(write, *tables)
                count(result, len(chunk.frame), len(check.valid), check)
                bar.update(len(chunk.frame))
                if bar.disable:
                    elapsed = time.perf_counter() - started
                    rate = f"{result.rows_in / elapsed:,.0f}" if elapsed else "-"
                    log.info("%s rows done (%s rows/s)", f"{result.rows_in:,}", rate)
            if pending is not None:
                pending.result()


def count(result: BatchResult, rows: int, scored: int, check: CheckResult) -> None:
    """Add one chunk's rows to the run's counts (rows in = scored + rejected, asserted)."""
    rejected = len(check.rejected)
    if rows != scored + rejected:
        raise AssertionError(f"chunk of {rows} rows: {scored} scored + {rejected} rejected")
    result.rows_in += rows
    result.rows_scored += scored
    result.rows_rejected += rejected
    for reasons in check.rejected.values():
        for key in {reason_kind(reason) for reason in reasons}:  # every rule a row broke
            result.reasons[key] = result.reasons.get(key, 0) + 1


def _log(result: BatchResult, staged: StagedBatch) -> None:
    """The committed batch's rows into the prediction log (none when the run did not pass)."""
    if not result.published:
        staged.discard()
        return
    try:
        staged.commit()
    except Exception as exc:
        reason = redact_text(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScoringError(
            f"{result.output} is written, but its {staged.rows} rows could not be logged to "
            f"the prediction log ({reason}); run it again with the same --scored-at to log "
            "them (a batch is logged once)"
        ) from exc


def _publish(
    result: BatchResult, out_file: batch_io.AtomicFile, rej_file: batch_io.AtomicFile
) -> None:
    """Rejects first, then the output (so a visible output always has its rejects beside it)."""
    rej_file.commit()
    if result.reject_rate > result.max_reject_rate:
        out_file.discard()
        if batch_io.exists(result.output):
            log.warning("removing %s from an earlier run: this run did not pass", result.output)
            batch_io.remove(result.output)
        return
    if batch_io.exists(result.output):
        log.info("replacing %s", result.output)
    out_file.commit()
    result.published = True


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        desc="scoring",
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
        dynamic_ncols=True,
    )
