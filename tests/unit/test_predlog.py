"""The prediction log keeps every scored row with its inputs, in Parquet or a database."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from runway.store.predlog import BackgroundWriter, PredictionLog, read_predictions

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
