"""Batch scoring's file handling: names, formats, chunked reads, schema-stable and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from runway.core.columns.contract import DataContract, cast_to_signature, parse_csv_numbers
from runway.errors import ScoringError
from runway.scoring import io as batch_io


@pytest.mark.parametrize(
    "uri,rejects",
    [
        ("out/scores.parquet", "out/scores.rejects.parquet"),
        ("scores.csv", "scores.rejects.csv"),
        ("s3://bucket/day/2026-01-01.parquet", "s3://bucket/day/2026-01-01.rejects.parquet"),
        ("/abs/noext", "/abs/noext.rejects"),
    ],
)
def test_rejects_file_sits_next_to_the_output(uri, rejects):
    assert batch_io.sibling(uri, "rejects") == rejects


def test_formats_come_from_the_suffix():
    assert batch_io.file_format("a.CSV") == "csv"
    assert batch_io.file_format("s3://b/k.pq") == "parquet"
    with pytest.raises(ScoringError, match=r"unknown file type '\.json'"):
        batch_io.file_format("a.json")
    with pytest.raises(ScoringError, match="expected s3://bucket/key"):
        batch_io.split_s3("s3://bucket-only")


def test_chunks_cover_every_row_with_their_offsets(tmp_path):
    frame = pd.DataFrame({"id": [f"{i:03d}" for i in range(25)], "x": np.arange(25.0)})
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet")
    for name, fmt in (("f.csv", "csv"), ("f.parquet", "parquet")):
        reader = batch_io.ChunkReader(tmp_path / name, fmt, 10, frozenset({"x"}))
        chunks = list(reader)
        assert [c.offset for c in chunks] == [0, 10, 20]
        assert [len(c.frame) for c in chunks] == [10, 10, 5]
        assert chunks[1].frame["id"].tolist()[0] == "010"  # text kept as text ("010", not 10)
    assert batch_io.ChunkReader(tmp_path / "f.parquet", "parquet", 10).total_rows == 25


def test_empty_or_missing_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ScoringError, match="empty file"):
        batch_io.ChunkReader(tmp_path / "empty.csv", "csv", 10)
    with pytest.raises(ScoringError, match="input file not found"), batch_io.local_copy("nope.csv"):
        pass


def test_the_writer_keeps_the_first_schema(tmp_path):
    path = tmp_path / "o.parquet"
    writer = batch_io.TableWriter(path, "parquet")
    writer.write(pa.table({"a": pa.array([1, 2], pa.float64())}))
    writer.write(pa.table({"a": pa.array([3], pa.int64())}))  # an all-integer chunk
    writer.close()
    assert pd.read_parquet(path)["a"].tolist() == [1.0, 2.0, 3.0]


def test_a_writer_with_no_rows_still_writes_the_header(tmp_path):
    writer = batch_io.TableWriter(tmp_path / "o.csv", "csv")
    writer.write(pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())}))
    writer.close()
    assert (tmp_path / "o.csv").read_text().strip() == '"a","b"'


def test_atomic_file_appears_only_on_commit(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    f = batch_io.AtomicFile(str(target))
    assert f.local.parent == tmp_path and f.local.name.startswith(".out.csv.tmp-")
    f.local.write_text("new\n")
    assert target.read_text() == "old\n"
    f.commit()
    assert target.read_text() == "new\n" and not f.local.exists()

    g = batch_io.AtomicFile(str(target))
    g.local.write_text("half")
    g.discard()
    assert target.read_text() == "new\n" and not g.local.exists()


def test_temporaries_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".out.csv.tmp-{dead.stdout.strip()}"
    live = tmp_path / f".out.csv.tmp-{os.getpid()}"
    stale.write_text("x")
    live.write_text("x")
    batch_io.AtomicFile(str(tmp_path / "out.csv"))
    assert not stale.exists() and live.exists()


def test_output_directory_must_exist(tmp_path):
    with pytest.raises(ScoringError, match="the output folder does not exist"):
        batch_io.AtomicFile(str(tmp_path / "no" / "out.csv"))


def test_csv_text_in_a_numeric_column_is_parsed_except_the_bad_cells():
    frame = pd.DataFrame({"x": pd.Series(["1.5", "oops", None, "7"], dtype="str"), "c": ["a"] * 4})
    contract = DataContract.model_validate(
        {
            "columns": {
                "x": {"kind": "numeric", "dtype": "float64"},
                "c": {"kind": "categorical", "dtype": "object"},
            }
        }
    )
    parsed = parse_csv_numbers(frame, contract)
    assert parsed["x"].tolist()[:2] == [1.5, "oops"] and parsed["x"][3] == 7
    assert pd.isna(parsed["x"][2])
    assert parsed["c"].tolist() == ["a"] * 4


def test_cast_to_signature_types():
    valid = pd.DataFrame({"f": [1.0, 2.0], "n": [3.0, 4.0], "m": [5.0, np.nan], "s": ["a", "b"]})
    types = {"s": "string", "n": "long", "m": "long", "f": "double"}
    cast = cast_to_signature(valid, types, list(valid))
    assert list(cast.columns) == ["s", "n", "m", "f"]  # the signature's order
    assert cast["n"].dtype == "int64" and cast["f"].dtype == "float64"
    assert cast["m"].dtype == "float64"  # a missing value stays NaN for the imputer
