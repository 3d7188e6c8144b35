"""The prediction log keeps every scored row with its inputs, in Parquet or a database."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from runway.store.predlog import PredictionLog, read_predictions, scored_frame
from runway.store.predlog_writer import BackgroundWriter

INPUTS = pd.DataFrame({"x": [1.0, 2.0, 3.0], "plan": ["a", "b", None]})


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_appended_rows_read_back_with_inputs_and_lineage(tmp_path, kind):
    target = str(tmp_path / "log") if kind == "parquet" else f"sqlite:///{tmp_path / 'log.db'}"
    sink = PredictionLog(target)
    assert (
        sink.append(INPUTS, [0, 1, 1], model="m", version="3", source="batch", request_id="r1") == 3
    )
    sink.append(INPUTS.head(1), [1], model="m", version="4", source="serve")
    logged = read_predictions("m", target)
    assert len(logged) == 4
    assert logged["input.x"].tolist() == [1.0, 2.0, 3.0, 1.0]
    assert logged["prediction"].tolist() == [0, 1, 1, 1]
    assert logged["version"].tolist() == ["3", "3", "3", "4"]
    assert str(logged["timestamp"].dt.tz) == "UTC"
    assert read_predictions("other", target).empty


def test_parquet_parts_are_never_half_written(tmp_path):
    sink = PredictionLog(str(tmp_path))
    sink.append(INPUTS, [0, 1, 1], model="m", version="1", source="batch")
    files = list(tmp_path.rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]
    assert len([f for f in files if f.suffix == ".parquet"]) == 1


def test_off_records_nothing(tmp_path):
    sink = PredictionLog("off")
    assert sink.append(INPUTS, [0, 1, 1], model="m", version="1", source="batch") == 0
    assert read_predictions("m", "off").empty


def test_mismatched_predictions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="3 input rows but 2 predictions"):
        PredictionLog(str(tmp_path)).append(INPUTS, [0, 1], model="m", version="1", source="batch")


def test_background_writer_parses_responses_off_the_request_path(tmp_path):
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=0.1)
    writer.submit(
        "m", "2", INPUTS.to_dict("records"), json.dumps({"predictions": [1, 0, 1]}).encode(), "q1"
    )
    writer.submit(
        "m", "2", INPUTS.head(1), b'{"predictions": [[0.2, 0.8]]}', "q2"
    )  # a frame, multi-output
    writer.submit("m", "2", INPUTS.head(1), b"not json", "q3")  # skipped, logged, others kept
    writer.close()
    logged = read_predictions("m", str(tmp_path))
    assert logged["request_id"].tolist() == ["q1", "q1", "q1", "q2"]
    # one key per row: the request id, with the row appended for multi-row requests
    assert logged["key"].tolist() == ["q1:0", "q1:1", "q1:2", "q2"]
    assert logged["row"].tolist() == [0, 1, 2, 0] and set(logged["status"]) == {"scored"}
    assert logged["prediction"].tolist()[:3] == ["1", "0", "1"] or logged["prediction"].tolist()[
        :3
    ] == [1, 0, 1]
    assert json.loads(logged["prediction"].iloc[3]) == [0.2, 0.8]
    assert set(logged["source"]) == {"serve"}
    assert writer.written == 4


def test_background_writer_drops_rather_than_blocks_when_full(tmp_path):
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=60, max_pending=1)
    for i in range(50):
        writer.submit("m", "1", [{"x": 1.0}], b'{"predictions": [1]}', str(i))
    assert writer.dropped > 0  # the queue held one; the rest were counted, not waited for
    writer.close()


def test_rejected_rows_are_logged_with_reasons_and_raw_values(tmp_path):
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=0.1)
    rows = [{"x": 1.0, "plan": "a"}, {"x": "oops", "plan": "b"}, {"x": 2.0, "plan": "zzz"}]
    writer.submit_rejected(
        "m", "2", rows, {1: ["column 'x': expected a number"], 2: ["unseen"]}, "q9"
    )
    writer.close()
    logged = read_predictions("m", str(tmp_path))
    assert logged["status"].tolist() == ["rejected", "rejected"]
    assert logged["row"].tolist() == [1, 2] and logged["key"].tolist() == ["q9:1", "q9:2"]
    assert logged["reason"].iloc[0] == "column 'x': expected a number"
    assert json.loads(logged["raw"].iloc[0]) == {"x": "oops", "plan": "b"}


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_window_is_read_back_in_batches_and_nothing_outside_it(tmp_path, kind):
    from datetime import UTC, datetime, timedelta

    target = str(tmp_path / "log") if kind == "parquet" else f"sqlite:///{tmp_path / 'log.db'}"
    sink = PredictionLog(target)
    start = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    for hour in range(4):  # 23:00 .. 02:00, across midnight
        frame = scored_frame(
            INPUTS,
            [0, 1, 1],
            model="m",
            version="1",
            source="batch",
            request_id=f"b{hour}",
            timestamp=start + timedelta(hours=hour),
        )
        sink.write_frame("m", frame)
    since, until = start + timedelta(hours=1), start + timedelta(hours=3)
    batches = list(sink.read_window("m", since, until, batch_rows=2))
    rows = pd.concat(batches)
    assert sorted(set(rows["request_id"])) == ["b1", "b2"] and len(rows) == 6
    assert max(len(b) for b in batches) <= 3  # streamed, not read whole


def test_a_database_log_grows_the_columns_a_newer_runway_writes(tmp_path):
    target = f"sqlite:///{tmp_path / 'log.db'}"
    sink = PredictionLog(target)
    old = scored_frame(INPUTS, [0, 1, 1], model="m", version="1", source="batch", request_id="r")
    sink.write_frame("m", old.drop(columns=["key", "row"]))  # as an older runway wrote it
    import numpy as np

    new = scored_frame(
        INPUTS,
        [0, 1, 1],
        model="m",
        version="1",
        source="batch",
        request_id="r2",
        keys=["a", "b", "c"],
        probabilities=np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]),
        classes=[0, 1],
    )
    sink.write_frame("m", new)
    logged = read_predictions("m", target)
    assert len(logged) == 6
    assert logged["key"].tolist()[3:] == ["a", "b", "c"]
    assert logged["proba.1"].tolist()[3:] == [0.1, 0.8, 0.6]


def test_many_requests_of_one_version_are_logged_as_one_frame_row_for_row(tmp_path):
    """Batched per flush, each row still carries its own request's id, key, position and time."""
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=60, flush_rows=10_000)
    for i in range(300):
        rows = [{"x": float(i), "plan": "a"}] * (1 + i % 3)
        body = json.dumps({"predictions": [i % 2] * len(rows)}).encode()
        writer.submit("m", "1" if i < 200 else "2", rows, body, f"r{i}")
    writer.submit("m", "2", [{"x": 1.0}], b'{"predictions": [1, 1]}', "bad")  # skipped alone
    writer.close()
    logged = read_predictions("m", str(tmp_path))
    assert len(logged) == sum(1 + i % 3 for i in range(300)) == writer.written
    first = logged[logged["request_id"] == "r4"]  # two rows
    assert first["key"].tolist() == ["r4:0", "r4:1"] and first["row"].tolist() == [0, 1]
    assert set(first["input.x"]) == {4.0} and set(first["version"]) == {"1"}
    assert set(logged[logged["request_id"] == "r250"]["version"]) == {"2"}
    assert "bad" not in set(logged["request_id"])
    assert logged["timestamp"].is_monotonic_increasing


def test_background_writer_logs_the_probabilities_a_caller_asked_for(tmp_path):
    """``?proba=true``: the log gets ``proba.<class>`` columns, as a batch logs them."""
    sink = PredictionLog(str(tmp_path))
    writer = BackgroundWriter(sink, flush_seconds=0.1)
    rows = INPUTS.head(2).to_dict("records")
    writer.submit("m", "2", rows, b'{"predictions": [1, 0]}', "labels-only")
    answer = b'{"predictions": [1, 0], "probabilities": [{}, {}]}'
    writer.submit("m", "2", rows, answer, "with-proba", {"0": [0.3, 0.9], "1": [0.7, 0.1]})
    writer.close()
    logged = read_predictions("m", str(tmp_path)).sort_values(["request_id", "row"])
    assert logged["request_id"].tolist() == ["labels-only"] * 2 + ["with-proba"] * 2
    assert logged["prediction"].astype(str).tolist() == ["1", "0", "1", "0"]
    assert logged["proba.1"].tolist()[2:] == [0.7, 0.1]
    assert logged["proba.0"].tolist()[2:] == [0.3, 0.9]
    assert logged["proba.1"].isna().tolist()[:2] == [True, True]  # not computed: not logged
