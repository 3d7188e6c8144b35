"""The promotion audit trail: one run per attempt in the audit experiment.

Applied attempts are FINISHED runs, refused or failed ones FAILED, each with
who, when, from, to, the comment, the version replaced and the gate report, in
the tracking store the team shares (so the MLflow UI shows it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities import RunStatus

from runway.settings import Settings
from runway.store.identity import whoami
from runway.store.registry import VersionInfo, quote
from runway.store.tracking import (
    MAX_TAG_CHARS,
    client,
    ensure_experiment,
    load_run_text,
    log_run_text,
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
        "mlflow.user": whoami().user,  # who wrote the record: the server's user, if it says
        "mlflow.note.content": f"{attempt.action} {mv.name} v{mv.version} {mv.stage} -> "
        f"{attempt.to_stage}: {attempt.outcome} by {attempt.actor}"
        + (f" ({attempt.comment})" if attempt.comment else ""),
    }
    mlflow_client = client()
    run = mlflow_client.create_run(
        experiment_id, run_name=f"{mv.name} v{mv.version} -> {attempt.to_stage}", tags=tags
    )
    run_id = str(run.info.run_id)
    if attempt.report_text is not None:
        log_run_text(run_id, attempt.report_text, REPORT_TEXT)
    if attempt.report_json is not None:
        log_run_text(run_id, attempt.report_json, REPORT_JSON)
    status = RunStatus.FINISHED if attempt.outcome == "applied" else RunStatus.FAILED
    mlflow_client.set_terminated(run_id, RunStatus.to_string(status))
    return run_id


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
