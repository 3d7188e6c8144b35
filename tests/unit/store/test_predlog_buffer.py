"""Served rows the prediction log's database refused wait on disk and are written when it is back
(issue 27, item 8: 57 rows sent during an outage were dropped)."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from runway.serving.metrics import Live, Metrics
from runway.store.predlog import PredictionLog, read_predictions, scored_frame
from runway.store.predlog_writer import BackgroundWriter

RESPONSE = b'{"predictions": [1]}'


def _database(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite log in a folder that does not exist yet: refused until the folder is made."""
    folder = tmp_path / "db-host"
    return f"sqlite:///{folder / 'predictions.db'}", folder


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _fast(sink: PredictionLog, **kwargs) -> BackgroundWriter:
    writer = BackgroundWriter(sink, flush_seconds=0.02, **kwargs)
    writer.retry_seconds = 0.05  # how often held rows are tried while the database is down
    return writer


def test_rows_refused_during_an_outage_are_held_and_written_when_it_is_back(tmp_path, caplog):
    target, folder = _database(tmp_path)
    writer = _fast(PredictionLog(target))
    with caplog.at_level(logging.WARNING, logger="runway.store.predlog_writer"):
        for i in range(5):
            writer.submit("m", "1", [{"x": float(i)}], RESPONSE, f"r{i}")
            time.sleep(0.03)  # several flushes, each refused
        _until(lambda: writer.dropped + getattr(writer, "buffered", 0) == 5)
        assert writer.dropped == 0 and writer.written == 0  # none lost
        held = list(writer.buffer.folder.glob("*.parquet"))
        assert held and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in held)
        assert stat.S_IMODE(writer.buffer.folder.stat().st_mode) == 0o700
        assert writer.buffer.folder.is_relative_to(tmp_path / "state")  # the user's own

        folder.mkdir()  # the database is back: written without a new request
        _until(lambda: writer.written == 5)
        writer.close()
    logged = read_predictions("m", target)
    assert sorted(logged["request_id"]) == [f"r{i}" for i in range(5)]
    assert writer.buffered == 0 and not list(writer.buffer.folder.glob("*.parquet"))
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "is unavailable" in m]) == 1, said  # once, not per flush
    back = [m for m in said if "is back" in m]
    assert len(back) == 1, said
    back = back[0]
    assert "wrote 5 held rows" in back and "0 rows dropped" in back


def test_a_restarted_server_replays_what_its_predecessor_held(tmp_path):
    target, folder = _database(tmp_path)
    first = _fast(PredictionLog(target))
    first.submit("m", "1", [{"x": 1.0}, {"x": 2.0}], b'{"predictions": [1, 0]}', "before")
    _until(lambda: first.buffered == 2)
    first.close()  # the server stops while the database is still down

    folder.mkdir()
    second = _fast(PredictionLog(target))
    assert second.buffered == 2  # found on disk
    _until(lambda: second.written == 2)
    second.close()
    assert read_predictions("m", target)["request_id"].tolist() == ["before", "before"]


def test_the_buffer_is_bounded_and_what_it_drops_is_counted_in_metrics(tmp_path, caplog):
    target, _ = _database(tmp_path)
    writer = _fast(PredictionLog(target), buffer_rows=3)
    with caplog.at_level(logging.WARNING, logger="runway.store.predlog_writer"):
        for i in range(5):
            writer.submit("m", "1", [{"x": float(i)}], RESPONSE, f"r{i}")
            time.sleep(0.03)
        _until(lambda: writer.buffered + writer.dropped == 5)
        writer.close()
    assert writer.buffered == 3 and writer.dropped == 2
    assert any("newer rows are dropped" in r.getMessage() for r in caplog.records)

    metrics = Metrics()
    metrics.live = lambda: Live(dropped=writer.dropped)
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert values["runway_prediction_log_dropped_total"] == 2


def test_a_held_file_is_written_once_by_two_servers_sharing_the_folder(tmp_path):
    from runway.store.predlog_buffer import DiskBuffer

    target, folder = _database(tmp_path)
    sink = PredictionLog(target)
    DiskBuffer(sink).hold(
        scored_frame(
            pd.DataFrame({"x": [1.0]}), [1], model="m", version="1", source="serve", request_id="r"
        )
    )
    a, b = DiskBuffer(sink), DiskBuffer(sink)
    folder.mkdir()
    assert a.replay() + b.replay() == 1
    assert len(PredictionLog(target).read("m")) == 1
