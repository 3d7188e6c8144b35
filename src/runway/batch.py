"""Batch scoring: a file in, the Production model's scores out, every row accounted for.

``runway score MODEL --input PATH --output PATH`` resolves the model once
(:func:`runway.registry.resolve`, as serving does), then reads the input in
chunks so memory stays flat whatever the file size. Each chunk is checked
against the data contract logged with the model (:func:`runway.contract.check_frame`,
under the model's input policy): rows that break it go to the rejects file with
their reasons, the rest are cast to the model's signature and scored. Rows in =
rows scored + rows rejected, always (asserted per chunk).

What comes out:

- the output (``--output``, CSV or Parquet, local or ``s3://``): the input
  columns (or only ``--key-column`` ones), ``prediction``, ``proba_<class>`` for
  classifiers, and lineage: ``model``, ``model_version``, ``run_id``,
  ``scored_at`` (one timestamp per run: ``--scored-at`` or the run's start);
- the rejects file next to it (``<stem>.rejects.<ext>``, always written, empty
  when nothing was rejected): the input columns as read, ``row`` (0-based row
  number in the input) and ``reason``;
- the scored rows appended to the prediction log monitoring reads
  (``RUNWAY_PREDICTION_LOG``), with the batch id as ``request_id``.

Both files appear atomically (:mod:`runway.batch_io`). When the reject rate
exceeds the threshold the rejects file is published but the output is not (and
an older output at that path is removed, so it cannot be mistaken for this
run's): :class:`RejectRateExceeded`, exit 7. A file the model cannot be applied
to at all (missing required columns, columns the policy rejects, unreadable)
stops before anything is scored or written: :class:`~runway.errors.ScoringError`,
exit 7.

Re-running the same command replaces both files; with the same ``--scored-at``
the output is byte-for-byte the same, otherwise only ``scored_at`` differs.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from runway import batch_io
from runway.contract import CheckPolicy, CheckResult, check_frame
from runway.errors import ScoringError
from runway.registry import ResolvedModel
from runway.settings import Settings, get_settings

log = logging.getLogger(__name__)

Engine = Literal["pandas", "spark"]
LINEAGE = ("model", "model_version", "run_id", "scored_at")
PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
REJECT_COLUMNS = ("row", "reason")

# Estimators whose predict() is, in scikit-learn's own code, classes_[argmax(predict_proba)]:
# for them one predict_proba pass gives both outputs (checked on the first chunk anyway).
_PREDICT_IS_ARGMAX = frozenset(
    {
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "HistGradientBoostingClassifier",
    }
)


@dataclass
class BatchResult:
    """What one ``runway score`` run did."""

    model: str
    version: str
    stage: str
    run_id: str | None
    input: str
    output: str
    rejects: str
    engine: str
    batch_id: str
    scored_at: datetime
    max_reject_rate: float
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    published: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # first reason of a row -> rows

    @property
    def reject_rate(self) -> float:
        """Rejected rows / input rows (0 for an empty input)."""
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0

    @property
    def rows_per_second(self) -> float:
        """Input rows per second of wall time."""
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def summary_lines(self) -> list[str]:
        """The end-of-run summary the CLI prints."""
        lines = [
            f"model     {self.model} v{self.version} ({self.stage}, run {self.run_id})",
            f"rows in   {self.rows_in:,}",
            f"scored    {self.rows_scored:,}",
            f"rejected  {self.rows_rejected:,} ({self.reject_rate:.2%}; "
            f"threshold {self.max_reject_rate:.2%})",
            f"elapsed   {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s, {self.engine})",
            f"input     {self.input}",
            f"output    {self.output}" + ("" if self.published else " (NOT written)"),
            f"rejects   {self.rejects}",
            f"batch id  {self.batch_id}",
        ]
        for reason, rows in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {rows:>9,} x {reason}")
        return lines


class RejectRateExceeded(ScoringError):
    """More rows were rejected than the threshold allows; the output was not published."""

    def __init__(self, result: BatchResult) -> None:
        super().__init__(
            f"{result.rows_rejected:,} of {result.rows_in:,} rows rejected "
            f"({result.reject_rate:.2%} > threshold {result.max_reject_rate:.2%}); "
            f"{result.output} not written; see {result.rejects}"
        )
        self.result = result


# --- the model ----------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A resolved model version, loaded once, with what scoring needs around it."""

    resolved: ResolvedModel
    contract: dict[str, Any]
    policy: CheckPolicy
    local_dir: Path
    estimator: Any
    input_types: dict[str, str]  # signature column -> MLflow type name
    classes: list[Any] | None = None
    proba: bool = False
    _argmax_checked: bool = False
    _argmax: bool = False

    @property
    def features(self) -> list[str]:
        """Contract columns, in training order."""
        return list(self.contract["columns"])

    @property
    def numeric(self) -> set[str]:
        """Contract columns of kind numeric."""
        return {c for c, e in self.contract["columns"].items() if e["kind"] == "numeric"}

    def output_names(self) -> list[str]:
        """The prediction columns this model adds."""
        probas = [f"{PROBA_PREFIX}{c}" for c in self.classes or []] if self.proba else []
        return [PREDICTION, *probas]

    def cast(self, valid: pd.DataFrame) -> pd.DataFrame:
        """Checked rows in the signature's column order and types (:func:`cast_to_signature`)."""
        return cast_to_signature(valid, self.input_types, self.features)

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and, for classifiers with ``proba``, class probabilities."""
        if len(X) == 0:
            return np.empty(0, dtype=object), None
        if not self.proba:
            return np.asarray(self.estimator.predict(X)), None
        probabilities = np.asarray(self.estimator.predict_proba(X), dtype="float64")
        if not self._argmax_checked:
            self._argmax_checked = True
            if _final_name(self.estimator) in _PREDICT_IS_ARGMAX:
                head = X.iloc[:1000]
                taken = np.asarray(self.classes, dtype=object)[probabilities[:1000].argmax(axis=1)]
                self._argmax = bool(
                    np.array_equal(taken, np.asarray(self.estimator.predict(head), dtype=object))
                )
        if self._argmax:
            labels = np.asarray(self.estimator.classes_).take(probabilities.argmax(axis=1))
        else:
            labels = np.asarray(self.estimator.predict(X))
        return labels, probabilities


def cast_to_signature(
    valid: pd.DataFrame, input_types: dict[str, str], features: list[str]
) -> pd.DataFrame:
    """Checked rows in the signature's column order and types.

    The contract check gives numeric columns as float64, so integers read from
    a file never meet pyfunc's "cannot safely convert int64 to float64";
    integer signature columns become int64 again (kept float64 when a value is
    missing, which the pipeline's imputer handles).
    """
    out = {}
    for name in list(input_types) or features:
        series = valid[name]
        kind = input_types.get(name)
        if kind in {"long", "integer"} and not series.isna().any():
            series = series.astype("int64" if kind == "long" else "int32")
        elif kind == "float":
            series = series.astype("float32")
        elif kind == "double" and series.dtype != np.float64:
            series = series.astype("float64")
        out[name] = series
    return pd.DataFrame(out, index=valid.index)


def _final_name(estimator: Any) -> str:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__name__


def load_model(
    model: str,
    *,
    stage: str | None = "Production",
    version: str | int | None = None,
    workdir: Path,
    proba: bool = True,
    settings: Settings | None = None,
) -> LoadedModel:
    """Resolve ``model`` (as serving does), download it once, load it, with its contract."""
    import mlflow.pyfunc
    from sklearn.base import is_classifier

    from runway import registry, tracking

    resolved = registry.resolve(model, stage=stage, version=version, settings=settings)
    if resolved.run_id is None:
        raise ScoringError(
            f"{resolved.uri} has no source run, so no data contract to check rows against; "
            "register versions made by `runway train` or `runway sweep`"
        )
    contract = tracking.load_contract(resolved.run_id)
    policy = registry.input_policy(model, settings)
    local = tracking.download_model(resolved.uri, workdir / "model")
    pyfunc = mlflow.pyfunc.load_model(str(local))
    estimator = pyfunc.get_raw_model()
    signature = pyfunc.metadata.signature
    input_types = {}
    if (
        signature is not None
        and signature.inputs is not None
        and signature.inputs.has_input_names()
    ):
        input_types = {
            spec.name: str(getattr(spec.type, "name", spec.type))
            for spec in signature.inputs.inputs
        }
    classifier = is_classifier(estimator) and hasattr(estimator, "predict_proba")
    classes = list(estimator.classes_) if classifier else None
    return LoadedModel(
        resolved, contract, policy, local, estimator, input_types, classes, proba and classifier
    )


# --- scoring a file -------------------------------------------------------------------------


def score_file(
    model: str,
    input: str | Path,
    output: str | Path,
    *,
    stage: str | None = "Production",
    version: str | int | None = None,
    chunk_rows: int | None = None,
    engine: Engine = "pandas",
    key_columns: Sequence[str] = (),
    max_reject_rate: float | None = None,
    proba: bool = True,
    scored_at: datetime | None = None,
    progress: bool = False,
    spark_master: str = "local[*]",
    settings: Settings | None = None,
) -> BatchResult:
    """Score every row of ``input`` with ``model`` into ``output`` (see the module docstring).

    Args:
        model: registered model name.
        input: CSV or Parquet file, local path or ``s3://bucket/key``.
        output: where the scores go (CSV or Parquet by suffix, local or S3).
        stage: the stage to take the version from (``Production`` or ``Staging``).
        version: a pinned version instead of a stage.
        chunk_rows: rows per chunk (default ``RUNWAY_BATCH_CHUNK_ROWS``).
        engine: ``pandas`` (chunks in this process) or ``spark`` (``spark_udf``).
        key_columns: input columns to carry into the output instead of all of them.
        max_reject_rate: largest rejected fraction that still passes
            (default ``RUNWAY_BATCH_MAX_REJECT_RATE``).
        proba: add ``proba_<class>`` columns for classifiers.
        scored_at: the ``scored_at`` value (default: now); a scheduler passes its
            logical time so a retried run writes the same bytes.
        progress: show a progress bar on stderr.
        spark_master: the Spark master for ``engine="spark"``.
        settings: settings (default: from the environment).

    Returns:
        The counts, paths and model lineage of the run.

    Raises:
        RegistryError: the model or version does not exist.
        ScoringError: the input cannot be scored (exit 7), or too many rows were
            rejected (:class:`RejectRateExceeded`; the rejects file is written).
    """
    settings = settings or get_settings()
    started = time.perf_counter()
    input, output = str(input), str(output)
    chunk_rows = chunk_rows or settings.batch_chunk_rows
    if chunk_rows <= 0:
        raise ScoringError(f"--chunk-rows must be positive, got {chunk_rows}")
    threshold = settings.batch_max_reject_rate if max_reject_rate is None else max_reject_rate
    if not 0 <= threshold <= 1:
        raise ScoringError(f"--max-reject-rate must be between 0 and 1, got {threshold}")
    if engine not in ("pandas", "spark"):
        raise ScoringError(f"unknown engine {engine!r}; use pandas or spark")
    if engine == "pandas":
        batch_io.file_format(input)
        batch_io.file_format(output)
        if not batch_io.is_s3(input):
            batch_io.require_file(input)  # before the model is downloaded
    if batch_io.is_s3(output) == batch_io.is_s3(input) and _same_path(input, output):
        raise ScoringError(f"{output}: the output would overwrite the input")
    scored_at = (scored_at or datetime.now(UTC)).astimezone(UTC)
    rejects = batch_io.sibling(output, "rejects")

    with tempfile.TemporaryDirectory(prefix="runway-score-") as tmp:
        loaded = load_model(
            model, stage=stage, version=version, workdir=Path(tmp), proba=proba, settings=settings
        )
        resolved = loaded.resolved
        result = BatchResult(
            model=resolved.name,
            version=resolved.version,
            stage=resolved.stage,
            run_id=resolved.run_id,
            input=input,
            output=output,
            rejects=rejects,
            engine=engine,
            batch_id=_batch_id(resolved, input, output, scored_at),
            scored_at=scored_at,
            max_reject_rate=threshold,
        )
        log.info(
            "scoring %s with %s v%s (%s) -> %s",
            input,
            resolved.name,
            resolved.version,
            resolved.stage,
            output,
        )
        if engine == "spark":
            from runway.batch_spark import score_spark

            score_spark(loaded, result, key_columns, spark_master, settings, progress)
        else:
            _score_pandas(loaded, result, key_columns, chunk_rows, settings, progress)
    result.seconds = time.perf_counter() - started
    if result.rows_in != result.rows_scored + result.rows_rejected:  # pragma: no cover
        raise AssertionError(f"row accounting broken: {result}")
    if not result.published:
        raise RejectRateExceeded(result)
    return result


def _same_path(a: str, b: str) -> bool:
    if batch_io.is_s3(a):
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _batch_id(resolved: ResolvedModel, input: str, output: str, scored_at: datetime) -> str:
    """Deterministic per (model version, input, output, scored_at): a retry logs the same id."""
    text = "\n".join([resolved.name, resolved.version, input, output, scored_at.isoformat()])
    return "batch-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def check_columns(
    loaded: LoadedModel, columns: Sequence[str], key_columns: Sequence[str], source: str
) -> list[str]:
    """The columns to pass through to the output; errors for a file the model cannot take.

    A missing required column or (under a policy that rejects them) an unknown
    column would reject every row: better said once, before anything is scored.
    """
    contract_columns = loaded.features
    missing = [c for c in contract_columns if c not in columns]
    if missing:
        raise ScoringError(
            f"{source}: required column(s) {missing} missing; the model was trained on "
            f"{', '.join(contract_columns[:20])}"
        )
    absent_keys = [c for c in key_columns if c not in columns]
    if absent_keys:
        raise ScoringError(f"{source}: key column(s) {absent_keys} not in the input")
    unknown = [c for c in columns if c not in contract_columns and c not in key_columns]
    if unknown and loaded.policy.unknown_columns == "reject":
        raise ScoringError(
            f"{source}: column(s) {unknown[:10]} are not model inputs; name identifiers "
            f"with --key-column, drop the others, or set `input: {{unknown_columns: pass}}` "
            f"in registry/{loaded.resolved.name}.yaml"
        )
    passthrough = list(key_columns) if key_columns else list(columns)
    clash = [c for c in passthrough if c in {*loaded.output_names(), *LINEAGE}]
    if clash:
        raise ScoringError(
            f"{source}: input column(s) {clash} clash with output columns; "
            "rename them or pass --key-column"
        )
    return passthrough


def _score_pandas(
    loaded: LoadedModel,
    result: BatchResult,
    key_columns: Sequence[str],
    chunk_rows: int,
    settings: Settings,
    progress: bool,
) -> None:
    from concurrent.futures import Future, ThreadPoolExecutor

    from runway.predlog import PredictionLog

    out_format = batch_io.file_format(result.output)
    with batch_io.local_copy(result.input) as local:
        reader = batch_io.ChunkReader(
            local, batch_io.file_format(local), chunk_rows, frozenset(loaded.numeric)
        )
        passthrough = check_columns(loaded, reader.columns, key_columns, result.input)
        out_file = batch_io.AtomicFile(result.output)
        rej_file = batch_io.AtomicFile(result.rejects)
        plog = PredictionLog(settings.prediction_log)
        bar = _progress(reader.total_rows, progress)
        started = time.perf_counter()
        out = batch_io.TableWriter(out_file.local, out_format)
        rej = batch_io.TableWriter(rej_file.local, out_format, _rejects_schema(reader))

        def write(out_table: pa.Table, rej_table: pa.Table, logged: pd.DataFrame) -> None:
            out.write(out_table)
            rej.write(rej_table)
            plog.write_frame(result.model, logged)

        # One writer thread: chunk i is written while chunk i+1 is checked and scored
        # (pyarrow and scikit-learn release the GIL). At most one chunk waits, so
        # memory stays bounded by the chunk size.
        pending: Future[None] | None = None
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="runway-score-writer") as writer:
                for chunk in reader:
                    features = chunk.frame[loaded.features]
                    if chunk.table is None:
                        features = _parse_numbers(features, loaded.numeric)
                    check = check_frame(features, loaded.contract, loaded.policy)
                    if check.problems:  # pragma: no cover - check_columns caught these
                        raise ScoringError(f"{result.input}: {check.problems[0]}")
                    labels, probabilities = loaded.predict(loaded.cast(check.valid))
                    tables = (
                        _output_table(
                            loaded, result, chunk, check, passthrough, labels, probabilities
                        ),
                        _rejects_table(reader, chunk, check),
                        _log_frame(check.valid, labels, result) if plog.enabled else pd.DataFrame(),
                    )
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(write, *tables)
                    _count(result, len(chunk.frame), len(check.valid), check)
                    bar.update(len(chunk.frame))
                    if bar.disable:
                        elapsed = time.perf_counter() - started
                        log.info(
                            "%s rows done (%s rows/s)",
                            f"{result.rows_in:,}",
                            f"{result.rows_in / elapsed:,.0f}" if elapsed else "-",
                        )
                if pending is not None:
                    pending.result()
            out.close()
            rej.close()
            bar.close()
            _publish(result, out_file, rej_file)
        except BaseException:
            bar.close()
            out_file.discard()
            rej_file.discard()
            raise


def _log_frame(valid: pd.DataFrame, labels: np.ndarray, result: BatchResult) -> pd.DataFrame:
    """Scored rows in the prediction log's shape (see :mod:`runway.predlog`), built columnwise."""
    from runway.predlog import INPUT_PREFIX

    columns: dict[str, Any] = dict(_log_constants(result, len(valid)))
    for name in valid.columns:
        columns[f"{INPUT_PREFIX}{name}"] = valid[name].to_numpy()
    columns["prediction"] = labels
    return pd.DataFrame(columns, copy=False)


_constants_cache: dict[tuple[str, int], dict[str, Any]] = {}


def _log_constants(result: BatchResult, n: int) -> dict[str, Any]:
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
                )
            },
        }
    return _constants_cache[key]


def _parse_numbers(frame: pd.DataFrame, numeric: set[str]) -> pd.DataFrame:
    """CSV columns that should be numbers but were read as text (one bad cell does that).

    Values that parse become numbers; the others stay as they were written, so
    the contract check rejects exactly those rows, naming the value.
    """
    text = [
        c for c in frame.columns if c in numeric and not pd.api.types.is_numeric_dtype(frame[c])
    ]
    if not text:
        return frame
    frame = frame.copy()
    for name in text:
        original = frame[name].astype(object)
        numbers = pd.to_numeric(original, errors="coerce")
        unparsed = numbers.isna().to_numpy() & original.notna().to_numpy()
        if unparsed.any():
            mixed = numbers.astype(object)
            mixed[unparsed] = original[unparsed]
            frame[name] = mixed
        else:
            frame[name] = numbers
    return frame


def _count(result: BatchResult, rows: int, scored: int, check: CheckResult) -> None:
    rejected = len(check.rejected)
    if rows != scored + rejected:
        raise AssertionError(f"chunk of {rows} rows: {scored} scored + {rejected} rejected")
    result.rows_in += rows
    result.rows_scored += scored
    result.rows_rejected += rejected
    for reasons in check.rejected.values():
        key = _reason_kind(reasons[0])
        result.reasons[key] = result.reasons.get(key, 0) + 1


def _reason_kind(reason: str) -> str:
    """A reason with its value cut off, to count alike rows together in the summary."""
    return reason.split(", got ")[0].split(" is out of range")[0]


def _publish(result: BatchResult, out_file: batch_io.AtomicFile, rej_file: Any) -> None:
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


def _constant(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type=type_), n)


def _output_table(
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
        for i, cls in enumerate(loaded.classes or []):
            values = probabilities[:, i] if probabilities is not None else np.empty(0)
            columns.append(pa.array(values, type=pa.float64()))
            names.append(f"{PROBA_PREFIX}{cls}")
    resolved = loaded.resolved
    columns += [
        _constant(resolved.name, n, pa.string()),
        _constant(resolved.version, n, pa.string()),
        _constant(resolved.run_id, n, pa.string()),
        _constant(result.scored_at, n, pa.timestamp("us", tz="UTC")),
    ]
    names += list(LINEAGE)
    return pa.Table.from_arrays(columns, names=names)


def _rejects_schema(reader: batch_io.ChunkReader) -> pa.Schema:
    """Input columns as stored (Parquet) or as text (CSV), then ``row`` and ``reason``."""
    if reader.arrow_schema is not None:
        fields = list(reader.arrow_schema)
    else:
        fields = [pa.field(name, pa.string()) for name in reader.columns]
    return pa.schema([*fields, pa.field("row", pa.int64()), pa.field("reason", pa.string())])


def _rejects_table(
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
    text = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    return pa.array(text, type=pa.string())
