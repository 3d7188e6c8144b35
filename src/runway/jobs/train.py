"""One spec -> one MLflow run -> a :class:`TrainResult`.

Everything that can be checked without a run (the spec, the data file, the
columns, the classes) is checked before the run starts, so bad input leaves no
run behind; anything failing later marks the run FAILED.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from runway import __version__
from runway.core.columns.contract import infer_contract, signature_columns
from runway.core.columns.kinds import KINDS
from runway.core.columns.profile import infer_profile, prediction_profile
from runway.core.threads import limit, threads_for
from runway.core.training.data import Dataset, Split, frame_digest, load_dataset, prepare
from runway.core.training.evaluate import cross_validate, holdout_metrics
from runway.core.training.pipeline import build_pipeline, inference_ready, loggable_params
from runway.core.training.plots import make_plots
from runway.core.training.spec import SPEC_ARTIFACT, ExperimentSpec
from runway.jobs.interrupt import terminable
from runway.settings import Settings, get_settings
from runway.store import models, tracking, views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced, and where to find it."""

    run_id: str
    experiment_id: str
    experiment_name: str
    model_uri: str
    primary_metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    spec_hash: str = ""
    url: str = ""  # the run's page in the MLflow UI
    runs_url: str = ""  # the experiment's runs table

    @property
    def primary_value(self) -> float:
        """The holdout value of the spec's primary metric."""
        return self.metrics[f"holdout_{self.primary_metric}"]


def run_tags(spec: ExperimentSpec, dataset: Dataset, spec_path: str | None) -> dict[str, str]:
    """What every model run is tagged with: spec hash, commit, task, estimator, data digest."""
    commit, dirty = tracking.git_commit()
    tags = {
        **spec.tags,
        "spec_hash": spec.spec_hash(),
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        "runway.version": __version__,
        "runway.task": spec.task,
        "runway.estimator": spec.estimator.name,
        "runway.primary_metric": spec.primary_metric.name,
        "runway.registered_model_name": spec.registered_model_name,
        "data_digest": dataset.digest,
    }
    if spec_path:
        tags["runway.spec_path"] = spec_path
    return tags


@terminable()  # SIGTERM ends the run KILLED, as Ctrl-C does
def train(
    spec: ExperimentSpec,
    *,
    spec_path: str | None = None,
    run_name: str | None = None,
    settings: Settings | None = None,
    params: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> TrainResult:
    """Train, evaluate and log one pipeline as one MLflow run (in the configured store).

    ``params`` (``step__param`` names) are set on the spec's pipeline before it is
    fitted; names the pipeline does not have, and values equal to the spec's as
    text, are left (a retrain's champion may have had other columns).

    Raises:
        DataError: the data cannot be used as the spec describes (no run is created).
        TrackingError: the tracking store cannot be used (no run is created).
    """
    settings = settings or get_settings()
    started = time.perf_counter()
    log.info("loading data from %s", spec.data.source)
    dataset = load_dataset(spec.data)
    split = prepare(spec, dataset)
    describe(split)
    pipeline = build_pipeline(spec, **split.columns_by_kind())
    if params:
        known = pipeline.get_params(deep=True)
        # As logged, a param is text: set only those that differ from the spec's ("nan" stays NaN).
        pipeline.set_params(
            **{k: v for k, v in params.items() if k in known and str(known[k]) != str(v)}
        )
    experiment_id = _open_experiment(spec, settings)

    run_name = run_name or training_run_name(spec, spec_path, overrides)
    with tracking.run(experiment_id, run_name, run_tags(spec, dataset, spec_path)) as active:
        run_id = active.info.run_id
        log.info("run %s in experiment %r", run_id, spec.experiment)
        log_spec(spec, spec_path)
        kept = [f"model__{k}" for k in spec.estimator.params] + list(params or {})
        tracking.log_params({**split_params(spec), **loggable_params(pipeline, kept)})
        log_lineage(spec, dataset, split)

        metrics, fitted = _evaluate_and_fit(spec, pipeline, split, settings)
        tracking.log_metrics(metrics)

        model_uri = log_evaluated_model(spec, split, fitted)
        tracking.log_metrics({"train_seconds": time.perf_counter() - started})

    return TrainResult(
        run_id=run_id,
        experiment_id=active.info.experiment_id,
        experiment_name=spec.experiment,
        model_uri=model_uri,
        primary_metric=spec.primary_metric.name,
        metrics=metrics,
        spec_hash=spec.spec_hash(),
        url=tracking.run_url(run_id, active.info.experiment_id, settings.ui_url),
        runs_url=tracking.experiment_url(active.info.experiment_id, settings.ui_url),
    )


def _open_experiment(spec: ExperimentSpec, settings: Settings) -> str:
    """The spec's experiment, described, its runs table opening on what the spec compares."""
    experiment_id = tracking.ensure_experiment(spec.experiment, settings)
    tracking.describe_experiment(experiment_id, spec.description)
    pin_view(spec, experiment_id, [f"model__{k}" for k in spec.estimator.params])
    return experiment_id


def _evaluate_and_fit(
    spec: ExperimentSpec, pipeline: Pipeline, split: Split, settings: Settings
) -> tuple[dict[str, float], Pipeline]:
    """Cross-validate, fit on the training split and score the holdout, threads pinned.

    ``RUNWAY_THREADS``, else the idle cores (:func:`runway.core.threads.threads_for`):
    unpinned, an HGB fit ran ~40x slower on a busy host.
    """
    threads = threads_for("train", settings.threads)
    tracking.set_tags({"runway.threads": str(threads)})
    log.info(
        "cross-validating %s over %d folds (%d BLAS/OpenMP thread(s))",
        *(spec.estimator.name, spec.split.cv_folds, threads),
    )
    with limit(threads):
        cv = cross_validate(spec, pipeline, split.X_train, split.y_train, pos_label=split.pos_label)
        tracking.log_fold_metrics(cv.fold_series())
        metrics = cv.summary()
        log.info("fitting on the training split and scoring the holdout")
        fitted = pipeline.fit(split.X_train, split.y_train)
        metrics.update(
            holdout_metrics(
                spec, fitted, split.X_holdout, split.y_holdout, pos_label=split.pos_label
            )
        )
    return metrics, fitted


def describe(split: Split) -> None:
    """Log the split's size and feature kinds, and warn about what ``prepare`` noticed."""
    kinds = ", ".join(f"{len(split.kind(k))} {k}" for k in KINDS if split.kind(k))
    log.info(
        "%d training rows, %d holdout rows; features: %s",
        *(len(split.X_train), len(split.X_holdout), kinds),
    )
    for note in split.notes:
        log.warning("%s", note)


def split_params(spec: ExperimentSpec) -> dict[str, float | int]:
    """The split settings as run params (``split.holdout``, ``split.cv_folds``, ``split.seed``)."""
    return {
        "split.holdout": spec.split.holdout,
        "split.cv_folds": spec.split.cv_folds,
        "split.seed": spec.split.seed,
    }


def log_spec(spec: ExperimentSpec, spec_path: str | None) -> None:
    """The resolved spec, and the file as written, as artifacts of the active run."""
    tracking.log_text(spec.to_yaml(), SPEC_ARTIFACT)
    if spec_path and Path(spec_path).is_file():
        tracking.log_artifact(spec_path, "spec/original")


def log_evaluated_model(spec: ExperimentSpec, split: Split, fitted: Pipeline) -> str:
    """Log what every model run carries into the active run; return the model URI.

    The contract, the reference profile, the plots and the model itself: shared by
    ``train`` and the refit of a sweep's best trial.
    """
    target = split.target.info() if split.target is not None else None
    contract = infer_contract(split.X_train, split.features, split.source_dtypes, target)
    tracking.log_dict(contract.to_json_dict(), tracking.CONTRACT_ARTIFACT)
    predictions = prediction_profile(fitted, split.X_holdout)
    profile = infer_profile(split.X_train, split.features, predictions)
    tracking.log_dict(profile.to_json_dict(), tracking.PROFILE_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        plots = make_plots(spec, fitted, split.X_holdout, split.y_holdout, Path(tmp), split.target)
        for png in plots:
            tracking.log_artifact(png, "plots")
    log.info("logging the model")
    return models.log_sklearn_model(
        inference_ready(fitted), split.X_train, inputs=signature_columns(contract)
    )


def log_lineage(spec: ExperimentSpec, dataset: Dataset, split: Split) -> None:
    """The training and holdout rows as dataset inputs of the active run (source, digest)."""
    target = spec.data.target
    for context, X, y in (
        ("training", split.X_train, split.y_train),
        ("holdout", split.X_holdout, split.y_holdout),
    ):
        frame = X.assign(**{target: y.to_numpy()})
        tracking.log_dataset(
            frame,
            source=dataset.source,
            name=f"{dataset.name}-{context}",
            digest=frame_digest(frame),
            context=context,
            targets=target,
        )


def training_run_name(
    spec: ExperimentSpec, spec_path: str | None, overrides: Sequence[str] = ()
) -> str:
    """``<spec> · <estimator> · key=value``: what the run is and what this one changed
    (the ``--set`` overrides), instead of MLflow's random ``painted-elk-234``."""
    stem = Path(spec_path).stem if spec_path else spec.experiment
    return " · ".join([stem, spec.estimator.name, *overrides])[:250]


def pin_view(spec: ExperimentSpec, experiment_id: str, params: Sequence[str]) -> None:
    """The runs table opens on the primary metric and ``params``: few columns, so that
    they fit the screen (the grid draws only the columns in view; the other metrics
    are a click away)."""
    primary = spec.primary_metric.name
    columns = [views.column("metrics", m) for m in (f"holdout_{primary}", f"cv_{primary}")]
    columns += [views.column("params", p) for p in params]
    views.pin_runs_view(experiment_id, columns)
