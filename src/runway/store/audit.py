"""The promotion audit trail: one run per attempt in the audit experiment, sealed on a chain.

Applied attempts are FINISHED runs, refused or failed ones FAILED, each with
who, when, from, to, the version's source, the comment, the version replaced
and the gate report, in the tracking store the team shares (so the MLflow UI
shows it too). Each record written under the model's promotion lock is sealed
(:mod:`runway.core.governance.chain`) with a hash of its fields and of the model's previous
record, so :func:`verify` can tell whether the registry's stages, aliases and
approvals are what the chain of records explains.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from runway.core.governance.chain import OPTIONAL_FIELDS, ChainReport, Link, VersionState, seal
from runway.core.governance.chain import verify as verify_links
from runway.errors import AuditUnverified
from runway.settings import Settings
from runway.store import registry
from runway.store.identity import whoami
from runway.store.registry import VersionInfo, quote
from runway.store.served import ResolvedModel
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
    source_run_id: str
    audit_run_id: str
    report: str = ""
    source: str = ""
    time: str = ""
    prev: str = ""
    digest: str = ""
    seal: str = ""
    chained: bool = False
    policy_sha256: str = ""  # the promotion policy applied ("" on older records)
    onnx_sha256: str = ""  # a twin's ONNX graph, as its gates checked it ("" if not a twin)

    def link(self) -> Link:
        """This record as a link of the chain (its sealed fields, as stored)."""
        fields = {
            "model": self.model,
            "version": self.version,
            "source": self.source,
            "source_run_id": self.source_run_id,
            "action": self.action,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "outcome": self.outcome,
            "actor": self.actor,
            "comment": self.comment,
            "replaced": self.replaced,
            "reason": self.reason,
            "time": self.time,
            "prev": self.prev,
            "policy_sha256": self.policy_sha256,
            "onnx_sha256": self.onnx_sha256,
        }
        return Link(self.audit_run_id, fields, self.digest, self.seal, self.chained)


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
    policy_sha256: str = ""  # sealed when given (see chain.OPTIONAL_FIELDS)
    onnx_sha256: str = ""


def record(settings: Settings, mv: VersionInfo, attempt: Attempt, *, chained: bool = True) -> str:
    """One run in the audit experiment (FAILED unless applied); returns its id.

    ``chained`` records are sealed onto the model's chain and must be written
    under its promotion lock (one writer at a time keeps the chain linear); a
    record of giving up on the lock is written without it, off the chain.
    """
    experiment_id = ensure_experiment(settings.audit_experiment, settings)
    describe_experiment(experiment_id, DESCRIPTION)
    fields = {
        "model": mv.name,
        "version": mv.version,
        "source": mv.source,
        "source_run_id": mv.run_id or "",
        "action": attempt.action,
        "from_stage": mv.stage,
        "to_stage": attempt.to_stage,
        "outcome": attempt.outcome,
        "actor": attempt.actor,
        "comment": attempt.comment[:MAX_TAG_CHARS],
        "replaced": attempt.replaced,
        "reason": attempt.reason[:MAX_TAG_CHARS],
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "prev": _tip(mv.name, settings) if chained else "",
    }
    for name in OPTIONAL_FIELDS:
        if getattr(attempt, name):
            fields[name] = getattr(attempt, name)
    kind, digest = seal(fields, _key(settings))
    tags = {f"{AUDIT}{k}": v for k, v in fields.items()}
    tags |= {
        f"{AUDIT}hash": digest,
        f"{AUDIT}seal": kind,
        f"{AUDIT}chained": "true" if chained else "false",
        "mlflow.user": whoami().user,  # who wrote the record: the server's user, if it says
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
    """Outcome and version first, the model last: the runs table cuts long names on the
    right (``REFUSED v3 None -> Staging: churn``; ``applied`` in lower case, it is the norm)."""
    outcome = attempt.outcome if attempt.outcome == "applied" else attempt.outcome.upper()
    action = "" if attempt.action == "promote" else f" ({attempt.action})"
    return f"{outcome} v{mv.version} {mv.stage} -> {attempt.to_stage}{action}: {mv.name}"


def note_rollback(mv: VersionInfo, actor: str, when: str, from_version: str) -> None:
    """A line on the version that came back: who rolled back to it, when, from which version
    (its approval tags are its first approval's, kept)."""
    line = f"Rolled back to Production by {actor} ({when}), replacing v{from_version}."
    mlflow_client = client()
    current = (mlflow_client.get_model_version(mv.name, mv.version).description or "").rstrip()
    text = f"{current}\n\n{line}" if current else line
    mlflow_client.update_model_version(mv.name, mv.version, description=text)


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


def _key(settings: Settings) -> bytes:
    return settings.audit_key.get_secret_value().encode()


def _tip(model: str, settings: Settings) -> str:
    """The seal of the model's last chained record ("" when there is none)."""
    links = [e.link() for e in history(model, settings) if e.chained]
    followed = {link.prev for link in links}
    tips = [link for link in links if link.digest not in followed]
    return tips[-1].digest if tips else ""


def verify(model: str, settings: Settings) -> ChainReport:
    """Check ``model``'s chain and whether it explains every version's stage, aliases, approval."""
    by_version: dict[str, list[str]] = {}
    for alias, number in registry.aliases(model).items():
        by_version.setdefault(number, []).append(alias)
    states = [
        VersionState(
            mv.version, mv.stage, mv.source, mv.tags, tuple(by_version.get(mv.version, []))
        )
        for mv in registry.versions(model)
    ]
    links = [entry.link() for entry in history(model, settings)]
    return verify_links(links, states, _key(settings))


@dataclass(frozen=True)
class Audited:
    """The version to load, and why the registry's Production was not it ("" when it was)."""

    model: ResolvedModel
    refused: str = ""  # what was not loaded, and why
    fix: str = ""  # how to put it right


def resolve_audited(
    model: str, settings: Settings, stage: str | None = "Production", version: str | None = None
) -> Audited:
    """:func:`registry.resolve`, but only a Production version the audit chain explains.

    Serving and batch scoring resolve here (one rule): a version put in
    Production outside runway (MLflow's client, the UI, an alias write) is not
    loaded, whether ``@production`` or only the stage mirror names it. The
    chain's own Production version stands in for it when the registry still
    has it with the source its approval sealed; else :class:`AuditUnverified`
    (exit 12).
    """
    resolved = registry.resolve(model, stage, version)
    if resolved.stage != "Production":
        return Audited(resolved)
    report = verify(model, settings)
    named = [resolved.version]
    if version is None:  # the stage mirror's Production too: a forced stage is refused
        listed = registry.in_stage(registry.versions(model), "Production")
        named += [mv.version for mv in reversed(listed) if mv.version != resolved.version]
    culprit = next((number for number in named if report.versions.get(number)), None)
    if culprit is None:
        return Audited(resolved)
    refused = (
        f"{model} v{culprit} is in Production but the audit chain does not explain "
        f"it ({report.versions[culprit]})"
    )
    fix = (
        f"promote it through runway (`runway registry promote {model} {culprit} "
        f"--to Production --reviewer <name>`) or put the audited version back "
        f"(`runway registry rollback {model} --reviewer <name>`)"
    )
    if not report.champion or report.champion == culprit:
        raise AuditUnverified(f"{refused}; no audited Production version to use instead: {fix}")
    champion = registry.get_version(model, report.champion)
    return Audited(
        ResolvedModel(model, champion.version, champion.stage, champion.run_id, champion.source),
        refused,
        fix,
    )


def sealed_onnx_hash(model: str, version: str, stage: str, settings: Settings) -> str:
    """The ONNX hash sealed by the promotion that put ``version`` in ``stage`` ("" if none).

    Only runway's promotion writes it (a version tag anyone who registers may
    rewrite): the last hash sealed for ``version`` on the intact chain, if the
    chain's last applied record of it moved it to ``stage``.
    """
    entries = history(model, settings)
    report = verify_links([e.link() for e in entries], [], _key(settings))
    by_id = {e.audit_run_id: e for e in entries}
    to_stage, sealed = "", ""
    for record_id in report.order:
        entry = by_id[record_id]
        if entry.version == version and entry.outcome == "applied":
            to_stage = entry.to_stage
            sealed = entry.onnx_sha256 or sealed  # a rollback re-applies the one sealed before
    return sealed if to_stage == stage else ""


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
                source_run_id=tags.get(f"{AUDIT}source_run_id", ""),
                audit_run_id=run.info.run_id,
                report=load_run_text(run.info.run_id, REPORT_TEXT) if reports else "",
                source=tags.get(f"{AUDIT}source", ""),
                time=tags.get(f"{AUDIT}time", ""),
                prev=tags.get(f"{AUDIT}prev", ""),
                digest=tags.get(f"{AUDIT}hash", ""),
                seal=tags.get(f"{AUDIT}seal", ""),
                # a record without a seal (written before runway chained them) counts as chained:
                # it then fails verification instead of slipping past it
                chained=tags.get(f"{AUDIT}chained", "true") != "false",
                policy_sha256=tags.get(f"{AUDIT}policy_sha256", ""),
                onnx_sha256=tags.get(f"{AUDIT}onnx_sha256", ""),
            )
        )
    return entries
