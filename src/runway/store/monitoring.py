"""Monitoring runs: one MLflow run per model, version and window, in the monitoring experiment.

Per-feature drift, the drift share, prediction drift and the live metric are
run metrics (so drift over windows is a chart in the MLflow UI's run
comparison), the outcome and window are tags, the HTML report and a JSON
summary are artifacts. The outcomes of earlier windows are what the policy's
N-of-M trigger counts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from mlflow.entities import RunStatus

from runway.settings import Settings
from runway.store.registry import quote
from runway.store.tracking import (
    MAX_TAG_CHARS,
    NOTE_TAG,
    client,
    describe_experiment,
    ensure_experiment,
    log_batch,
    log_run_text,
    run_link,
    run_url,
)

TAG = "runway.monitor."
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]")
REPORT = "report.html"
DESCRIPTION = (
    "One run per model, version and monitoring window (`runway monitor`), named "
    "outcome first: **CROSSED** (a threshold of the policy's `monitor:` section was "
    "crossed), healthy, or not judged. Filter with "
    "``tags.`runway.monitor.outcome` = 'crossed'``; each run's description links its "
    "drift report, its metrics chart drift across windows in *Compare*."
)


def window_run_name(
    outcome: str, model: str, version: str, since: datetime, until: datetime
) -> str:
    """Outcome first (the table cuts long names): ``CROSSED churn v2 2026-01-05 00:00..``."""
    shown = {"crossed": "CROSSED", "not_judged": "not judged"}.get(outcome, outcome)
    return f"{shown} {model} v{version} {since:%Y-%m-%d %H:%M}..{until:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class WindowRecord:
    """One recorded monitoring window."""

    run_id: str
    version: str
    since: str
    until: str
    outcome: str  # healthy | crossed | not_judged


def metric_name(name: str) -> str:
    """A name MLflow accepts as a metric key (other characters become ``_``)."""
    return _METRIC_NAME.sub("_", name)


def record_window(
    settings: Settings,
    *,
    model: str,
    version: str,
    since: datetime,
    until: datetime,
    outcome: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Mapping[str, str],
) -> tuple[str, str]:
    """Log one window as a finished run; returns (run id, its address in the UI)."""
    experiment_id = ensure_experiment(settings.monitor_experiment, settings)
    describe_experiment(experiment_id, DESCRIPTION)
    mlflow_client = client()
    run = mlflow_client.create_run(
        experiment_id,
        run_name=window_run_name(outcome, model, version, since, until),
        tags={
            f"{TAG}model": model,
            f"{TAG}version": version,
            f"{TAG}since": since.isoformat(),
            f"{TAG}until": until.isoformat(),
            f"{TAG}outcome": outcome,
            **{k: v[:MAX_TAG_CHARS] for k, v in tags.items()},
        },
    )
    run_id = str(run.info.run_id)
    values = [(metric_name(k), float(v), 0) for k, v in metrics.items() if v == v]
    log_batch(run_id, metrics=values)
    for path, text in artifacts.items():
        log_run_text(run_id, text, path)
    if REPORT in artifacts:
        link = f"[drift report]({run_link(run_id, experiment_id, REPORT)})"
        note = tags.get(NOTE_TAG, "")
        mlflow_client.set_tag(run_id, NOTE_TAG, f"{note}\n\n{link}".strip()[:MAX_TAG_CHARS])
    mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id, run_url(run_id, experiment_id, settings.ui_url)


def set_window_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Tags added after the fact (what a retrain the window started produced)."""
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_tag(run_id, key, value[:MAX_TAG_CHARS])


def windows(
    settings: Settings, model: str, version: str | None = None, limit: int = 100
) -> list[WindowRecord]:
    """Recorded windows of ``model`` (one version, if given), latest window first."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(settings.monitor_experiment)
    if experiment is None:
        return []
    query = f"tags.`{TAG}model` = '{quote(model)}'"
    if version is not None:
        query += f" and tags.`{TAG}version` = '{quote(version)}'"
    runs = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string=query, max_results=max(limit * 4, 100)
    )
    found = [
        WindowRecord(
            r.info.run_id,
            r.data.tags.get(f"{TAG}version", ""),
            r.data.tags.get(f"{TAG}since", ""),
            r.data.tags.get(f"{TAG}until", ""),
            r.data.tags.get(f"{TAG}outcome", ""),
        )
        for r in runs
    ]
    return sorted(found, key=lambda w: (w.until, w.run_id), reverse=True)[:limit]
