"""``runway score --engine spark``: the same batch scoring on a Spark cluster.

Imported only when that engine is asked for (the CLI builds a :class:`SparkEngine`
and hands it to :func:`runway.scoring.batch.score_file`); importing it does not
import pyspark (that happens when the engine runs).

What is the same as the pandas engine: the model version (resolved once, loaded
from the same downloaded copy), the contract check (:func:`runway.core.columns.contract.check_frame`
runs on every Arrow batch through ``mapInPandas``, so the rules cannot drift
apart), the cast to the signature, the rejects with ``row`` and ``reason``, the
output and lineage columns, the reject threshold and the atomic publication.
Predictions come from ``mlflow.pyfunc.spark_udf``; class probabilities from a
pandas UDF over the same model files (shipped with ``SparkContext.addFile``).

What differs: input and output are Parquet only, and each is a Parquet
*dataset* (a directory of part files, Spark's own layout) at the given path,
on any filesystem the cluster's Hadoop configuration reaches (local,
``hdfs://``, ``s3a://``); ``row`` is the row number within its input file (an
``input_file`` column is added to the rejects when the input is several files);
the scored rows are not appended to the prediction log (executors cannot reach
a local log directory): monitor a Spark batch from its output. On a real
cluster, the executors need runway installed (the contract check runs there).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from runway.core.columns.contract import cast_to_signature, check_frame
from runway.core.threads import thread_env, threads_for
from runway.errors import ScoringError
from runway.scoring.model import PREDICTION, LoadedModel
from runway.scoring.result import LINEAGE, BatchResult, reason_kind
from runway.settings import Settings
from runway.store import models

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ROW, REASON, FILE = "__runway_row", "__runway_reason", "__runway_file"
_SPARK_TYPES = {
    "double": "double",
    "float": "float",
    "long": "bigint",
    "integer": "int",
    "string": "string",
    "boolean": "boolean",
    "datetime": "timestamp",
}


class SparkEngine:
    """Score on Spark (``master``: ``local[*]``, ``spark://...``, ``yarn``); see the module docstring."""

    name = "spark"

    def __init__(self, master: str = "local[*]", *, progress: bool = False) -> None:
        self.master = master
        self.progress = progress

    def check_paths(self, input: str, output: str) -> None:
        """Input and output are Parquet datasets."""
        for uri in (input, output):
            if not uri.rstrip("/").lower().endswith((".parquet", ".pq")) and not _is_dir(uri):
                raise ScoringError(f"{uri}: --engine spark reads and writes Parquet (.parquet)")

    def run(
        self,
        loaded: LoadedModel,
        result: BatchResult,
        key_columns: Sequence[str],
        settings: Settings,
    ) -> None:
        """Score ``result.input`` into ``result.output``; fills in ``result``'s counts."""
        threads = threads_for("spark", settings.threads)
        spark, owned = _session(self.master, self.progress, threads)
        try:
            _score(spark, loaded, result, key_columns)
        finally:
            if owned:
                spark.stop()


def _is_dir(uri: str) -> bool:
    return "://" not in uri and os.path.isdir(uri)


def _session(master: str, progress: bool, threads: int = 1) -> tuple[SparkSession, bool]:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ScoringError(
            "--engine spark needs pyspark: pip install 'runway[spark]' (and Java 17+)"
        ) from exc
    # pyspark warns about pandas 3 at every UDF; what we use of it works (tests compare engines).
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    # py4j logs "Closing down clientserver connection" at INFO, even from __del__ at exit.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # Workers run this interpreter (its venv has runway, mlflow and the model's libraries).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    builder = (
        SparkSession.builder.master(master)
        .appName("runway-score")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", str(progress and sys.stderr.isatty()).lower())
        .config("spark.ui.enabled", "false")
    )
    # Spark runs a Python worker per core already: each pins BLAS/OpenMP (runway.core.threads).
    for variable, value in thread_env(threads).items():
        builder = builder.config(f"spark.executorEnv.{variable}", value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, active is None


def _score(
    spark: SparkSession, loaded: LoadedModel, result: BatchResult, key_columns: Sequence[str]
) -> None:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    try:
        df = spark.read.parquet(result.input)
    except Exception as exc:
        raise ScoringError(f"{result.input}: cannot read as Parquet: {_first_line(exc)}") from exc
    columns = list(df.columns)
    passthrough = loaded.passthrough(columns, key_columns, result.input)
    several_files = len(df.inputFiles()) > 1
    df = df.select(
        "*", F.col("_metadata.row_index").alias(ROW), F.col("_metadata.file_path").alias(FILE)
    )
    signature = list(loaded.input_types) or loaded.features
    cast_names = {name: f"__runway_x{i}" for i, name in enumerate(signature)}
    checked = _checked(df, loaded, signature, cast_names).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        _count(checked, result)
        rejects = checked.filter(F.col(REASON).isNotNull()).select(
            *[F.col(c) for c in columns],
            F.col(ROW).cast("bigint").alias("row"),
            F.col(REASON).alias("reason"),
            *([F.col(FILE).alias("input_file")] if several_files else []),
        )
        valid = checked.filter(F.col(REASON).isNull())
        struct = F.struct(*[F.col(cast_names[n]).alias(n) for n in signature])
        predict = models.spark_udf(spark, loaded.local_dir, _result_type(loaded))
        outputs = [predict(struct).alias(PREDICTION)]
        if loaded.proba:
            probabilities = _proba_udf(spark, loaded, signature)(struct)
            outputs += [probabilities[i].alias(name) for i, name in enumerate(loaded.proba_names())]
        resolved = loaded.resolved
        scored = valid.select(
            *[F.col(c) for c in passthrough],
            *outputs,
            F.lit(resolved.name).alias(LINEAGE[0]),
            F.lit(resolved.version).alias(LINEAGE[1]),
            F.lit(resolved.run_id).alias(LINEAGE[2]),
            F.lit(result.scored_at).cast("timestamp").alias(LINEAGE[3]),
        )
        _publish(spark, result, scored, rejects)
    finally:
        checked.unpersist()


def _checked(df: Any, loaded: LoadedModel, signature: list[str], cast_names: dict[str, str]) -> Any:
    """Every row with its rejection reason (or null) and its values cast to the signature.

    :func:`runway.core.columns.contract.check_frame` runs on each Arrow batch, on the
    executors, so the rules are exactly the pandas engine's.
    """
    from pyspark.sql import types as T

    features = [c for c in loaded.features if c in df.columns]  # optional ones may be absent
    cast_types = {name: _cast_type(loaded, name) for name in signature}
    checked_schema = T.StructType(
        [
            *df.schema.fields,
            T.StructField(REASON, T.StringType()),
            *[
                T.StructField(cast_names[n], T._parse_datatype_string(cast_types[n]))
                for n in signature
            ],
        ]
    )
    # The closure ships to the executors: only plain data, not the loaded model.
    contract, policy, input_types = loaded.contract, loaded.policy, loaded.input_types

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            frame = frame.reset_index(drop=True)
            checked = check_frame(frame[features], contract, policy)
            reasons = pd.Series([None] * len(frame), dtype=object)
            for pos, why in checked.rejected.items():
                reasons[pos] = "; ".join(why)
            frame[REASON] = reasons
            valid = cast_to_signature(checked.valid, input_types, features)
            valid = valid.reindex(range(len(frame)))
            for name in signature:
                frame[cast_names[name]] = valid[name]
            yield frame

    return df.mapInPandas(check, checked_schema)


def _count(checked: Any, result: BatchResult) -> None:
    """Rows in, scored and rejected, and the reasons, into ``result``."""
    from pyspark.sql import functions as F

    counts = {row[0]: row[1] for row in checked.groupBy(F.col(REASON).isNull()).count().collect()}
    result.rows_scored = int(counts.get(True, 0))
    result.rows_rejected = int(counts.get(False, 0))
    result.rows_in = result.rows_scored + result.rows_rejected
    if result.rows_rejected:
        for row in checked.filter(F.col(REASON).isNotNull()).groupBy(REASON).count().collect():
            kind = reason_kind(row[0].split("; ")[0])
            result.reasons[kind] = result.reasons.get(kind, 0) + int(row[1])


def _publish(spark: SparkSession, result: BatchResult, scored: Any, rejects: Any) -> None:
    """Write both datasets to temporaries, then move them into place (rejects first)."""
    fs = _HadoopFs(spark)
    rejects_tmp = fs.temporary(result.rejects)
    output_tmp = fs.temporary(result.output)
    passed = result.reject_rate <= result.max_reject_rate
    try:
        rejects.write.mode("overwrite").parquet(rejects_tmp)
        if passed:
            scored.write.mode("overwrite").parquet(output_tmp)
        fs.replace(rejects_tmp, result.rejects)
        if passed:
            fs.replace(output_tmp, result.output)
            result.published = True
        elif fs.exists(result.output):
            log.warning("removing %s from an earlier run: this run did not pass", result.output)
            fs.delete(result.output)
    finally:
        fs.delete(rejects_tmp)
        fs.delete(output_tmp)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _cast_type(loaded: LoadedModel, name: str) -> str:
    kind = loaded.input_types.get(name)
    if kind in _SPARK_TYPES:
        return _SPARK_TYPES[kind]
    return "double" if name in loaded.numeric else "string"


def _result_type(loaded: LoadedModel) -> str:
    if loaded.classes is None:
        return "double"
    sample = np.asarray(loaded.classes)
    if sample.dtype.kind in "iub":
        return "long"
    if sample.dtype.kind == "f":
        return "double"
    return "string"


def _proba_udf(spark: SparkSession, loaded: LoadedModel, signature: list[str]) -> Any:
    """A pandas UDF giving ``predict_proba`` rows (array<double>) from the model's own files."""
    from pyspark import SparkFiles
    from pyspark.sql.functions import pandas_udf

    folder = loaded.local_dir.name
    spark.sparkContext.addFile(str(loaded.local_dir), recursive=True)
    cache: dict[str, Any] = {}

    @pandas_udf("array<double>")  # type: ignore[call-overload]
    def proba(features: pd.DataFrame) -> pd.Series:
        if "model" not in cache:
            from pathlib import Path

            from runway.store.models import load_sklearn

            cache["model"] = load_sklearn(Path(SparkFiles.get(folder)))
        values = cache["model"].predict_proba(features[signature])
        return pd.Series(list(np.asarray(values, dtype="float64")))

    return proba


class _HadoopFs:
    """Rename and delete through Hadoop's FileSystem API: any path the cluster can write."""

    def __init__(self, spark: SparkSession) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None  # a live SparkContext has its gateway
        self._jvm = jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, uri: str) -> Any:
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def temporary(self, uri: str) -> str:
        head, _, name = uri.rstrip("/").rpartition("/")
        tmp = f".{name}.tmp-{os.getpid()}"
        return f"{head}/{tmp}" if head else tmp

    def exists(self, uri: str) -> bool:
        path, fs = self._path(uri)
        return bool(fs.exists(path))

    def delete(self, uri: str) -> None:
        path, fs = self._path(uri)
        if fs.exists(path):
            fs.delete(path, True)

    def replace(self, src: str, dst: str) -> None:
        """Move the finished dataset ``src`` to ``dst``, replacing what was there."""
        source, fs = self._path(src)
        target, _ = self._path(dst)
        old = None
        if fs.exists(target):
            old = self._path(self.temporary(dst) + "-old")[0]
            fs.delete(old, True)
            fs.rename(target, old)
        if not fs.rename(source, target):
            raise ScoringError(f"cannot move {src} to {dst}")
        if old is not None:
            fs.delete(old, True)
