"""Monitoring runs a person can scan (issue 29, item 4): outcome first in the name, a tag,
the report linked from the description, a described experiment, links to RUNWAY_UI_URL."""

from __future__ import annotations

from datetime import datetime

from runway.settings import get_settings
from runway.store import monitoring


def _window(outcome: str, day: int, report: bool) -> tuple[str, str]:
    artifacts = {"summary.json": "{}", **({"report.html": "<html></html>"} if report else {})}
    return monitoring.record_window(
        get_settings(),
        model="churn",
        version="2",
        since=datetime(2026, 1, day),
        until=datetime(2026, 1, day + 1),
        outcome=outcome,
        metrics={"drift_share": 0.5},
        tags={"mlflow.note.content": f"{outcome}: psi(age) 0.4 > 0.2"},
        artifacts=artifacts,
    )


def test_crossed_and_healthy_windows_read_apart_and_link_where_the_ui_is(
    mlflow_store, client, monkeypatch
):
    monkeypatch.setenv("RUNWAY_UI_URL", "http://ui.example:8080")
    crossed, crossed_url = _window("crossed", 5, report=True)
    healthy, _ = _window("healthy", 6, report=False)

    assert crossed_url.startswith("http://ui.example:8080/#/experiments/")
    run = client.get_run(crossed)
    assert run.info.run_name == "CROSSED churn v2 2026-01-05 00:00..2026-01-06 00:00"
    assert run.data.tags["runway.monitor.outcome"] == "crossed"
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("crossed: psi(age)")
    assert f"[drift report](#/experiments/{run.info.experiment_id}/runs/{crossed}" in note
    assert note.rstrip(")").endswith("/artifacts/report.html")
    assert client.get_run(healthy).info.run_name.startswith("healthy churn v2 2026-01-06")
    experiment = client.get_experiment(run.info.experiment_id)
    assert "CROSSED" in experiment.tags["mlflow.note.content"]
