"""The summary `runway score` prints: one rows/s figure, the same the progress lines show."""

from __future__ import annotations

from datetime import UTC, datetime

from runway.scoring.result import BatchResult


def _result(**counts: float) -> BatchResult:
    return BatchResult(
        model="churn",
        version="3",
        stage="Production",
        run_id="r1",
        input="in.csv",
        output="out.parquet",
        rejects="out.rejects.parquet",
        engine="pandas",
        batch_id="b1",
        scored_at=datetime(2026, 12, 7, tzinfo=UTC),
        max_reject_rate=0.01,
        **counts,  # type: ignore[arg-type]
    )


def test_the_rate_is_rows_per_second_of_scoring_and_the_load_time_is_said_apart() -> None:
    result = _result(rows_in=4000, rows_scored=4000, seconds=5.0, load_seconds=3.0)
    assert result.rows_per_second == 2000  # 4,000 rows in the 2 s after the model loaded
    (elapsed,) = [line for line in result.summary_lines() if line.startswith("elapsed")]
    assert elapsed == "elapsed   5.0 s: 3.0 s loading the model, then 2,000 rows/s (pandas)"
    assert elapsed.count("rows/s") == 1


def test_a_run_that_scored_nothing_has_no_rate() -> None:
    assert _result(seconds=2.0, load_seconds=2.0).rows_per_second == 0.0
