"""The only module that calls Model Registry APIs: reading versions and writing stages.

Aliases come first: :func:`resolve` reads ``models:/M@production`` (``@staging``),
what keeps working once MLflow removes stages (deprecated since 2.9). Stages
(None -> Staging -> Production -> Archived) are kept as a mirror for the UI
while MLflow has them: every stage write (:func:`transition`, the one place
that calls the stage API, and which carries on without it the day it is gone)
is followed by :func:`sync_aliases`, so ``models:/M@production`` and
``models:/M/Production`` name the same version (``@staging`` names the newest
Staging version, as ``models:/M/Staging`` does). A registry from before the
aliases is still read by stage, with a warning. Promotion rules live in
:mod:`runway.jobs.promote`; this module only reads and writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from runway.core.columns.input_policy import InputPolicy
from runway.core.governance.chain import ALIASES, STAGE_TAG
from runway.errors import PermissionDenied, RegistryError
from runway.store.http import explain
from runway.store.identity import whoami
from runway.store.served import ResolvedModel
from runway.store.tracking import (
    MAX_TAG_CHARS,
    client,
    run_experiment,
    run_link,
    run_metrics,
    run_tags,
)

log = logging.getLogger(__name__)

Stage = Literal["None", "Staging", "Production", "Archived"]
STAGES: tuple[Stage, ...] = ("None", "Staging", "Production", "Archived")
LOCK_SUFFIX = ".runway-lock"
POLICY_SUFFIX = ".runway-policy"  # the team's stored promotion policy (store/team_policy)
POLICY_TAG = "runway.policy"  # the promotion policy applied, as JSON
POLICY_HASH_TAG = "runway.policy.sha256"
INPUT_POLICY_TAG = "runway.policy.input"  # what serving and batch scoring apply
# Why MLflow's stage API failed, once it has: this process then writes and reads the
# runway.stage tag and the aliases alone (an MLflow that removed stages)
_stages_gone: list[str] = []


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version, as runway reads it."""

    name: str
    version: str
    stage: str
    run_id: str | None
    source: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, mv: ModelVersion) -> VersionInfo:
        """From MLflow's entity. Without a stage (an MLflow that dropped them), the stage
        runway last set (its ``runway.stage`` tag) stands for it."""
        tags = dict(mv.tags or {})
        stage = None if _stages_gone else getattr(mv, "current_stage", None)
        stage = stage or tags.get(STAGE_TAG, "None")
        return cls(
            mv.name, str(mv.version), str(stage), mv.run_id or None, str(mv.source or ""), tags
        )


def target_stage(to: str) -> Stage:
    """A stage name as users type it (any case) -> the registry's spelling."""
    for stage in STAGES[1:]:
        if to.casefold() == stage.casefold():
            return stage
    raise RegistryError(f"unknown stage {to!r}; expected Staging, Production or Archived")


def register_version(
    name: str, model_uri: str, *, tags: Mapping[str, str], description: str = ""
) -> VersionInfo:
    """Register ``model_uri`` as a new version of ``name`` (created on first use), stage None."""
    import mlflow

    try:
        registered_by = {"runway.registered_by": whoami().user}
        chatter = io.StringIO()  # MLflow prints "Successfully registered ..." to stderr
        with contextlib.redirect_stderr(chatter):
            mv = mlflow.register_model(
                model_uri, name, tags={**tags, **registered_by, STAGE_TAG: "None"}
            )
        log.debug("%s", chatter.getvalue().strip())
    except MlflowException as exc:
        raise explain(exc) or RegistryError(
            f"cannot register {model_uri} as {name!r}: {exc.message}"
        ) from exc
    if description:
        client().update_model_version(name, mv.version, description=description)
    log.debug("registered %s version %s (stage None)", name, mv.version)  # the CLI says it
    return VersionInfo.of(mv)


# --- reading ------------------------------------------------------------------------------


def versions(model: str) -> list[VersionInfo]:
    """Every version of ``model``, oldest first; a clear error for an unknown model."""
    mlflow_client = client()
    try:
        mlflow_client.get_registered_model(model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST" and (problem := explain(exc)):
            if isinstance(
                problem, PermissionDenied
            ):  # the server answers 403 for a missing name too
                problem = PermissionDenied(f"{problem}; or there is no model {model!r}")
            raise problem from exc
        known = model_names()
        hint = f"; registered models: {', '.join(known)}" if known else ""
        raise RegistryError(f"unknown model {model!r}{hint}") from exc
    found = mlflow_client.search_model_versions(f"name = '{quote(model)}'")
    return sorted((VersionInfo.of(mv) for mv in found), key=lambda v: int(v.version))


def get_version(model: str, number: str | int) -> VersionInfo:
    """One version of ``model``; the error lists the versions there are."""
    listed = versions(model)
    for mv in listed:
        if mv.version == str(number):
            return mv
    known = ", ".join(mv.version for mv in listed) or "none"
    raise RegistryError(f"{model} has no version {str(number)!r}; versions: {known}")


def in_stage(listed: list[VersionInfo], stage: str) -> list[VersionInfo]:
    """The versions in ``stage``, oldest first."""
    return [mv for mv in listed if mv.stage == stage]


def model_names() -> list[str]:
    """Every registered model but runway's locks and stored policies, sorted."""
    return sorted(m.name for m in client().search_registered_models() if not is_lock(m.name))


def is_lock(name: str) -> bool:
    """True for the registered models runway keeps for itself (promotion locks, policies)."""
    return name.endswith((LOCK_SUFFIX, POLICY_SUFFIX))


def quote(value: str) -> str:
    """A value for an MLflow search filter, single quotes escaped."""
    return value.replace("'", "\\'")


def aliases(model: str) -> dict[str, str]:
    """Alias -> version of ``model``."""
    return {a: str(v) for a, v in (client().get_registered_model(model).aliases or {}).items()}


def resolve(
    model: str, stage: str | None = "Production", version: str | int | None = None
) -> ResolvedModel:
    """The version of ``model`` to score with: ``version`` if given, else the one ``stage``'s
    alias names (``@production``, ``@staging``), else, in a registry from before the
    aliases, the one in ``stage`` (the newest Staging one, as ``models:/M/Staging``).

    Serving, batch scoring and monitoring all resolve here, so they agree on "the model".
    """
    if version is not None:
        mv = get_version(model, version)
        return ResolvedModel(model, mv.version, mv.stage, mv.run_id, mv.source)
    target = target_stage(stage or "Production")
    alias = ALIASES.get(target)
    named = by_alias(model, alias) if alias else None
    if named is not None:  # the stage is the one the alias stands for, whatever the mirror says
        return ResolvedModel(model, named.version, target, named.run_id, named.source)
    found = in_stage(versions(model), target)
    if not found:
        reviewer = " --reviewer <name>" if target == "Production" else ""
        raise RegistryError(
            f"{model} has no {target} version; promote one with "
            f"`runway registry promote {model} <version> --to {target}{reviewer}`"
        )
    mv = found[-1]
    if alias:
        log.warning(
            "%s has no @%s alias (a registry from before runway set them): using its %s "
            "stage, v%s; any promotion or rollback through runway sets the alias",
            model,
            alias,
            target,
            mv.version,
        )
    return ResolvedModel(model, mv.version, mv.stage, mv.run_id, mv.source)


def by_alias(model: str, alias: str) -> VersionInfo | None:
    """The version ``model@alias`` names, or None when the alias is not set."""
    try:
        return VersionInfo.of(client().get_model_version_by_alias(model, alias))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            versions(model)  # an unknown model: its own clear error
            return None
        raise explain(exc) or RegistryError(f"cannot read {model}@{alias}: {exc.message}") from exc


def run_author(run_id: str | None) -> str | None:
    """Who made a run (its ``mlflow.user`` tag), if known."""
    return run_tags(run_id).get("mlflow.user") if run_id else None


def primary_metric(run_id: str | None) -> tuple[str, float | None]:
    """A run's primary metric name and holdout value (what ``status`` shows)."""
    if not run_id:
        return "", None
    metric = run_tags(run_id).get("runway.primary_metric", "")
    return metric, run_metrics(run_id).get(f"holdout_{metric}") if metric else None


# --- the input policy a version carries ------------------------------------------------------


def policy_tags(policy_doc: Mapping[str, Any], input_policy: InputPolicy) -> dict[str, str]:
    """The tags that record an applied promotion policy on a version (content and hash)."""
    canonical = json.dumps(policy_doc, sort_keys=True, separators=(",", ":"))
    tags = {
        POLICY_HASH_TAG: hashlib.sha256(canonical.encode()).hexdigest(),
        INPUT_POLICY_TAG: json.dumps(input_policy.model_dump(), sort_keys=True),
    }
    if len(canonical) <= MAX_TAG_CHARS:
        tags[POLICY_TAG] = canonical
    return tags


def input_policy(mv: VersionInfo) -> InputPolicy | None:
    """The input policy recorded on ``mv`` when it was promoted, or None if none was."""
    recorded = mv.tags.get(INPUT_POLICY_TAG)
    if not recorded:
        return None
    try:
        return InputPolicy.model_validate(json.loads(recorded))
    except ValueError as exc:
        raise RegistryError(
            f"{mv.name} v{mv.version}: tag {INPUT_POLICY_TAG} is not a valid input policy: {exc}"
        ) from exc


# --- writing --------------------------------------------------------------------------------


def transition(model: str, number: str, stage: Stage) -> None:
    """The one stage write: a mirror for the UI. Stages are deprecated (MLflow 2.9);
    the aliases :func:`sync_aliases` sets after it are what runway reads, so the
    warning is noise here, and an MLflow without the stage API is not an error:
    the ``runway.stage`` tag and the aliases carry on alone (said once)."""
    if _stages_gone:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client().transition_model_version_stage(
                model, number, stage, archive_existing_versions=False
            )
    except (AttributeError, MlflowException) as exc:
        if isinstance(exc, MlflowException) and not _stage_api_missing(exc):
            raise
        _stages_gone.append(str(exc))
        log.warning(
            "this MLflow does not take stage writes (%s); runway carries on with aliases "
            "(@production, @staging) and the runway.stage tag alone",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )


def _stage_api_missing(exc: MlflowException) -> bool:
    """A stage write refused because the API is gone, not because of this model or user."""
    refused = ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED", "UNAUTHENTICATED")
    if exc.error_code in refused or explain(exc) is not None:
        return False
    gone = ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "FEATURE_DISABLED")
    return exc.error_code in gone or "stage" in str(exc.message).lower()


def set_version_tags(model: str, number: str, tags: Mapping[str, str]) -> None:
    """Tags on one version."""
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model, number, key, value)


def sync_aliases(model: str) -> None:
    """``@production`` -> the Production version, ``@staging`` -> the newest Staging one."""
    listed = versions(model)
    current = aliases(model)
    mlflow_client = client()
    for stage, alias in ALIASES.items():
        holders = in_stage(listed, stage)
        if holders:
            wanted = holders[-1].version
            if current.get(alias) != wanted:
                mlflow_client.set_registered_model_alias(model, alias, wanted)
        elif alias in current:
            mlflow_client.delete_registered_model_alias(model, alias)


def applied_input_policy(model: str, number: str) -> InputPolicy:
    """The input rules for scoring with ``model`` v``number``: recorded at its promotion.

    Never read from the current directory, so what a served model accepts does
    not depend on where the command started. A version promoted before runway
    recorded policies (or never promoted) gets the defaults, with a warning.
    """
    mv = get_version(model, number)
    recorded = input_policy(mv)
    if recorded is None:
        default = InputPolicy()
        log.warning(
            "%s v%s has no input policy recorded (it was not promoted by this runway); "
            "using the defaults: %s",
            model,
            number,
            ", ".join(f"{k}={v}" for k, v in default.model_dump().items()),
        )
        return default
    return recorded


# --- descriptions (Markdown on the registry's pages; links work there, not in tags) ---------

REPORTS_HEADING = "Gate reports:"


def describe_model(name: str, text: str) -> None:
    """The registered model's description (its policy's), when it changed."""
    if not text:
        return
    mlflow_client = client()
    if (mlflow_client.get_registered_model(name).description or "") != text:
        mlflow_client.update_registered_model(name, description=text)


def link_gate_report(
    mv: VersionInfo, passed: bool, target: str, path: str, when: str, run_id: str = ""
) -> None:
    """Add a link to a gate report (an artifact of the version's run, or of ``run_id``:
    the audit record's copy) to the version's description."""
    holder = run_id or mv.run_id
    if not holder:
        return
    href = run_link(holder, run_experiment(holder), path)
    verdict = "PASS" if passed else "FAIL"
    line = f"- [{target} gate report: {verdict} ({when})]({href})"
    mlflow_client = client()
    current = (mlflow_client.get_model_version(mv.name, mv.version).description or "").rstrip()
    if REPORTS_HEADING not in current:
        current = f"{current}\n\n{REPORTS_HEADING}" if current else REPORTS_HEADING
    mlflow_client.update_model_version(mv.name, mv.version, description=f"{current}\n{line}")
