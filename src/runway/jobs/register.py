"""Registering what training and sweeps produced: a new model version, stage None.

Kept apart from the jobs that make models, so a sweep never reaches into the
registry itself; the CLI (or any caller) trains or sweeps, then registers.
Descriptions are Markdown with relative links the MLflow UI follows: the
version's to its run, the sweep parent's to the version, and the registered
model's is its policy's ``description``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from runway.core.governance.policy import PromotionPolicy, policy_path, read_policy
from runway.errors import LightenRefused, SpecError
from runway.jobs.onnx import LightenResult, lighten
from runway.jobs.sweep import SweepResult
from runway.jobs.train import TrainResult
from runway.settings import Settings, get_settings
from runway.store import registry, tracking
from runway.store.registry import VersionInfo

log = logging.getLogger(__name__)


def register_training(result: TrainResult, model_name: str) -> VersionInfo:
    """Register a training run's model under ``model_name``."""
    link = tracking.run_link(result.run_id, result.experiment_id)
    version = registry.register_version(
        model_name,
        result.model_uri,
        tags={"spec_hash": result.spec_hash, "source_run_id": result.run_id},
        description=f"Trained by run [{result.run_id[:8]}]({link}) ({result.run_id}).",
    )
    describe_model(model_name)
    return version


def register_sweep(result: SweepResult) -> VersionInfo:
    """Register a sweep's refitted best model; its parent run records the version."""
    link = tracking.run_link(result.parent_run_id, result.experiment_id)
    version = registry.register_version(
        result.model_name,
        result.model_uri,
        tags={
            "sweep_parent_run_id": result.parent_run_id,
            "trial_number": str(result.best_trial),
            "spec_hash": result.spec_hash,
            "data_digest": result.data_digest,
            "optuna_study": result.study_name,
            "estimator": result.estimator,
        },
        description=f"Best of sweep [{result.study_name}]({link}) (trial {result.best_trial}, "
        f"{result.estimator}), refitted on the training split.",
    )
    describe_model(result.model_name)
    tracking.set_run_tag(result.parent_run_id, "registered_model", version.name)
    tracking.set_run_tag(result.parent_run_id, "registered_version", version.version)
    note = tracking.run_tags(result.parent_run_id).get(tracking.NOTE_TAG, "")
    page = f"#/models/{version.name}/versions/{version.version}"
    registered = f"Registered as [{version.name} version {version.version}]({page})."
    tracking.set_run_tag(result.parent_run_id, tracking.NOTE_TAG, f"{note}\n\n{registered}".strip())
    return version


def describe_model(model_name: str) -> None:
    """The registered model's description from its policy file, if it has one."""
    policy = _policy(model_name, get_settings())
    if policy is not None:
        registry.describe_model(model_name, policy.description)


@dataclass(frozen=True)
class PolicyLighten:
    """What the policy's ``onnx: {on_register: true}`` did for one new version."""

    twin: LightenResult | None = None
    refused: LightenRefused | None = None  # no faithful twin, and the policy does not require one


def lighten_if_asked(
    model: str, version: str, settings: Settings | None = None
) -> PolicyLighten | None:
    """Convert a newly registered version to ONNX when its policy asks; None when it does not.

    Registration has happened by then, so a refusal is returned rather than
    raised, unless the policy sets ``onnx.required``.

    Raises:
        LightenRefused: no faithful twin and the policy requires one (the version stays).
    """
    settings = settings or get_settings()
    policy = _policy(model, settings)
    if policy is None or not policy.onnx.on_register:
        return None
    try:
        return PolicyLighten(twin=lighten(model, version, settings))
    except LightenRefused as exc:
        if policy.onnx.required:
            raise LightenRefused(
                f"{exc}\n{model} v{version} stays registered; its policy's onnx.required "
                "makes a version without a twin a failure"
            ) from None
        log.warning("%s v%s has no ONNX version (the policy asks for one): %s", model, version, exc)
        return PolicyLighten(refused=exc)


def _policy(model: str, settings: Settings) -> PromotionPolicy | None:
    """``model``'s policy file, or None when it has none or it does not validate (warned)."""
    if not policy_path(model, settings.registry_dir).is_file():
        return None
    try:
        return read_policy(model, settings.registry_dir)
    except SpecError as exc:  # promotion will refuse it with the same message
        log.warning("%s", exc)
        return None
