"""Checked columns reach the prediction log as records did, row for row and type for type (#31).

The gateway now hands the writer the checked rows as columns (the form the backend's body
is built from) and the writer joins them list by list; a frame built from records per
flush was most of the log's cost. Every column kind, gaps, probabilities and rejected rows
are logged exactly as before: the same rows, columns, dtypes and values, Parquet and SQL.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from runway.core.columns.columnar import Columns
from runway.core.columns.contract import check_records, infer_contract
from runway.serving.canonical import canonical
from runway.store import predlog_writer
from runway.store.predlog import PredictionLog, read_predictions
from runway.store.predlog_writer import BackgroundWriter

TRAIN = pd.DataFrame(
    {
        "income": [1200.5, 3400.0, np.nan, 999.9],
        "visits": pd.Series([1, 5, 3, 2], dtype="int64"),
        "plan": ["basic", "pro", "basic", None],
        "member": [True, False, None, False],
        "joined": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-04-01"]),
    }
)
FEATURES = {"income": "numeric", "visits": "numeric", "plan": "categorical",
            "member": "boolean", "joined": "datetime"}  # fmt: skip
POOLS = {
    "income": [1500.0, 3, None, 2.5],
    "visits": [4, 4.0, 7],
    "plan": ["pro", "basic", None],
    "member": [True, False, None, "TRUE"],
    "joined": ["2024-05-01", "2024-05-01T10:00:00+02:00", None],
}
START = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _requests(seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    sizes = [1, 3, 40, 100, 2, 64, 65, 1]
    return [[{k: rng.choice(p) for k, p in POOLS.items()} for _ in range(n)] for n in sizes]


class _Clock(datetime):
    """``datetime.now`` a microsecond later at each call: both writers see the same times."""

    ticks = 0

    @classmethod
    def now(cls, tz=None):
        cls.ticks += 1
        return START + timedelta(seconds=cls.ticks, microseconds=cls.ticks)


def _log(tmp_path, kind: str, name: str, as_columns: bool, seed: int) -> pd.DataFrame:
    contract = infer_contract(TRAIN, FEATURES)
    types = {"income": "double", "visits": "double", "plan": "string", "member": "boolean",
             "joined": "datetime"}  # fmt: skip
    target = str(tmp_path / name) if kind == "parquet" else f"sqlite:///{tmp_path / name}.db"
    sink = PredictionLog(target)
    writer = BackgroundWriter(sink, flush_seconds=60, flush_rows=150, replica="gw-1:8080")
    _Clock.ticks = 0
    for i, records in enumerate(_requests(seed)):
        assert check_records(records, contract) == ([], {})
        rows = canonical(records, contract, types).rows
        assert isinstance(rows, Columns)
        logged = rows if as_columns else rows.records()  # records: what the gateway sent before
        labels = [j % 2 for j in range(len(records))]
        body = json.dumps({"predictions": labels}).encode()
        proba = {"0": [0.25] * len(records), "1": [0.75] * len(records)} if i == 3 else None
        writer.submit("m", "3", logged, body, f"req-{i}", proba)
        if i == 2:
            bad = [{**records[0], "visits": 1.5}, records[1]]
            writer.submit_rejected("m", "3", bad, {0: ["column 'visits': expected an integer, "
                                                      "got 1.5"]}, "rejected-1")  # fmt: skip
    writer.close()
    assert writer.dropped == 0
    frame = read_predictions("m", target)
    return frame.sort_values(["request_id", "row"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
@pytest.mark.parametrize("seed", range(3))
def test_checked_columns_are_logged_as_checked_records_were(tmp_path, monkeypatch, kind, seed):
    monkeypatch.setattr(predlog_writer, "datetime", _Clock)
    from_records = _log(tmp_path, kind, "records", False, seed)
    from_columns = _log(tmp_path, kind, "columns", True, seed)
    assert len(from_columns) == sum(map(len, _requests(seed))) + 1
    pd.testing.assert_frame_equal(from_columns, from_records)
    scored = from_columns[from_columns["status"] == "scored"]
    assert scored["input.plan"].isna().any() and scored["input.income"].isna().any()
    assert set(scored["replica"]) == {"gw-1:8080"}
    first = scored[scored["request_id"] == "req-2"]
    assert first["key"].tolist()[:2] == ["req-2:0", "req-2:1"]
    # each row keeps its own request's time, to the microsecond
    times = scored.groupby("request_id")["timestamp"].agg(["min", "max"])
    assert (times["min"] == times["max"]).all()
    assert pd.Timestamp(times.loc["req-0", "min"]) == pd.Timestamp(START + timedelta(1 / 86400,
                                                                                    microseconds=1))  # fmt: skip
    proba = scored[scored["request_id"] == "req-3"]
    assert proba["proba.1"].eq(0.75).all() and scored["proba.1"].isna().sum() == len(scored) - 100
    rejected = from_columns[from_columns["status"] == "rejected"]
    assert rejected["reason"].tolist() == ["column 'visits': expected an integer, got 1.5"]


def test_the_writer_joins_columns_without_going_through_records(tmp_path, monkeypatch):
    def records(_self):
        raise AssertionError("the log went through records")

    monkeypatch.setattr(Columns, "records", records)
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=60)
    for i in range(5):
        rows = Columns({"x": [1.0, None, float(i)], "plan": ["a", None, "b"]}, 3)
        writer.submit("m", "1", rows, b'{"predictions": [0, 1, 0]}', f"r{i}")
    writer.close()
    logged = read_predictions("m", str(tmp_path))
    assert len(logged) == writer.written == 15
    assert logged["input.x"].isna().sum() == 5 and logged["input.plan"].isna().sum() == 5


def test_a_logged_frame_keeps_every_input_dtype_it_always_had():
    """Text columns skip the NumPy round trip now; what the log holds is the same."""
    from runway.store.predlog import scored_frame

    inputs = pd.DataFrame(
        {
            "f": [1.0, np.nan, 3.0],
            "o": pd.Series(["a", np.nan, "c"], dtype=object),
            "s": pd.Series(["a", None, "c"], dtype="str"),
            "b": pd.Series([True, None, False], dtype=object),
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-02"]),
            "i": pd.array([1, None, 3], dtype="Int64"),
            "n": [None, None, None],
        }
    )
    frame = scored_frame(inputs, [1, 0, 1], model="m", version="1", source="batch",
                         request_id=None, timestamp=START)  # fmt: skip
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items() if name.startswith("input.")}
    assert dtypes == {"input.f": "float64", "input.o": "str", "input.s": "str",
                      "input.b": "object", "input.t": "datetime64[us]", "input.i": "float64",
                      "input.n": "object"}  # fmt: skip
    assert frame["input.s"].isna().tolist() == [False, True, False]
    assert frame["input.o"].tolist()[::2] == ["a", "c"]


def test_text_inputs_are_not_turned_into_python_objects_to_be_logged(monkeypatch):
    from runway.store.predlog import scored_frame

    original = pd.arrays.ArrowStringArray.to_numpy

    def to_numpy(self, *args, **kwargs):
        if len(self) == 100:  # the column, not the frame's column names
            raise AssertionError("a text column went through NumPy objects")
        return original(self, *args, **kwargs)

    inputs = pd.DataFrame({"plan": pd.Series(["a", None] * 50, dtype="str")})
    monkeypatch.setattr(pd.arrays.ArrowStringArray, "to_numpy", to_numpy)
    frame = scored_frame(inputs, [0] * 100, model="m", version="1", source="serve",
                         request_id="r", timestamp=START)  # fmt: skip
    assert str(frame["input.plan"].dtype) == "str" and frame["input.plan"].isna().sum() == 50


PREDICTIONS = {
    "ints": lambda i: i % 3,
    "floats": lambda i: i / 7,
    "texts": lambda i: ["yes", "no"][i % 2],
    "bools": lambda i: i % 2 == 0,
}


def _parts(tmp_path, name: str, as_columns: bool, seed: int, outputs: str, pools: dict) -> tuple:
    """One flush of scored JSON requests (no probabilities), as columns or as records: the
    part files written, and the writer."""
    contract = infer_contract(TRAIN, FEATURES)
    types = {"income": "double", "visits": "double", "plan": "string", "member": "boolean",
             "joined": "datetime"}  # fmt: skip
    target = tmp_path / name
    writer = BackgroundWriter(PredictionLog(str(target)), flush_seconds=60, flush_rows=10**6,
                              replica="gw-1:8080" if seed % 2 else "")  # fmt: skip
    _Clock.ticks = 0
    rng = random.Random(seed)
    for i, n in enumerate([1, 3, 40, 100, 2, 64, 65, 1]):
        records = [{k: rng.choice(p) for k, p in pools.items()} for _ in range(n)]
        rows = canonical(records, contract, types).rows
        assert isinstance(rows, Columns)
        labels = [PREDICTIONS[outputs](j) for j in range(n)]
        body = json.dumps({"predictions": labels}).encode()
        writer.submit("m", "3", rows if as_columns else rows.records(), body, f"req-{i}")
    writer.close()
    return sorted(target.rglob("*.parquet")), writer


GAPLESS = {**POOLS, "member": [True, False], "plan": ["pro", "basic"]}
EMPTY = {**POOLS, "income": [None], "plan": [None], "member": [None], "joined": [None]}


@pytest.mark.parametrize("outputs", list(PREDICTIONS))
@pytest.mark.parametrize(("seed", "pools"), [(0, POOLS), (1, GAPLESS), (2, EMPTY), (3, POOLS)])
def test_a_flush_of_columns_is_written_from_arrow_as_pandas_wrote_it(
    tmp_path, monkeypatch, seed, pools, outputs
):
    """The part holds the same schema (types and the pandas metadata readers use) and reads
    back to the same frame, with no frame built on the way (#31)."""
    import pyarrow.parquet as pq

    monkeypatch.setattr(predlog_writer, "datetime", _Clock)
    [old], writer = _parts(tmp_path, "records", False, seed, outputs, pools)  # through pandas
    assert writer.dropped == 0 and writer.written == 276
    framed = []
    monkeypatch.setattr(predlog_writer, "_scored_batch", lambda b: framed.append(b))
    monkeypatch.setattr(PredictionLog, "write_frame", lambda *a: framed.append(a))
    [new], writer = _parts(tmp_path, "columns", True, seed, outputs, pools)
    assert writer.dropped == 0 and writer.written == 276
    assert framed == []  # no frame built, none written
    assert pq.read_schema(new).equals(pq.read_schema(old), check_metadata=True)
    assert pq.read_table(new).equals(pq.read_table(old))
    pd.testing.assert_frame_equal(
        read_predictions("m", str(tmp_path / "columns")),
        read_predictions("m", str(tmp_path / "records")),
    )
    assert new.parent.name == old.parent.name  # the same day partition


def test_rows_a_refused_arrow_write_leaves_are_held_as_the_frame_pandas_would_write(
    tmp_path, monkeypatch
):
    from runway.store.predlog_buffer import DiskBuffer

    monkeypatch.setattr(predlog_writer, "datetime", _Clock)
    [old], _ = _parts(tmp_path, "records", False, 1, "texts", POOLS)
    held: list[pd.DataFrame] = []

    def refuse(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(PredictionLog, "write_table", refuse)
    monkeypatch.setattr(DiskBuffer, "hold", lambda self, frame: held.append(frame) or len(frame))
    parts, writer = _parts(tmp_path, "columns", True, 1, "texts", POOLS)
    assert parts == [] and writer.written == 0 and writer.dropped == 0
    [frame] = held
    pd.testing.assert_frame_equal(frame, pd.read_parquet(old))
