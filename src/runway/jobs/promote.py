"""Promotion and rollback: the rules a version climbs the registry by.

A promotion judges the candidate against its policy (``registry/<model>.yaml``)
with the current Production version as baseline, under the model's promotion
lock, deciding everything again once the lock is held; so two promotions
racing each other end with exactly one Production version. Every attempt,
applied, refused or failed (including giving up on the lock), is one audit
record. On success the policy that was applied is recorded on the version, and
serving and batch scoring read their input rules from there.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from runway.core.gates import GateReport, ModelFacts, reviewer_rules
from runway.core.policy import PromotionPolicy, load_policy
from runway.errors import GateFailure, LockTimeout, RegistryError, SpecError, UntrustedModel
from runway.jobs import gate_facts
from runway.settings import Settings, get_settings
from runway.store import audit, registry
from runway.store.audit import Attempt
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


def policy_path(model: str, settings: Settings) -> Path:
    """Where ``model``'s promotion policy lives."""
    return Path(settings.registry_dir) / f"{model}.yaml"


def read_policy(model: str, settings: Settings, policy_file: str | Path | None) -> PromotionPolicy:
    """The policy that judges ``model``: ``policy_file``, else ``registry/<model>.yaml``."""
    source = Path(policy_file) if policy_file else policy_path(model, settings)
    policy = load_policy(source)
    if policy.model != model:
        raise SpecError(f"{source}: model: policy is for {policy.model!r}, not {model!r}")
    return policy


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
    policy = read_policy(model, settings, policy_file)
    actor = reviewer or getpass.getuser()
    with _audit_refusal(settings, candidate, target, actor, comment, dry_run):
        check_move(candidate, target)
        if target == "Production":
            _check_reviewer(policy, candidate, reviewer)
    if target == "Archived":
        return _archive(settings, candidate, actor, comment, dry_run)

    with _hold(settings, candidate, target, actor, comment, dry_run) as lock:
        # Decide again under the lock: another promotion may have just landed.
        candidate = registry.get_version(model, version)
        check_move(candidate, target)
        listed = registry.versions(model)
        champions = registry.in_stage(listed, "Production")
        baseline = champions[-1] if champions else None
        report = _judge(
            settings, policy, candidate, baseline, target, reviewer, comment, actor, lock
        )
        result = Promotion(model, version, candidate.stage, target, report, False)
        if dry_run or lock is None:
            return result
        _log_report(candidate, report)
        registry.describe_model(model, policy.description)
        lock.check()
        audit_id = audit.record(settings, candidate, _attempt(report, champions, actor, comment))
        if not report.passed:
            raise GateFailure(report)
        tags = registry.policy_tags(policy.model_dump(mode="json"), policy.input)
        result.archived = _move(candidate, target, actor, comment, audit_id, lock, tags)
        result.applied, result.audit_run_id = True, audit_id
    log.info("%s v%s: %s -> %s", model, version, result.from_stage, target)
    return result


def _judge(
    settings: Settings,
    policy: PromotionPolicy,
    candidate: VersionInfo,
    baseline: VersionInfo | None,
    target: Stage,
    reviewer: str | None,
    comment: str,
    actor: str,
    lock: PromotionLock | None,
) -> GateReport:
    """The gate report; a candidate refused before loading is recorded as refused, then raised."""
    try:
        return gate_facts.evaluate(policy, candidate, baseline, target, reviewer, comment, settings)
    except UntrustedModel as exc:
        if lock is not None:  # a dry run records nothing
            lock.check()
            refusal = Attempt("promote", target, "refused", actor, comment, reason=str(exc))
            audit.record(settings, candidate, refusal)
        raise


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
def _audit_refusal(
    settings: Settings, mv: VersionInfo, target: str, actor: str, comment: str, dry_run: bool
) -> Iterator[None]:
    """A move the rules refuse before anything is judged is an attempt too: audit it."""
    try:
        yield
    except RegistryError as exc:
        if not dry_run:
            audit.record(
                settings, mv, Attempt("promote", target, "refused", actor, comment, reason=str(exc))
            )
        raise


@contextlib.contextmanager
def _hold(
    settings: Settings,
    mv: VersionInfo,
    target: str,
    actor: str,
    comment: str,
    dry_run: bool,
    action: str = "promote",
) -> Iterator[PromotionLock | None]:
    """The model's promotion lock (none for a dry run); giving up on it is audited too."""
    if dry_run:
        yield None
        return
    lock = PromotionLock(mv.name, wait=settings.lock_timeout, lease=settings.lock_lease)
    try:
        lock.acquire()
    except LockTimeout as exc:  # recorded without the lock, so off the chain
        failed = Attempt(action, target, "failed", actor, comment, reason=str(exc))
        audit.record(settings, mv, failed, chained=False)
        raise
    try:
        yield lock
    finally:
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
    listed = registry.versions(model)
    champions = registry.in_stage(listed, "Production")
    if not champions:
        raise RegistryError(f"{model} has no Production version to roll back")
    actor = reviewer or getpass.getuser()
    with _hold(settings, champions[-1], "Production", actor, comment, False, "rollback") as lock:
        assert lock is not None
        listed = registry.versions(model)
        champions = registry.in_stage(listed, "Production")
        if not champions:
            raise RegistryError(f"{model} has no Production version to roll back")
        current = champions[-1]
        previous = previous_champion(model, current.version, settings)
        if not previous:
            raise RegistryError(
                f"{model} v{current.version} replaced no earlier Production version "
                "(audit trail); there is nothing to roll back to"
            )
        back = next((mv for mv in listed if mv.version == previous), None)
        if back is None:
            raise RegistryError(f"{model} v{previous} (the previous champion) no longer exists")
        lock.check()
        replaced = ",".join(mv.version for mv in champions)
        note = comment or f"rollback from v{current.version}"
        audit_id = audit.record(
            settings, back, Attempt("rollback", "Production", "applied", actor, note, replaced)
        )
        archived = _move(back, "Production", actor, comment, audit_id, lock)
    log.info("%s: rolled back v%s -> v%s", model, current.version, previous)
    return Promotion(model, previous, back.stage, "Production", None, True, archived, audit_id)


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


def _archive(
    settings: Settings, mv: VersionInfo, actor: str, comment: str, dry_run: bool
) -> Promotion:
    """Retire a None/Staging version: no gates."""
    result = Promotion(mv.name, mv.version, mv.stage, "Archived", None, False)
    if dry_run:
        return result
    with _hold(settings, mv, "Archived", actor, comment, False) as lock:
        assert lock is not None
        mv = registry.get_version(mv.name, mv.version)
        check_move(mv, "Archived")
        lock.check()
        audit_id = audit.record(
            settings, mv, Attempt("promote", "Archived", "applied", actor, comment)
        )
        _move(mv, "Archived", actor, comment, audit_id, lock)
    result.applied, result.audit_run_id = True, audit_id
    return result


def _move(
    mv: VersionInfo,
    target: Stage,
    actor: str,
    comment: str,
    audit_id: str,
    lock: PromotionLock,
    extra_tags: dict[str, str] | None = None,
) -> list[str]:
    """The writes of one transition (under the lock); returns the versions archived.

    The candidate moves first, then the old champion is archived: serving may
    briefly see two Production versions, never none.
    """
    listed = registry.versions(mv.name)
    lock.check()
    registry.transition(mv.name, mv.version, target)
    tags = {STAGE_TAG: target, "runway.audit_run_id": audit_id, **(extra_tags or {})}
    if target == "Production":
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
    registry.sync_aliases(mv.name)
    return archived


def _log_report(mv: VersionInfo, report: GateReport) -> None:
    """The gate report as artifacts of the candidate's run (text and JSON)."""
    if not mv.run_id:
        return
    now = datetime.now(UTC)
    base = f"registry/v{mv.version}-{report.target.lower()}-{now:%Y%m%dT%H%M%S%fZ}"
    try:
        log_run_text(mv.run_id, report.render(), f"{base}.txt")
        log_run_text(mv.run_id, report.to_json(), f"{base}.json")
        when = f"{now:%Y-%m-%d %H:%M} UTC"
        registry.link_gate_report(mv, report.passed, report.target, f"{base}.txt", when)
    except Exception as exc:  # the report is also in the audit trail
        log.warning("could not log the gate report on run %s: %s", mv.run_id, exc)
