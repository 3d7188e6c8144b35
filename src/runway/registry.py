"""The only module that calls Model Registry APIs.

Stages (None -> Staging -> Production -> Archived) are what users see; every
stage change also moves the matching alias, so ``models:/M@production`` and
``models:/M/Production`` always name the same version (``@staging`` names the
newest Staging version, as ``models:/M/Staging`` does).

Promotions of one model are serialised by a lock kept in the registry itself
(a registered model named ``<model>.runway-lock``: creating it is atomic on any
MLflow store), and everything is decided again under that lock, so two
promotions racing each other end with exactly one Production version. Each
attempt, applied or refused, and each rollback is one run in the audit
experiment of the tracking store: the team's shared, UI-visible history.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from runway import tracking
from runway.contract import CheckPolicy
from runway.errors import RunwayError, SpecError
from runway.gates import GateReport, ModelFacts, Stage, judge, reviewer_rules
from runway.settings import Settings, get_settings
from runway.spec import PromotionPolicy, load_policy

log = logging.getLogger(__name__)

STAGES: tuple[Stage, ...] = ("None", "Staging", "Production", "Archived")
ALIASES = {"Staging": "staging", "Production": "production"}
LOCK_SUFFIX = ".runway-lock"
STAGE_TAG = "runway.stage"  # the stage runway last set: a mismatch means "unaudited"
AUDIT = "runway.audit."
SPEC_ARTIFACT = "spec/spec.yaml"


class RegistryError(RunwayError):
    """A registry operation was refused or failed."""

    exit_code = 6


class GateFailure(RegistryError):
    """The candidate did not pass its gates; nothing changed."""

    def __init__(self, report: GateReport) -> None:
        failed = ", ".join(rule.name for rule in report.failures)
        super().__init__(f"{report.model} v{report.version} stays in its stage: failed {failed}")
        self.report = report


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version as registered."""

    name: str
    version: str
    source: str
    run_id: str | None


@dataclass(frozen=True)
class VersionStatus:
    """One row of ``runway registry status``."""

    model: str
    version: str
    stage: str
    aliases: tuple[str, ...]
    metric: str
    value: float | None
    run_id: str | None
    approved_by: str
    approved_at: str
    unaudited: str = ""


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


def _client(settings: Settings) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(
        tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
    )


def register_version(
    name: str,
    model_uri: str,
    *,
    run_id: str | None,
    tags: dict[str, str],
    description: str = "",
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name`` (created on first use)."""
    client = mlflow.MlflowClient()
    try:
        version = mlflow.register_model(model_uri, name, tags={**tags, STAGE_TAG: "None"})
    except MlflowException as exc:
        raise RegistryError(f"cannot register {model_uri} as {name!r}: {exc.message}") from exc
    if description:
        client.update_model_version(name, version.version, description=description)
    log.info("registered %s version %s (stage None)", name, version.version)
    return RegisteredVersion(name, str(version.version), model_uri, run_id)


# --- reading the registry ---------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete registered version: what serving and batch scoring load."""

    name: str
    version: str
    stage: str
    run_id: str | None

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: pinned, so a promotion mid-load cannot switch it."""
        return f"models:/{self.name}/{self.version}"


def resolve(
    model: str,
    stage: str | None = "Production",
    version: str | int | None = None,
    settings: Settings | None = None,
) -> ResolvedModel:
    """The version of ``model`` to score with: ``version`` if given, else the one in ``stage``.

    For Staging, the newest Staging version (what ``models:/M/Staging`` means).
    Serving and batch scoring both resolve here, so they agree on "the model".
    """
    settings = tracking.configure(settings)
    client = _client(settings)
    if version is not None:
        mv = _version(client, model, str(version))
    else:
        target = _target_stage(stage or "Production")
        in_stage = _in_stage(_versions(client, model), target)
        if not in_stage:
            reviewer = " --reviewer <name>" if target == "Production" else ""
            raise RegistryError(
                f"{model} has no {target} version; promote one with "
                f"`runway registry promote {model} <version> --to {target}{reviewer}`"
            )
        mv = in_stage[-1]
    return ResolvedModel(model, str(mv.version), mv.current_stage, mv.run_id)


def _versions(client: mlflow.MlflowClient, model: str) -> list[ModelVersion]:
    try:
        client.get_registered_model(model)
    except MlflowException as exc:
        known = [m.name for m in client.search_registered_models() if not _is_lock(m.name)]
        hint = f"; registered models: {', '.join(sorted(known))}" if known else ""
        raise RegistryError(f"unknown model {model!r}{hint}") from exc
    found = client.search_model_versions(f"name = '{_quote(model)}'")
    return sorted(found, key=lambda mv: int(mv.version))


def _version(client: mlflow.MlflowClient, model: str, version: str) -> ModelVersion:
    versions = _versions(client, model)
    for mv in versions:
        if str(mv.version) == str(version):
            return mv
    listed = ", ".join(str(mv.version) for mv in versions) or "none"
    raise RegistryError(f"{model} has no version {version!r}; versions: {listed}")


def _in_stage(versions: list[ModelVersion], stage: str) -> list[ModelVersion]:
    return [mv for mv in versions if mv.current_stage == stage]


def _is_lock(name: str) -> bool:
    return name.endswith(LOCK_SUFFIX)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def status(model: str | None = None, settings: Settings | None = None) -> list[VersionStatus]:
    """Every version of ``model`` (or of every model) with stage, aliases and approval.

    A version whose stage differs from the one runway last recorded was moved
    outside runway (the MLflow UI, a script): it is flagged ``unaudited``.
    """
    settings = tracking.configure(settings)
    client = _client(settings)
    names = (
        [model]
        if model
        else sorted(m.name for m in client.search_registered_models() if not _is_lock(m.name))
    )
    rows = []
    for name in names:
        versions = _versions(client, name)
        aliases = _aliases_by_version(client, name)
        for mv in versions:
            metric, value = _primary_metric(client, mv.run_id)
            rows.append(
                VersionStatus(
                    model=name,
                    version=str(mv.version),
                    stage=mv.current_stage,
                    aliases=tuple(sorted(aliases.get(str(mv.version), []))),
                    metric=metric,
                    value=value,
                    run_id=mv.run_id,
                    approved_by=mv.tags.get("approved_by", ""),
                    approved_at=mv.tags.get("approved_at", ""),
                    unaudited=_audit_problem(mv, aliases),
                )
            )
    return rows


def _aliases_by_version(client: mlflow.MlflowClient, model: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(model).aliases or {}).items():
        out.setdefault(str(version), []).append(alias)
    return out


def _audit_problem(mv: ModelVersion, aliases: dict[str, list[str]]) -> str:
    recorded = mv.tags.get(STAGE_TAG, "None")
    if mv.current_stage != recorded:
        return f"stage {mv.current_stage} set outside runway (runway recorded {recorded})"
    mine = aliases.get(str(mv.version), [])
    for stage, alias in ALIASES.items():
        if alias in mine and mv.current_stage != stage:
            return f"alias @{alias} points at a version in {mv.current_stage}"
    return ""


def _primary_metric(client: mlflow.MlflowClient, run_id: str | None) -> tuple[str, float | None]:
    if not run_id:
        return "", None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return "", None
    metric = run.data.tags.get("runway.primary_metric", "")
    return metric, run.data.metrics.get(f"holdout_{metric}") if metric else None


def history(
    model: str, settings: Settings | None = None, *, reports: bool = False
) -> list[AuditEntry]:
    """Every recorded transition attempt and rollback of ``model``, oldest first.

    With ``reports``, each entry carries its gate report's text (read from the
    audit run's ``gate_report.txt``; rollbacks and archiving have none).
    """
    settings = tracking.configure(settings)
    client = _client(settings)
    _versions(client, model)  # unknown model -> clear error
    experiment = client.get_experiment_by_name(settings.audit_experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{AUDIT}model` = '{_quote(model)}'",
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
                report=_report_text(run.info.run_id) if reports else "",
            )
        )
    return entries


def _report_text(run_id: str) -> str:
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/gate_report.txt")
    except (MlflowException, OSError):
        return ""


# --- promotion --------------------------------------------------------------------------


def policy_path(model: str, settings: Settings) -> Path:
    """Where ``model``'s promotion policy lives."""
    return Path(settings.registry_dir) / f"{model}.yaml"


def input_policy(model: str, settings: Settings | None = None) -> CheckPolicy:
    """How scoring treats input the contract did not see: the policy's ``input`` section.

    A model without a policy file gets the strict defaults (reject unknown
    columns and unseen categories, let the pipeline impute missing values).
    """
    settings = settings or get_settings()
    path = policy_path(model, settings)
    if not path.is_file():
        return CheckPolicy()
    rules = load_policy(path).input
    return CheckPolicy(**rules.model_dump())


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
            reviewer problem; nothing changed.
        GateFailure: a gate failed; nothing changed, the report is recorded.
        SpecError: the policy file is missing or invalid.
    """
    settings = tracking.configure(settings)
    client = _client(settings)
    target = _target_stage(to)
    candidate = _version(client, model, version)
    source = Path(policy_file) if policy_file else policy_path(model, settings)
    policy = load_policy(source)
    if policy.model != model:
        raise SpecError(f"{source}: model: policy is for {policy.model!r}, not {model!r}")
    _check_move(candidate, target)
    if target == "Production":
        # Who may approve is known before anything is measured: fail fast.
        author = _author(client, candidate.run_id)
        early = reviewer_rules(
            policy, ModelFacts(str(version), candidate.current_stage, author=author), reviewer
        )
        for rule in early:
            if not rule.passed:
                raise RegistryError(
                    f"{model} v{version} -> Production refused: {rule.name}: {rule.detail}"
                )
    if target == "Archived":
        return _archive(client, settings, candidate, reviewer, comment, dry_run)

    with _lock(client, model, settings.lock_timeout, dry_run):
        # Decide again under the lock: another promotion may have just landed.
        candidate = _version(client, model, version)
        _check_move(candidate, target)
        versions = _versions(client, model)
        champions = _in_stage(versions, "Production")
        baseline_mv = champions[-1] if champions else None
        report = _evaluate(client, policy, candidate, baseline_mv, target, reviewer, comment)
        result = Promotion(model, str(version), candidate.current_stage, target, report, False)
        if dry_run:
            return result
        _log_report(client, candidate, report)
        actor = reviewer or getpass.getuser()
        if report.passed:
            outcome, reason = "applied", ""
            replaced = (
                ",".join(str(mv.version) for mv in champions) if target == "Production" else ""
            )
        else:
            outcome = "refused"
            reason = "; ".join(f"{r.name}: {r.detail or 'failed'}" for r in report.failures)
            replaced = str(baseline_mv.version) if baseline_mv else ""
        audit_id = _audit(
            client,
            settings,
            action="promote",
            mv=candidate,
            to_stage=target,
            outcome=outcome,
            actor=actor,
            comment=comment,
            replaced=replaced,
            reason=reason,
            report=report,
        )
        if not report.passed:
            raise GateFailure(report)
        result.archived = _move(client, candidate, target, actor, comment, audit_id, versions)
        result.applied, result.audit_run_id = True, audit_id
    log.info("%s v%s: %s -> %s", model, version, result.from_stage, target)
    return result


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
    settings = tracking.configure(settings)
    client = _client(settings)
    _versions(client, model)
    with _lock(client, model, settings.lock_timeout, dry_run=False):
        versions = _versions(client, model)
        champions = _in_stage(versions, "Production")
        if not champions:
            raise RegistryError(f"{model} has no Production version to roll back")
        current = champions[-1]
        previous = _previous_champion(model, str(current.version), settings)
        if not previous:
            raise RegistryError(
                f"{model} v{current.version} replaced no earlier Production version "
                "(audit trail); there is nothing to roll back to"
            )
        back = next((mv for mv in versions if str(mv.version) == previous), None)
        if back is None:
            raise RegistryError(f"{model} v{previous} (the previous champion) no longer exists")
        actor = reviewer or getpass.getuser()
        audit_id = _audit(
            client,
            settings,
            action="rollback",
            mv=back,
            to_stage="Production",
            outcome="applied",
            actor=actor,
            comment=comment or f"rollback from v{current.version}",
            replaced=",".join(str(mv.version) for mv in champions),
        )
        archived = _move(client, back, "Production", actor, comment, audit_id, versions)
    log.info("%s: rolled back v%s -> v%s", model, current.version, previous)
    return Promotion(
        model, previous, back.current_stage, "Production", None, True, archived, audit_id
    )


def _previous_champion(model: str, version: str, settings: Settings) -> str:
    for entry in reversed(history(model, settings)):
        if (
            entry.outcome == "applied"
            and entry.to_stage == "Production"
            and entry.version == version
        ):
            return next((v for v in entry.replaced.split(",") if v and v != version), "")
    return ""


def _target_stage(to: str) -> Stage:
    for stage in STAGES[1:]:
        if to.casefold() == stage.casefold():
            return stage
    raise RegistryError(f"unknown stage {to!r}; expected Staging, Production or Archived")


def _check_move(mv: ModelVersion, target: Stage) -> None:
    name, version, stage = mv.name, mv.version, mv.current_stage
    if stage == target:
        raise RegistryError(f"{name} v{version} is already in {target}")
    if target == "Production" and stage != "Staging":
        raise RegistryError(
            f"{name} v{version} is in {stage}; promote it to Staging first "
            "(Production takes versions from Staging)"
        )
    if target != "Production" and stage == "Production":
        raise RegistryError(
            f"{name} v{version} is the Production version; promote another version or "
            f"use `runway registry rollback {name}`, so that one stays in Production"
        )


def _author(client: mlflow.MlflowClient, run_id: str | None) -> str | None:
    if not run_id:
        return None
    try:
        return client.get_run(run_id).data.tags.get("mlflow.user")
    except MlflowException:
        return None


def _archive(
    client: mlflow.MlflowClient,
    settings: Settings,
    mv: ModelVersion,
    reviewer: str | None,
    comment: str,
    dry_run: bool,
) -> Promotion:
    """Retire a None/Staging version: no gates."""
    result = Promotion(mv.name, str(mv.version), mv.current_stage, "Archived", None, False)
    if dry_run:
        return result
    with _lock(client, mv.name, settings.lock_timeout, dry_run):
        mv = _version(client, mv.name, mv.version)
        _check_move(mv, "Archived")
        actor = reviewer or getpass.getuser()
        audit_id = _audit(
            client,
            settings,
            action="promote",
            mv=mv,
            to_stage="Archived",
            outcome="applied",
            actor=actor,
            comment=comment,
            replaced="",
        )
        _move(client, mv, "Archived", actor, comment, audit_id, _versions(client, mv.name))
    result.applied, result.audit_run_id = True, audit_id
    return result


def _move(
    client: mlflow.MlflowClient,
    mv: ModelVersion,
    target: Stage,
    actor: str,
    comment: str,
    audit_id: str,
    versions: list[ModelVersion],
) -> list[str]:
    """The writes of one transition (the caller holds the lock); returns archived versions.

    The candidate moves first, then the old champion is archived: serving may
    briefly see two Production versions, never none.
    """
    name, version = mv.name, str(mv.version)
    _transition(client, name, version, target)
    tags = {STAGE_TAG: target, "runway.audit_run_id": audit_id}
    if target == "Production":
        tags |= {
            "approved_by": actor,
            "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "approval_comment": comment,
        }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    archived = []
    if target == "Production":
        for old in _in_stage(versions, "Production"):
            if str(old.version) != version:
                _transition(client, name, str(old.version), "Archived")
                client.set_model_version_tag(name, old.version, STAGE_TAG, "Archived")
                archived.append(str(old.version))
    _sync_aliases(client, name)
    return archived


def _transition(client: mlflow.MlflowClient, name: str, version: str, stage: Stage) -> None:
    """The one stage write. Stages are deprecated (MLflow 2.9) but are what users see;
    the alias mirror is what keeps working after them, so the warning is noise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)


def _sync_aliases(client: mlflow.MlflowClient, model: str) -> None:
    """``@production`` -> the Production version, ``@staging`` -> the newest Staging one."""
    versions = _versions(client, model)
    current = client.get_registered_model(model).aliases or {}
    for stage, alias in ALIASES.items():
        holders = _in_stage(versions, stage)
        if holders:
            wanted = str(holders[-1].version)
            if str(current.get(alias)) != wanted:
                client.set_registered_model_alias(model, alias, wanted)
        elif alias in current:
            client.delete_registered_model_alias(model, alias)


# --- facts for the gates ------------------------------------------------------------------


def _evaluate(
    client: mlflow.MlflowClient,
    policy: PromotionPolicy,
    candidate: ModelVersion,
    baseline: ModelVersion | None,
    target: Stage,
    reviewer: str | None,
    comment: str,
) -> GateReport:
    """Load both versions, score them on the candidate's holdout, judge the policy."""
    from runway.data import load_dataset, prepare
    from runway.spec import load_spec

    if not candidate.run_id:
        raise RegistryError(f"{candidate.name} v{candidate.version} has no source run to gate")
    with tempfile.TemporaryDirectory(prefix="runway-gates-") as tmp:
        try:
            spec_file = client.download_artifacts(candidate.run_id, SPEC_ARTIFACT, tmp)
        except MlflowException as exc:
            raise RegistryError(
                f"{candidate.name} v{candidate.version}: run {candidate.run_id} has no "
                f"{SPEC_ARTIFACT}; runway gates versions trained by `runway train`/`sweep`"
            ) from exc
        spec = load_spec(spec_file)
        split = prepare(spec, load_dataset(spec.data))
        X, y = split.X_holdout, split.y_holdout
        evaluation = (
            f"{len(X)} holdout rows of {spec.data.source} (seed {spec.split.seed}, "
            f"holdout {spec.split.holdout:g}) from the candidate's spec"
        )
        metrics = _gate_metrics(spec, policy, y)
        facts = _facts(client, candidate, spec, metrics, X, y, Path(tmp) / "candidate")
        base = (
            _facts(client, baseline, spec, metrics, X, y, Path(tmp) / "baseline")
            if baseline is not None
            else None
        )
    rules = judge(policy, target, facts, base, spec.primary_metric.name, reviewer)
    return GateReport(
        model=candidate.name,
        version=str(candidate.version),
        target=target,
        baseline_version=str(baseline.version) if baseline else None,
        evaluation=evaluation,
        rules=rules,
        reviewer=reviewer,
        comment=comment,
    )


def _gate_metrics(spec: Any, policy: PromotionPolicy, y: Any) -> list[str]:
    """The spec's metrics plus those the policy gates on, where they apply to the task."""
    from runway.catalog import BINARY_ONLY_METRICS, METRICS

    wanted = [*spec.metrics, *(t.metric for t in policy.staging.thresholds)]
    improvement = policy.staging.improvement
    if improvement is not None and improvement.metric:
        wanted.append(improvement.metric)
    binary = y.nunique() == 2
    return [
        m
        for m in dict.fromkeys(wanted)
        if METRICS[m].task == spec.task and (binary or m not in BINARY_ONLY_METRICS)
    ]


def _facts(
    client: mlflow.MlflowClient,
    mv: ModelVersion,
    spec: Any,
    metrics: list[str],
    X: Any,
    y: Any,
    where: Path,
) -> ModelFacts:
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import Model

    from runway.evaluate import holdout_metrics

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=str(where)
        )
    )
    size_mb = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6
    signature = Model.load(str(local / "MLmodel")).signature
    inputs = {
        col.name: getattr(col.type, "name", str(col.type))
        for col in (signature.inputs.inputs if signature else [])
        if getattr(col, "required", True)
    }
    scores: dict[str, float] = {}
    latency = error = None
    try:
        model = mlflow.sklearn.load_model(str(local))
        measured = holdout_metrics(spec, model, X, y, metrics)
        scores = {k.removeprefix("holdout_"): v for k, v in measured.items()}
        latency = _latency_ms(local, X)
    except Exception as exc:  # the baseline may not read the candidate's columns
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return ModelFacts(
        version=str(mv.version),
        stage=mv.current_stage,
        run_id=mv.run_id,
        author=_author(client, mv.run_id),
        metrics=scores,
        score_error=error,
        inputs=inputs,
        latency_ms=latency,
        size_mb=size_mb,
    )


def _latency_ms(local: Path, X: Any, repeats: int = 30) -> float:
    """Median in-process single-row predict time through pyfunc (schema checks included)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(local))
    row = X.head(1)
    for _ in range(3):
        model.predict(row)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(row)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# --- records ------------------------------------------------------------------------------


def _log_report(client: mlflow.MlflowClient, mv: ModelVersion, report: GateReport) -> None:
    """The gate report as artifacts of the candidate's run (text and JSON)."""
    if not mv.run_id:
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    base = f"registry/v{mv.version}-{report.target.lower()}-{stamp}"
    try:
        client.log_text(mv.run_id, report.render(), f"{base}.txt")
        client.log_text(mv.run_id, report.to_json(), f"{base}.json")
    except MlflowException as exc:  # the report is also in the audit trail
        log.warning("could not log the gate report on run %s: %s", mv.run_id, exc)


def _audit(
    client: mlflow.MlflowClient,
    settings: Settings,
    *,
    action: str,
    mv: ModelVersion,
    to_stage: str,
    outcome: str,
    actor: str,
    comment: str,
    replaced: str,
    reason: str = "",
    report: GateReport | None = None,
) -> str:
    """One run in the audit experiment; FAILED when the attempt was refused."""
    experiment_id = tracking.ensure_experiment(settings.audit_experiment, settings)
    tags = {
        f"{AUDIT}model": mv.name,
        f"{AUDIT}version": str(mv.version),
        f"{AUDIT}action": action,
        f"{AUDIT}from_stage": mv.current_stage,
        f"{AUDIT}to_stage": to_stage,
        f"{AUDIT}outcome": outcome,
        f"{AUDIT}actor": actor,
        f"{AUDIT}comment": comment[: tracking.MAX_TAG_CHARS],
        f"{AUDIT}replaced": replaced,
        f"{AUDIT}reason": reason[: tracking.MAX_TAG_CHARS],
        f"{AUDIT}source_run_id": mv.run_id or "",
        "mlflow.user": getpass.getuser(),
        "mlflow.note.content": f"{action} {mv.name} v{mv.version} {mv.current_stage} -> "
        f"{to_stage}: {outcome} by {actor}" + (f" ({comment})" if comment else ""),
    }
    run = client.create_run(
        experiment_id, run_name=f"{mv.name} v{mv.version} -> {to_stage}", tags=tags
    )
    if report is not None:
        client.log_text(run.info.run_id, report.render(), "gate_report.txt")
        client.log_text(run.info.run_id, report.to_json(), "gate_report.json")
    status = RunStatus.FINISHED if outcome == "applied" else RunStatus.FAILED
    client.set_terminated(run.info.run_id, RunStatus.to_string(status))
    return run.info.run_id


@contextlib.contextmanager
def _lock(client: mlflow.MlflowClient, model: str, timeout: float, dry_run: bool) -> Iterator[None]:
    """Hold ``<model>.runway-lock`` (a registered model: creating one is atomic).

    A holder that died leaves a lock behind; it is broken once older than
    ``timeout`` seconds past its own deadline. Dry runs change nothing and skip it.
    """
    if dry_run:
        yield
        return
    name = f"{model}{LOCK_SUFFIX}"
    holder = f"{getpass.getuser()}@{socket.gethostname()}:{os.getpid()}"
    deadline = time.monotonic() + timeout
    while True:
        expires = time.time() + timeout
        try:
            client.create_registered_model(
                name,
                tags={"runway.lock.holder": holder, "runway.lock.expires": f"{expires:.0f}"},
                description=f"runway promotion lock for {model}, held by {holder}",
            )
            break
        except MlflowException as exc:
            held = exc.error_code == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(exc)
            busy = "locked" in str(exc).lower()  # SQLite busy: just retry
            if not (held or busy):
                raise RegistryError(f"cannot take the promotion lock {name!r}: {exc}") from exc
        _break_if_stale(client, name)
        if time.monotonic() > deadline:
            raise RegistryError(
                f"another promotion of {model} holds {name!r}; waited {timeout:g}s. "
                f"If no promotion is running, delete that registered model and retry"
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)


def _break_if_stale(client: mlflow.MlflowClient, name: str) -> None:
    with contextlib.suppress(MlflowException, ValueError):
        tags = client.get_registered_model(name).tags
        if float(tags.get("runway.lock.expires", "inf")) < time.time():
            log.warning(
                "breaking stale promotion lock %s held by %s", name, tags.get("runway.lock.holder")
            )
            client.delete_registered_model(name)
