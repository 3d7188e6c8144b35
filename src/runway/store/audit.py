"""The promotion audit trail: one run per attempt in the audit experiment.

Applied attempts are FINISHED runs, refused or failed ones FAILED, each with
who, when, from, to, the comment, the version replaced and the gate report, in
the tracking store the team shares (so the MLflow UI shows it too).
"""

from __future__ import annotations

import contextlib
import getpass
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from runway.settings import Settings
from runway.store.registry import VersionInfo, quote
from runway.store.tracking import (
    MAX_TAG_CHARS,
    NOTE_TAG,
    client,
    describe_experiment,
    ensure_experiment,
    load_run_text,
    log_run_text,
    run_experiment,
    run_link,
)

DESCRIPTION = (
    "runway's promotion audit trail: one run per attempt to change a registered model's "
    "stage (applied runs FINISHED, refused or failed ones FAILED), named "
    "`v<version> <from> -> <to> <outcome>: <model>`; each links its source run and gate "
    "report. `runway registry history <model>` reads it."
)

AUDIT = "runway.audit."
REPORT_TEXT = "gate_report.txt"
REPORT_JSON = "gate_report.json"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded promotion attempt or rollback."""

    when: str
    action: str
    model: str
    version: str
    from_stage: str
    to_stage: str
    outcome: str
    actor: str
    comment: str
    replaced: str
    reason: str
    audit_run_id: str
    report: str = ""


@dataclass(frozen=True)
class Attempt:
    """What one audit record says happened."""

    action: str
    to_stage: str
    outcome: str  # applied | refused | failed
    actor: str
    comment: str = ""
    replaced: str = ""
    reason: str = ""
    report_text: str | None = None
    report_json: str | None = None


def record(settings: Settings, mv: VersionInfo, attempt: Attempt) -> str:
    """One run in the audit experiment (FAILED unless applied); returns its id."""
    experiment_id = ensure_experiment(settings.audit_experiment, settings)
    describe_experiment(experiment_id, DESCRIPTION)
    tags = {
        f"{AUDIT}model": mv.name,
        f"{AUDIT}version": mv.version,
        f"{AUDIT}action": attempt.action,
        f"{AUDIT}from_stage": mv.stage,
        f"{AUDIT}to_stage": attempt.to_stage,
        f"{AUDIT}outcome": attempt.outcome,
        f"{AUDIT}actor": attempt.actor,
        f"{AUDIT}comment": attempt.comment[:MAX_TAG_CHARS],
        f"{AUDIT}replaced": attempt.replaced,
        f"{AUDIT}reason": attempt.reason[:MAX_TAG_CHARS],
        f"{AUDIT}source_run_id": mv.run_id or "",
        "mlflow.user": getpass.getuser(),
    }
    mlflow_client = client()
    run = mlflow_client.create_run(experiment_id, run_name=run_name(mv, attempt), tags=tags)
    run_id = str(run.info.run_id)
    if attempt.report_text is not None:
        log_run_text(run_id, attempt.report_text, REPORT_TEXT)
    if attempt.report_json is not None:
        log_run_text(run_id, attempt.report_json, REPORT_JSON)
    mlflow_client.set_tag(run_id, NOTE_TAG, _note(mv, attempt, experiment_id, run_id))
    status = RunStatus.FINISHED if attempt.outcome == "applied" else RunStatus.FAILED
    mlflow_client.set_terminated(run_id, RunStatus.to_string(status))
    return run_id


def run_name(mv: VersionInfo, attempt: Attempt) -> str:
    """What changed first, the model last: the runs table cuts long names on the right."""
    action = "" if attempt.action == "promote" else f" ({attempt.action})"
    return f"v{mv.version} {mv.stage} -> {attempt.to_stage} {attempt.outcome}{action}: {mv.name}"


def _note(mv: VersionInfo, attempt: Attempt, experiment_id: str, run_id: str) -> str:
    """The audit run's description: Markdown the UI renders, with links (tags are never links)."""
    lines = [
        f"{attempt.action} {mv.name} v{mv.version} {mv.stage} -> {attempt.to_stage}: "
        f"**{attempt.outcome}** by {attempt.actor}"
        + (f" ({attempt.comment})" if attempt.comment else "")
    ]
    if attempt.reason:
        lines.append(f"Why: {attempt.reason}")
    links = []
    if mv.run_id:
        with contextlib.suppress(MlflowException):  # a deleted run: no link, still a record
            links.append(f"[source run]({run_link(mv.run_id, run_experiment(mv.run_id))})")
    if attempt.report_text is not None:
        links.append(f"[gate report]({run_link(run_id, experiment_id, REPORT_TEXT)})")
    if links:
        lines.append(" · ".join(links))
    return "\n\n".join(lines)[:MAX_TAG_CHARS]


def history(model: str, settings: Settings, *, reports: bool = False) -> list[AuditEntry]:
    """Every recorded attempt for ``model``, oldest first (with gate report text if asked)."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return []
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{AUDIT}model` = '{quote(model)}'",
        order_by=["attributes.start_time ASC"],
        max_results=50000,
    )
    entries = []
    for run in runs:
        tags = run.data.tags
        entries.append(
            AuditEntry(
                when=datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                action=tags.get(f"{AUDIT}action", ""),
                model=model,
                version=tags.get(f"{AUDIT}version", ""),
                from_stage=tags.get(f"{AUDIT}from_stage", ""),
                to_stage=tags.get(f"{AUDIT}to_stage", ""),
                outcome=tags.get(f"{AUDIT}outcome", ""),
                actor=tags.get(f"{AUDIT}actor", ""),
                comment=tags.get(f"{AUDIT}comment", ""),
                replaced=tags.get(f"{AUDIT}replaced", ""),
                reason=tags.get(f"{AUDIT}reason", ""),
                audit_run_id=run.info.run_id,
                report=load_run_text(run.info.run_id, REPORT_TEXT) if reports else "",
            )
        )
    return entries
