"""Promotion and rollback: the rules a version climbs the registry by.

A promotion judges the candidate against its policy (``registry/<model>.yaml``
on the local store; in team mode the one stored on the server,
:mod:`runway.jobs.policy`), whose hash its audit record seals, with the current Production version as baseline, under the model's promotion
lock, deciding everything again once the lock is held; so two promotions
racing each other end with exactly one Production version. Every attempt,
applied, refused or failed (including giving up on the lock, and a write the
tracking server refused), is one audit record, written once the outcome is known
(:mod:`runway.jobs.attempts`). Behind an authenticating server the actor and the
reviewer are the logged-in user (:mod:`runway.store.identity`). On success the
policy that was applied is recorded on the version, and serving and batch
scoring read their input rules from there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from runway.core.governance.gates import GateReport, ModelFacts, reviewer_rules
from runway.core.governance.policy import PromotionPolicy
from runway.errors import GateFailure, RegistryError, UntrustedModel
from runway.jobs import gate_facts
from runway.jobs.attempts import Recorder, recorded
from runway.jobs.policy import applied_policy
from runway.settings import Settings, get_settings
from runway.store import audit, onnx_models, registry
from runway.store.audit import Attempt
from runway.store.http import explain
from runway.store.identity import reviewer_and_actor, whoami
from runway.store.lock import PromotionLock
from runway.store.registry import STAGE_TAG, Stage, VersionInfo
from runway.store.tracking import log_run_text

log = logging.getLogger(__name__)


@dataclass
class Promotion:
    """What ``promote`` or ``rollback`` did."""

    model: str
    version: str
    from_stage: str
    to_stage: str
    report: GateReport | None
    applied: bool
    archived: list[str] = field(default_factory=list)
    audit_run_id: str | None = None


def promote(
    model: str,
    version: str,
    to: str,
    *,
    reviewer: str | None = None,
    comment: str = "",
    dry_run: bool = False,
    policy_file: str | Path | None = None,
    settings: Settings | None = None,
) -> Promotion:
    """Judge ``model`` ``version`` against its policy and, if it passes, move it to ``to``.

    Raises:
        RegistryError: unknown model/version/stage, a version already there, a
            reviewer problem, the lock held too long; nothing changed.
        GateFailure: a gate failed; nothing changed, the report is recorded.
        SpecError: the policy file is missing or invalid.
    """
    settings = settings or get_settings()
    target = registry.target_stage(to)
    candidate = registry.get_version(model, version)
    applied = applied_policy(model, settings, policy_file)
    policy = applied.policy
    with recorded(settings, candidate, target, whoami().user, comment, dry_run=dry_run) as rec:
        reviewer, rec.actor = reviewer_and_actor(reviewer)
        check_move(candidate, target)
        if target == "Production":
            _check_reviewer(policy, candidate, reviewer)
        if target == "Archived":
            return _archive(rec, candidate, dry_run)
        with _hold(rec, candidate, dry_run) as lock:
            # Decide again under the lock: another promotion may have just landed.
            candidate = rec.mv = registry.get_version(model, version)
            check_move(candidate, target)
            champions = registry.in_stage(registry.versions(model), "Production")
            baseline = champions[-1] if champions else None
            twin_hash = _twin_hash(candidate, settings)
            report = gate_facts.evaluate(
                policy, candidate, baseline, target, reviewer, comment, settings
            )
            result = Promotion(model, version, candidate.stage, target, report, False)
            if dry_run or lock is None:
                return result
            on_run = _log_report(candidate, report)
            registry.describe_model(model, policy.description)
            lock.check()
            attempt = _attempt(report, champions, rec.actor, comment)
            attempt = replace(attempt, policy_sha256=applied.sha256, onnx_sha256=twin_hash)
            if not report.passed:
                rec.write(attempt)
                _link_recorded_report(on_run, candidate, report, rec.audit_run_id)
                raise GateFailure(report)
            _same_twin_hash(candidate, twin_hash)
            tags = registry.policy_tags(policy.model_dump(mode="json"), policy.input)
            result.archived = _move(candidate, target, rec.actor, comment, lock, tags)
            result.applied, result.audit_run_id = True, _record_applied(rec, candidate, attempt)
            _link_recorded_report(on_run, candidate, report, result.audit_run_id)
    log.info("%s v%s: %s -> %s", model, version, result.from_stage, target)
    return result


def _twin_hash(mv: VersionInfo, settings: Settings) -> str:
    """The ONNX hash the gates check (recorded at conversion); "" for a scikit-learn version.

    The promotion seals it into its audit record, which is what serving and
    scoring then trust. A twin promoted before must still have the hash its last
    promotion sealed.
    """
    tagged = onnx_models.version_tags(mv.name, mv.version).get(onnx_models.SHA_TAG, "")
    if not tagged or mv.stage == "None":
        return tagged
    sealed = audit.sealed_onnx_hash(mv.name, mv.version, mv.stage, settings)
    if sealed and sealed != tagged:
        raise UntrustedModel(
            f"refusing {mv.name} v{mv.version}: tag {onnx_models.SHA_TAG} was changed after its "
            f"promotion to {mv.stage} sealed {sealed[:16]}... (the ONNX file may be swapped)"
        )
    return tagged


def _same_twin_hash(mv: VersionInfo, checked: str) -> None:
    """The ONNX hash recorded at conversion did not change while the gates ran."""
    if not checked:
        return
    now = onnx_models.version_tags(mv.name, mv.version).get(onnx_models.SHA_TAG, "")
    if now != checked:
        raise UntrustedModel(
            f"refusing {mv.name} v{mv.version}: tag {onnx_models.SHA_TAG} changed while its "
            "gates ran; nothing was moved"
        )


def _record_applied(rec: Recorder, mv: VersionInfo, attempt: Attempt) -> str:
    """The applied attempt's record, then its id on the version (the registry moved first)."""
    audit_id = rec.write(attempt)
    registry.set_version_tags(mv.name, mv.version, {"runway.audit_run_id": audit_id})
    return audit_id


def _attempt(report: GateReport, champions: list[VersionInfo], actor: str, comment: str) -> Attempt:
    """The audit record of a judged promotion: applied or refused, with its report."""
    target = report.target
    if report.passed:
        outcome, reason = "applied", ""
        replaced = ",".join(mv.version for mv in champions) if target == "Production" else ""
    else:
        outcome = "refused"
        reason = "; ".join(
            f"{r.name}: {r.candidate}, limit {r.limit}" + (f" ({r.detail})" if r.detail else "")
            for r in report.failures
        )
        replaced = champions[-1].version if champions else ""
    return Attempt(
        "promote",
        target,
        outcome,
        actor,
        comment,
        replaced,
        reason,
        report.render(),
        report.to_json(),
    )


def _check_reviewer(policy: PromotionPolicy, mv: VersionInfo, reviewer: str | None) -> None:
    """Who may approve is known before anything is measured: fail fast."""
    author = registry.run_author(mv.run_id)
    facts = ModelFacts(mv.version, mv.stage, author=author)
    for rule in reviewer_rules(policy, facts, reviewer):
        if not rule.passed:
            raise RegistryError(
                f"{mv.name} v{mv.version} -> Production refused: {rule.name}: {rule.detail}"
            )


@contextlib.contextmanager
def _hold(rec: Recorder, mv: VersionInfo, dry_run: bool) -> Iterator[PromotionLock | None]:
    """The model's promotion lock (none for a dry run).

    Failing to take it is the attempt's outcome (recorded off the chain by
    :func:`recorded`); whatever ends the attempt while the lock is held is
    recorded before the lock is released, so the record is on the model's chain.
    """
    if dry_run:
        yield None
        return
    settings = rec.settings
    lock = PromotionLock(mv.name, wait=settings.lock_timeout, lease=settings.lock_lease)
    lock.acquire()
    rec.lock = lock
    try:
        yield lock
    except (Exception, KeyboardInterrupt) as exc:
        rec.settle(exc)
        raise
    finally:
        rec.lock = None
        lock.release()


def rollback(
    model: str,
    *,
    reviewer: str | None = None,
    comment: str = "",
    settings: Settings | None = None,
) -> Promotion:
    """Put the previous Production version back and archive the current one.

    The previous version is the one the current champion replaced, read from the
    audit trail. One recorded action.

    Raises:
        RegistryError: no Production version, or none to roll back to.
    """
    settings = settings or get_settings()
    champions = registry.in_stage(registry.versions(model), "Production")
    if not champions:
        raise RegistryError(f"{model} has no Production version to roll back")
    target: Stage = "Production"
    with recorded(
        settings, champions[-1], target, whoami().user, comment, action="rollback"
    ) as rec:
        _, rec.actor = reviewer_and_actor(reviewer)
        with _hold(rec, champions[-1], False) as lock:
            assert lock is not None
            listed = registry.versions(model)
            current, back = _rollback_pair(model, listed, settings)
            rec.mv = back
            lock.check()
            replaced = ",".join(mv.version for mv in registry.in_stage(listed, "Production"))
            rec.comment = comment or f"rollback from v{current.version}"
            when = datetime.now(UTC).isoformat(timespec="seconds")
            rolled = {"rolled_back_by": rec.actor, "rolled_back_at": when}
            rolled["rolled_back_from"] = current.version
            archived = _move(back, target, rec.actor, comment, lock, rolled, approval=False)
            audit.note_rollback(back, rec.actor, when, current.version)
            audit_id = _record_applied(rec, back, rec.outcome("applied", replaced=replaced))
    log.info("%s: rolled back v%s -> v%s", model, current.version, back.version)
    return Promotion(model, back.version, back.stage, target, None, True, archived, audit_id)


def _rollback_pair(
    model: str, listed: list[VersionInfo], settings: Settings
) -> tuple[VersionInfo, VersionInfo]:
    """The current champion and the version it replaced (from the audit trail)."""
    champions = registry.in_stage(listed, "Production")
    if not champions:
        raise RegistryError(f"{model} has no Production version to roll back")
    current = champions[-1]
    report = audit.verify(model, settings)
    if current.version in report.versions and report.champion not in ("", current.version):
        # put outside runway: back to the one the audit chain has in Production
        return current, next(mv for mv in listed if mv.version == report.champion)
    previous = previous_champion(model, current.version, settings)
    if not previous:
        raise RegistryError(
            f"{model} v{current.version} replaced no earlier Production version "
            "(audit trail); there is nothing to roll back to"
        )
    back = next((mv for mv in listed if mv.version == previous), None)
    if back is None:
        raise RegistryError(f"{model} v{previous} (the previous champion) no longer exists")
    return current, back


def previous_champion(model: str, version: str, settings: Settings) -> str:
    """The version that ``version`` replaced in Production, from the audit trail."""
    for entry in reversed(audit.history(model, settings)):
        if (
            entry.outcome == "applied"
            and entry.to_stage == "Production"
            and entry.version == version
        ):
            return next((v for v in entry.replaced.split(",") if v and v != version), "")
    return ""


def check_move(mv: VersionInfo, target: Stage) -> None:
    """Refuse moves the registry's rules forbid (Production only from Staging, and so on)."""
    if mv.stage == target:
        raise RegistryError(f"{mv.name} v{mv.version} is already in {target}")
    if target == "Production" and mv.stage != "Staging":
        raise RegistryError(
            f"{mv.name} v{mv.version} is in {mv.stage}; promote it to Staging first "
            "(Production takes versions from Staging)"
        )
    if target != "Production" and mv.stage == "Production":
        raise RegistryError(
            f"{mv.name} v{mv.version} is the Production version; promote another version or "
            f"use `runway registry rollback {mv.name}`, so that one stays in Production"
        )


def _archive(rec: Recorder, mv: VersionInfo, dry_run: bool) -> Promotion:
    """Retire a None/Staging version: no gates."""
    result = Promotion(mv.name, mv.version, mv.stage, "Archived", None, False)
    if dry_run:
        return result
    with _hold(rec, mv, False) as lock:
        assert lock is not None
        mv = registry.get_version(mv.name, mv.version)
        check_move(mv, "Archived")
        lock.check()
        _move(mv, "Archived", rec.actor, rec.comment, lock)
        result.audit_run_id = _record_applied(rec, mv, rec.outcome("applied"))
    result.applied = True
    return result


def _move(
    mv: VersionInfo,
    target: Stage,
    actor: str,
    comment: str,
    lock: PromotionLock,
    extra_tags: dict[str, str] | None = None,
    approval: bool = True,
) -> list[str]:
    """The writes of one transition (under the lock); returns the versions archived.

    A rollback (``approval=False``) keeps the version's own approval tags: it was
    approved once, the rollback is told by its own tags and description line.

    The candidate moves first, then the old champion is archived: serving may
    briefly see two Production versions, never none. A write refused part-way
    says what had been written.
    """
    listed = registry.versions(mv.name)
    done: list[str] = []
    try:
        lock.check()
        registry.transition(mv.name, mv.version, target)
        done.append(f"v{mv.version} -> {target}")
        tags = {STAGE_TAG: target, **(extra_tags or {})}
        if target == "Production" and approval:
            tags |= {
                "approved_by": actor,
                "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "approval_comment": comment,
            }
        registry.set_version_tags(mv.name, mv.version, tags)
        archived = []
        if target == "Production":
            for old in registry.in_stage(listed, "Production"):
                if old.version != mv.version:
                    lock.check()
                    registry.transition(mv.name, old.version, "Archived")
                    registry.set_version_tags(mv.name, old.version, {STAGE_TAG: "Archived"})
                    archived.append(old.version)
                    done.append(f"v{old.version} -> Archived")
        registry.sync_aliases(mv.name)
    except Exception as exc:
        if not done:
            raise
        problem = explain(exc) or exc
        raise RegistryError(f"partly applied ({', '.join(done)}), then: {problem}") from exc
    return archived


def _log_report(mv: VersionInfo, report: GateReport) -> bool:
    """The gate report as artifacts of the candidate's run (text and JSON), linked from the
    version's description; False when the run would not take it (a reviewer may only read
    the author's run: the audit record's copy is linked instead)."""
    if not mv.run_id:
        return False
    now = datetime.now(UTC)
    base = f"registry/v{mv.version}-{report.target.lower()}-{now:%Y%m%dT%H%M%S%fZ}"
    try:
        log_run_text(mv.run_id, report.render(), f"{base}.txt")
        log_run_text(mv.run_id, report.to_json(), f"{base}.json")
        when = f"{now:%Y-%m-%d %H:%M} UTC"
        registry.link_gate_report(mv, report.passed, report.target, f"{base}.txt", when)
    except Exception as exc:  # the report is also in the audit trail
        log.warning(
            "gate report kept in the audit record only; run %s refused it: %s", mv.run_id, exc
        )
        return False
    return True


def _link_recorded_report(
    on_run: bool, mv: VersionInfo, report: GateReport, audit_run_id: str
) -> None:
    """Link the audit record's copy of the report when the candidate's run has none."""
    if on_run or not audit_run_id:
        return
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    try:
        registry.link_gate_report(
            mv, report.passed, report.target, audit.REPORT_TEXT, when, run_id=audit_run_id
        )
    except Exception as exc:  # the record itself is written; the link is a convenience
        log.warning("could not link the gate report of audit run %s: %s", audit_run_id, exc)
