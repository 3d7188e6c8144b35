"""Registering what training and sweeps produced: a new model version, stage None.

Kept apart from the jobs that make models, so a sweep never reaches into the
registry itself; the CLI (or any caller) trains or sweeps, then registers.
Descriptions are Markdown with relative links the MLflow UI follows: the
version's to its run, the sweep parent's to the version, and the registered
model's is its policy's ``description``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from runway.core.policy import load_policy
from runway.errors import SpecError
from runway.jobs.sweep import SweepResult
from runway.jobs.train import TrainResult
from runway.settings import get_settings
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
    path = Path(get_settings().registry_dir) / f"{model_name}.yaml"
    if not path.is_file():
        return
    try:
        registry.describe_model(model_name, load_policy(path).description)
    except SpecError as exc:  # promotion will refuse it with the same message
        log.warning("%s", exc)
