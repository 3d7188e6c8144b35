"""What a sweep's parent run records, so that it reads like a training run in the MLflow UI.

Once per study: the spec, the data lineage, the split and the sweep settings.
At the end: trial counts, the best trial, the study plots; then the refit of
the best trial, recorded under the names a training run uses: its params
(``model__C``, not ``best.model__C``), its cross-validation summary
(``cv_<metric>``/``_std``, from the best trial's run), its holdout metrics,
the estimator tag, the model, and a description that links the best trial. So
a sweep parent and a training run sit side by side in Compare.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from runway.core.training.data import Dataset, Split
from runway.core.training.evaluate import cv_summary, cv_value, holdout_metrics
from runway.core.training.pipeline import loggable_params
from runway.core.training.spec import ExperimentSpec
from runway.errors import SweepError
from runway.jobs import study as studies
from runway.jobs import study_plots
from runway.jobs.study import build_trial_pipeline, sweep_of, trial_spec
from runway.jobs.train import log_evaluated_model, log_lineage, log_spec, split_params
from runway.store import tracking

log = logging.getLogger(__name__)

ESTIMATOR_TAG = "runway.estimator"


@dataclass(frozen=True)
class SweepContext:
    """One sweep: its spec and split, and where it records (what every worker needs)."""

    spec: ExperimentSpec
    split: Split
    experiment_id: str
    parent_run_id: str
    study_name: str
    storage_url: str
    threads: int = 1  # BLAS/OpenMP threads per worker process (runway.core.threads)
    heartbeat: studies.Heartbeat | None = None  # an RDB study's; the same for every worker
    start: int = 0  # trials the study held when this sweep began (workers.seed)
    outage_wait: float = 300.0  # seconds a trial waits for an absent tracking store


def estimator_tag(spec: ExperimentSpec) -> str:
    """The parent's estimator tag while trials run: the choices; the refit sets the winner."""
    choices = sweep_of(spec).estimators
    return " | ".join(choices) if choices else spec.estimator.name


def log_inputs(ctx: SweepContext, dataset: Dataset, spec_path: str | None, workers: int) -> None:
    """What the parent run records once per study: the spec, the data, split and sweep settings."""
    sweep = sweep_of(ctx.spec)
    log_spec(ctx.spec, spec_path)
    log_lineage(ctx.spec, dataset, ctx.split)
    tracking.log_params(
        {
            **split_params(ctx.spec),
            "sweep.trials": sweep.trials,
            "sweep.workers": workers,
            "sweep.pruning": sweep.pruning,
            "sweep.seed": studies.sampler_seed(ctx.spec),
        }
    )


def summarise(ctx: SweepContext, study: optuna.Study, seconds: float) -> optuna.trial.FrozenTrial:
    """Trial counts, the best trial (and its CV summary) and the study plots on the parent run."""
    metric = ctx.spec.primary_metric.name
    tracking.log_metrics({"optimize_seconds": seconds})
    counts = studies.counts(study)
    tracking.log_metrics({f"trials_{k.lower()}": v for k, v in counts.items()})
    best = studies.best(study)
    if best is None or best.value is None:
        raise SweepError(
            f"study {ctx.study_name!r} finished with no completed trial ({counts}); "
            "nothing registered. See the FAILED trial runs for errors"
        )
    best_run = best.user_attrs.get("mlflow_run_id", "")
    tracking.set_tags({"best_trial": str(best.number), "best_trial_run_id": best_run})
    if best_run:
        tracking.set_run_tag(best_run, "best_trial", "true")
        tracking.log_metrics(cv_summary(tracking.run_metrics(best_run)))
    tracking.log_metrics({f"best_cv_{metric}": best.value})
    tracking.log_dict(best.params, "study/best_params.json")
    with tempfile.TemporaryDirectory() as tmp:
        estimator = ctx.spec.estimator.name
        for png in study_plots.plots(study, Path(tmp), metric, estimator):
            tracking.log_artifact(png, "study")
    return best


def refit(
    ctx: SweepContext, number: int, estimator: str, params: dict[str, Any]
) -> tuple[str, dict[str, float]]:
    """Fit the best trial's pipeline on the training split, score the holdout, log the model."""
    split = ctx.split
    log.info("refitting trial %d (%s) on the training split", number, estimator)
    fitted = build_trial_pipeline(ctx.spec, split, estimator, params).fit(
        split.X_train, split.y_train
    )
    changed = tracking.log_params_once(loggable_params(fitted, params))
    if changed:
        # A resumed sweep found a better trial; MLflow keeps a param's first value.
        log.warning(
            "the parent run keeps the params of the earlier refit for %s; the new best "
            "trial's are in its child run and its logged model",
            ", ".join(changed),
        )
        tracking.set_tags({"runway.refit_params_changed": ",".join(changed)})
    tracking.set_tags({ESTIMATOR_TAG: estimator})
    holdout = holdout_metrics(
        trial_spec(ctx.spec, estimator),
        fitted,
        split.X_holdout,
        split.y_holdout,
        pos_label=split.pos_label,
    )
    tracking.log_metrics(holdout)
    return log_evaluated_model(ctx.spec, split, fitted), holdout


def describe(
    ctx: SweepContext,
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    estimator: str,
    holdout: dict[str, float],
) -> None:
    """The parent's description (Markdown on its run page): what won, with a link to it."""
    metric = ctx.spec.primary_metric.name
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(studies.counts(study).items()))
    best_run = best.user_attrs.get("mlflow_run_id", "")
    trial = f"trial {best.number}"
    if best_run:
        trial = f"[{trial}]({tracking.run_link(best_run, ctx.experiment_id)})"
    _, spread = cv_value(tracking.run_metrics(best_run), metric) if best_run else (None, None)
    cv = f"cv_{metric} {best.value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")
    score = holdout.get(f"holdout_{metric}")
    refitted = f": holdout_{metric} {score:.4f}" if score is not None else ""
    tracking.set_tags(
        {
            tracking.NOTE_TAG: (
                f"Sweep `{ctx.study_name}`: {counts}. The best, {trial}, a **{estimator}** "
                f"with {cv}, was refitted on the training split{refitted}.\n\n"
                "This run holds the refitted model with its params, CV summary and holdout "
                "metrics under the names a training run uses, so it compares with training "
                "runs; each trial is a child run."
            )
        }
    )
