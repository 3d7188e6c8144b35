"""Registering what training and sweeps produced: a new model version, stage None.

Kept apart from the jobs that make models, so a sweep never reaches into the
registry itself; the CLI (or any caller) trains or sweeps, then registers.
"""

from __future__ import annotations

from runway.jobs.sweep import SweepResult
from runway.jobs.train import TrainResult
from runway.store import registry, tracking
from runway.store.registry import VersionInfo


def register_training(result: TrainResult, model_name: str) -> VersionInfo:
    """Register a training run's model under ``model_name``."""
    return registry.register_version(
        model_name,
        result.model_uri,
        tags={"spec_hash": result.spec_hash, "source_run_id": result.run_id},
        description=f"Trained by run {result.run_id}.",
    )


def register_sweep(result: SweepResult) -> VersionInfo:
    """Register a sweep's refitted best model; its parent run records the version."""
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
        description=f"Best of sweep {result.study_name} (trial {result.best_trial}).",
    )
    tracking.set_run_tag(result.parent_run_id, "registered_model", version.name)
    tracking.set_run_tag(result.parent_run_id, "registered_version", version.version)
    return version
