"""Files for batch scoring: CSV or Parquet, on local disk or S3, read in chunks, written atomically.

Reading never holds a whole file in memory: CSV through ``pandas.read_csv(chunksize=)``,
Parquet through ``pyarrow.parquet.ParquetFile.iter_batches``. An ``s3://bucket/key``
input is downloaded to a temporary file first (then read in chunks like a local one).

Writing is atomic. A local output is written to a hidden temporary name in the
same directory (``.<name>.tmp-<pid>``) and renamed over the final path with
``os.replace`` once complete; an S3 output is written locally and uploaded when
complete (an S3 PUT, multipart or not, makes the object visible only when it is
whole). A crash at any point leaves either the previous file or none at the
final path, never a partial one.

S3 goes through plain boto3, so AWS S3 and S3-compatible stores (MinIO, moto)
work alike; the endpoint comes from ``AWS_ENDPOINT_URL`` or MLflow's
``MLFLOW_S3_ENDPOINT_URL``, the credentials from boto3's usual chain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from runway.errors import ScoringError

log = logging.getLogger(__name__)

Format = Literal["csv", "parquet"]
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def is_s3(uri: str | Path) -> bool:
    """True for ``s3://bucket/key`` URIs."""
    return str(uri).startswith("s3://")


def file_format(uri: str | Path) -> Format:
    """``csv`` or ``parquet``, from the file name's suffix."""
    suffix = Path(str(uri)).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ScoringError(
            f"{uri}: unknown file type {suffix or '(no suffix)'!r}; "
            "use a .csv or .parquet (.pq) file name"
        )
    return _SUFFIXES[suffix]


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise ScoringError(f"{uri}: not an S3 object URI; expected s3://bucket/key")
    return match.group(1), match.group(2)


def s3_client() -> Any:
    """A boto3 S3 client on ``AWS_ENDPOINT_URL`` / ``MLFLOW_S3_ENDPOINT_URL`` if set."""
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def sibling(uri: str, tag: str) -> str:
    """``<dir>/<stem>.<tag><suffix>`` next to ``uri`` (local path or S3 URI)."""
    head, _, name = str(uri).rpartition("/")
    stem, dot, suffix = name.partition(".")
    name = f"{stem}.{tag}.{suffix}" if dot else f"{name}.{tag}"
    return f"{head}/{name}" if head else name


def require_file(uri: str) -> Path:
    """``uri`` as a local path, if it is an existing file."""
    path = Path(uri).expanduser()
    if not path.is_file():
        raise ScoringError(
            f"{uri}: input file not found (relative paths are read from {Path.cwd()})"
        )
    return path


def require_output_folder(uri: str) -> None:
    """A local output path names a file in an existing folder (checked before any work)."""
    if is_s3(uri):
        return
    final = Path(uri).expanduser()
    if final.is_dir():
        raise ScoringError(f"{uri}: is a directory; give a file name")
    if not final.parent.is_dir():
        raise ScoringError(f"{final.parent}: the output folder does not exist; create it first")


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path holding ``uri``'s bytes: the file itself, or a downloaded S3 object."""
    if not is_s3(uri):
        yield require_file(uri)
        return
    bucket, key = split_s3(uri)
    with tempfile.TemporaryDirectory(prefix="runway-in-") as tmp:
        local = Path(tmp) / Path(key).name
        try:
            s3_client().download_file(bucket, key, str(local))
        except Exception as exc:
            raise ScoringError(f"{uri}: cannot download the input: {_s3_reason(exc)}") from exc
        yield local


def _s3_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
        if code in {"404", "NoSuchKey"}:
            return "no such object"
        if code or message:
            return f"{code}: {message}"
    return str(exc)


def exists(uri: str) -> bool:
    """Whether a local file or an S3 object exists at ``uri``."""
    if not is_s3(uri):
        return Path(uri).exists()
    bucket, key = split_s3(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
    except Exception:
        return False
    return True


def remove(uri: str) -> None:
    """Delete a local file or an S3 object, if there."""
    if not is_s3(uri):
        Path(uri).unlink(missing_ok=True)
        return
    bucket, key = split_s3(uri)
    s3_client().delete_object(Bucket=bucket, Key=key)


# --- reading ----------------------------------------------------------------------------


@dataclass
class Chunk:
    """Consecutive input rows: ``offset`` is the 0-based input row number of the first."""

    frame: pd.DataFrame
    offset: int
    table: pa.Table | None = None  # the rows as stored (Parquet), to pass them through exactly


class ChunkReader:
    """Reads a local CSV or Parquet file ``chunk_rows`` rows at a time.

    CSV columns not named in ``numeric_columns`` are read as text (identifiers
    keep their leading zeros, categories are compared as written); numeric ones
    are inferred per chunk and checked against the contract afterwards.
    """

    def __init__(
        self,
        path: Path,
        fmt: Format,
        chunk_rows: int,
        numeric_columns: frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self.format = fmt
        self.chunk_rows = chunk_rows
        self.numeric_columns = numeric_columns
        self.arrow_schema: pa.Schema | None = None
        self.total_rows: int | None = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                # Buffered, not pre-buffered: a row group is read a page at a time,
                # so a file written as one 1M-row group still streams in chunks.
                self._parquet = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
            except Exception as exc:
                raise ScoringError(f"{path}: cannot read as Parquet: {exc}") from exc
            self.arrow_schema = self._parquet.schema_arrow
            self.columns = list(self.arrow_schema.names)
            self.total_rows = self._parquet.metadata.num_rows
        else:
            try:
                header = pd.read_csv(path, nrows=0)
            except pd.errors.EmptyDataError as exc:
                raise ScoringError(f"{path}: empty file (not even a header row)") from exc
            except Exception as exc:
                raise ScoringError(f"{path}: cannot read as CSV: {exc}") from exc
            self.columns = [str(c) for c in header.columns]
        duplicated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicated:
            raise ScoringError(f"{path}: duplicated column names {duplicated}")

    def __iter__(self) -> Iterator[Chunk]:
        offset = 0
        if self.format == "parquet":
            for batch in self._parquet.iter_batches(batch_size=self.chunk_rows):
                table = pa.Table.from_batches([batch])
                yield Chunk(table.to_pandas(), offset, table)
                offset += batch.num_rows
            return
        dtypes = {c: "str" for c in self.columns if c not in self.numeric_columns}
        try:
            reader = pd.read_csv(self.path, chunksize=self.chunk_rows, dtype=dtypes)
            for frame in reader:
                frame.index = pd.RangeIndex(len(frame))
                yield Chunk(frame, offset)
                offset += len(frame)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ScoringError(
                f"{self.path}: cannot parse the CSV after row {offset}: {exc}"
            ) from exc


# --- writing ----------------------------------------------------------------------------


class TableWriter:
    """Appends Arrow tables to one CSV or Parquet file; the schema is fixed by the first write.

    Later tables are cast to that schema, so a column read as integers in one
    chunk and as floats in the next still lands in one consistent file.
    """

    def __init__(self, path: Path, fmt: Format, schema: pa.Schema | None = None) -> None:
        self.path = path
        self.format = fmt
        self.schema = schema
        self.rows = 0
        self._writer: Any = None
        self._pending_empty: pa.Table | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (an empty one only fixes the header if nothing else comes)."""
        if table.num_rows == 0:
            if self._writer is None:
                self._pending_empty = table
            return
        if self._writer is None:
            self._open(table.schema if self.schema is None else self.schema)
        assert self.schema is not None  # set by _open
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        if self.format == "parquet":
            import pyarrow.parquet as pq

            # Dictionary-encode text only: on float columns it is tried and fails, and
            # the failed attempt is a large share of every chunk's write.
            text = [
                f.name
                for f in schema
                if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            ]
            self._writer = pq.ParquetWriter(
                self.path, schema, compression="snappy", use_dictionary=text or False
            )
        else:
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(self.path, schema)

    def close(self) -> None:
        """Finish the file; with no rows written, a file with only the header (or schema)."""
        if self._writer is None:
            empty = self._pending_empty
            schema = self.schema or (empty.schema if empty is not None else pa.schema([]))
            self._open(schema)
        self._writer.close()


class AtomicFile:
    """A file that appears at ``uri`` (local or S3) only once :meth:`commit` is called.

    Until then it lives at :attr:`local`: a hidden temporary name next to a local
    target, or in a temporary directory for an S3 target. :meth:`discard`
    removes it.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._tmpdir: str | None = None
        if is_s3(uri):
            split_s3(uri)
            self._tmpdir = tempfile.mkdtemp(prefix="runway-out-")
            self.local = Path(self._tmpdir) / Path(uri).name
        else:
            require_output_folder(uri)
            final = Path(uri).expanduser()
            _remove_stale_temporaries(final)
            self.local = final.with_name(f".{final.name}.tmp-{os.getpid()}")

    def commit(self) -> None:
        """Publish the finished file at its final location (rename, or upload)."""
        if self._tmpdir is None:
            os.replace(self.local, Path(self.uri).expanduser())
            return
        bucket, key = split_s3(self.uri)
        try:
            s3_client().upload_file(str(self.local), bucket, key)
        except Exception as exc:
            raise ScoringError(f"{self.uri}: cannot upload: {_s3_reason(exc)}") from exc
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the unpublished file."""
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        else:
            self.local.unlink(missing_ok=True)


def _remove_stale_temporaries(final: Path) -> None:
    """Temporary files of killed runs for the same output (their process is gone)."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a run that did not finish", stale)
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
