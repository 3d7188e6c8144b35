"""Each served row names the replica that answered it; logs from before the column still read."""

from __future__ import annotations

import pandas as pd
import pytest

from runway.store.predlog import PredictionLog, read_predictions
from runway.store.predlog_writer import BackgroundWriter

ROWS = [{"x": 1.0, "plan": "a"}, {"x": 2.0, "plan": "b"}]


def _serve(sink: PredictionLog, request_id: str, replica: str = "") -> None:
    writer = BackgroundWriter(sink, flush_seconds=0.05, replica=replica)
    writer.submit("m", "1", ROWS, b'{"predictions": [0, 1]}', request_id)
    writer.submit_rejected("m", "1", ROWS, {1: ["column 'x': expected a number"]}, request_id)
    writer.close()


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_rows_name_their_replica_and_a_log_from_before_the_column_still_reads(tmp_path, kind):
    """Issue 28: two replicas share one log; rows an older runway wrote (no column: a Parquet
    part without it, a table the newer writer adds the nullable column to) read as None,
    through the same window reader the monitor uses."""
    target = str(tmp_path / "log") if kind == "parquet" else f"sqlite:///{tmp_path / 'log.db'}"
    sink = PredictionLog(target)
    _serve(sink, "old")  # as runway wrote it before (no replica)
    _serve(sink, "a", replica="host:8081")
    _serve(sink, "b", replica="host:8082")
    logged = read_predictions("m", target)
    by_request = logged.groupby("request_id")["replica"].agg(lambda s: set(s.fillna("-")))
    assert by_request.to_dict() == {"old": {"-"}, "a": {"host:8081"}, "b": {"host:8082"}}
    assert set(logged["status"]) == {"scored", "rejected"} and len(logged) == 9
    window = pd.concat(list(sink.read_window("m", None, None)), ignore_index=True)
    assert len(window) == 9
    assert sorted(window["replica"].dropna().unique()) == ["host:8081", "host:8082"]
