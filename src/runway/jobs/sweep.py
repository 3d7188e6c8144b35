"""Optuna sweeps around ``train``: one parent run, one nested child run per trial.

Trials (:mod:`runway.jobs.trial`) cross-validate fold by fold
(:func:`runway.core.training.evaluate.cross_validate`) and report each fold so the median pruner can stop weak ones early; each
trial's child run gets its params, per-fold and mean metrics, state and
duration in a handful of store calls, never a model. The best trial is refitted
once and logged like a training run; registering it is the caller's step
(:mod:`runway.jobs.register`).

The study lives in an Optuna storage (a journal file by default, any RDB URL from
settings), so ``--resume`` keeps every finished trial and reuses the parent run,
and ``--workers N`` processes (or other machines) share one study.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from dataclasses import astuple, dataclass, field
from typing import Any

import optuna

from runway.core.documents import Document, Params
from runway.core.threads import limit, thread_env, threads_for
from runway.core.training.data import Dataset, Split, load_dataset, prepare
from runway.core.training.pipeline import build_pipeline
from runway.core.training.spec import ExperimentSpec, spec_from_dict
from runway.errors import ExitCode, SweepError
from runway.jobs import study as studies
from runway.jobs import workers as pool
from runway.jobs.interrupt import quiet_interrupted_trials, terminable
from runway.jobs.study import PARENT_ATTR, params_of, sweep_of
from runway.jobs.sweep_parent import (
    ESTIMATOR_TAG,
    SweepContext,
    describe,
    estimator_tag,
    log_inputs,
    refit,
    summarise,
)
from runway.jobs.train import pin_view, run_tags
from runway.jobs.trial import objective
from runway.settings import Settings, get_settings
from runway.store import tracking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: the study, the parent run, and the refitted best model."""

    study_name: str
    parent_run_id: str
    experiment_id: str
    best_trial: int
    best_value: float
    best_params: Params
    estimator: str
    model_uri: str
    model_name: str
    spec_hash: str
    data_digest: str
    trials: dict[str, int] = field(default_factory=dict)
    holdout: dict[str, float] = field(default_factory=dict)
    optimize_seconds: float = 0.0


def check_space(spec: ExperimentSpec, split: Split) -> None:
    """Refuse ``preprocess__*`` names the built pipeline does not have (needs the columns)."""
    sweep = sweep_of(spec)
    known = build_pipeline(spec, **split.columns_by_kind()).get_params(deep=True)
    for key in sweep.space:
        if key.startswith("preprocess__") and key not in known:
            candidates = [k for k in known if k.startswith("preprocess__")]
            raise SweepError(
                f"sweep.space.{key}: unknown field; preprocess params are: {', '.join(candidates)}"
            )


# --- workers ------------------------------------------------------------------------


def _worker_main(
    spec_doc: Document,
    ctx_fields: dict[str, Any],
    n_trials: int,
    timeout: float | None,
    tracking_uri: str,
    threads: int = 1,
    worker: int | str = 1,
) -> None:
    """A sweep worker process: its own data split, storage handle, MLflow configuration and
    sampler seed (``worker``: :func:`runway.jobs.workers.seed`)."""
    os.environ.update(thread_env(threads))  # before OpenMP's first use reads it
    quiet_optuna()
    quiet_interrupted_trials()
    tracking.configure_uri(tracking_uri)
    spec = spec_from_dict(spec_doc)
    split = prepare(spec, load_dataset(spec.data))
    heartbeat = ctx_fields.pop("heartbeat")
    ctx = SweepContext(
        spec,
        split,
        **ctx_fields,
        threads=threads,
        heartbeat=studies.Heartbeat(*heartbeat) if heartbeat else None,
    )
    study = studies.load_study(
        spec,
        studies.open_storage(ctx.storage_url, ctx.heartbeat),
        ctx.study_name,
        pool.seed(spec, worker, ctx.start),
    )
    _freeze_heap()
    total = studies.target(study, sweep_of(spec).trials)
    try:
        with terminable(), limit(threads):
            pool.run_share(study, objective(ctx), n_trials, timeout, total)
    except KeyboardInterrupt:  # its trial's run is KILLED; the owner says what happened
        sys.exit(ExitCode.INTERRUPTED)


def _freeze_heap() -> None:
    """Move what is alive now (modules, MLflow, SQLAlchemy) out of the collector's sight.

    Each trial allocates many short-lived objects; without this every full
    collection re-walks the tens of thousands of long-lived objects the tracking
    stack imported, time that every trial pays.
    """
    gc.collect()
    gc.freeze()


def _optimize(ctx: SweepContext, study: optuna.Study, n_workers: int, owner: bool = True) -> None:
    """Run the remaining trials: this process takes the first share, N-1 spawned workers the
    rest; the owner then runs what dead workers left and waits for other machines."""
    sweep = sweep_of(ctx.spec)
    total = studies.target(study, sweep.trials)
    done = studies.counted(study)
    remaining = max(total - done, 0)
    progress = studies.Progress(total, done, ctx.spec.primary_metric.name)
    log.info(
        "study %r: %d of %d trials to run on %d worker(s)%s",
        ctx.study_name,
        remaining,
        total,
        n_workers,
        "" if owner else " (joined)",
    )
    quiet_optuna()
    quiet_interrupted_trials()
    # A spawned worker pays seconds of imports, so N workers means N-1 new processes.
    shares = [remaining // n_workers + (i < remaining % n_workers) for i in range(n_workers)]
    jobs = _worker_jobs(ctx, [s for s in shares[1:] if s], owner)
    procs = pool.spawn(_worker_main, jobs)
    try:
        for proc in procs:
            proc.start()
        with limit(ctx.threads):  # this process is a worker too: the cores are shared
            pool.run_share(
                study,
                objective(ctx),
                shares[0],
                sweep.timeout,
                total,
                [lambda s, t: progress.update(s)],
            )
            pool.wait(procs, lambda: progress.update(study))
            if owner:
                pool.drain(
                    study, objective(ctx), total, sweep.timeout, lambda: progress.update(study)
                )
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
        progress.update(study)
        progress.close()


def _worker_jobs(ctx: SweepContext, shares: list[int], owner: bool) -> list[tuple[Any, ...]]:
    """The arguments of one spawned worker per share of trials (worker n: its seed's identity)."""
    fields = ("experiment_id", "parent_run_id", "study_name", "storage_url", "start", "outage_wait")
    ctx_fields: dict[str, Any] = {k: getattr(ctx, k) for k in fields}
    ctx_fields["heartbeat"] = astuple(ctx.heartbeat) if ctx.heartbeat else None
    spec_doc = ctx.spec.model_dump(mode="json")
    timeout = sweep_of(ctx.spec).timeout
    uri = tracking.tracking_uri()
    return [
        (
            spec_doc,
            dict(ctx_fields),
            share,
            timeout,
            uri,
            ctx.threads,
            n if owner else pool.joined(n),
        )
        for n, share in enumerate(shares, start=1)
    ]


def _fail_stale(study: optuna.Study, parent_id: str) -> None:
    """Trials a killed sweep left RUNNING become FAIL (with heartbeats: only those whose
    worker stopped beating, queued again), their child runs KILLED.

    Child runs are found by parent and trial number, not by the run id the trial
    records: a sweep killed between creating a trial's run and recording its id
    leaves a run the trial does not name.
    """
    numbers = studies.fail_running(study)
    if numbers:
        log.warning(
            "marked %d interrupted trial(s) as FAIL: %s", len(numbers), ", ".join(map(str, numbers))
        )
    pool.close_lost_runs(study, parent_id)


def quiet_optuna() -> None:
    """Optuna's INFO lines (coloured, its own handler) only with ``-v``, through runway's log."""
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def heartbeat(settings: Settings, storage_url: str) -> studies.Heartbeat | None:
    """The heartbeat settings every worker of an RDB study uses (none for a journal file)."""
    if "://" not in storage_url:
        return None
    return studies.Heartbeat(settings.sweep_heartbeat, settings.sweep_grace, settings.sweep_retries)


# --- the sweep -------------------------------------------------------------------------


@terminable()  # SIGTERM: the parent and the running trials' runs end KILLED
def sweep(
    spec: ExperimentSpec,
    *,
    settings: Settings | None = None,
    spec_path: str | None = None,
    workers: int = 1,
    resume: bool = False,
    study_name: str | None = None,
    storage: str | None = None,
) -> SweepResult:
    """Run (or resume) a study and refit its best trial into the parent run.

    Raises:
        SweepError: bad space, storage that cannot be opened, an existing study
            without ``resume``, or no completed trial at the end.
    """
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    settings = settings or get_settings()
    sweep_of(spec)
    quiet_optuna()  # before the study is opened: "A new study created" is chatter
    dataset = load_dataset(spec.data)
    split = prepare(spec, dataset)
    check_space(spec, split)
    storage_url = storage or settings.optuna_storage
    name = study_name or studies.default_study_name(spec)
    study, start = _open(spec, storage_url, beat := heartbeat(settings, storage_url), name, resume)
    experiment_id = tracking.ensure_experiment(spec.experiment, settings)
    tracking.describe_experiment(experiment_id, spec.description)
    pin_view(spec, experiment_id, studies.searched_params(spec))
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if resume and parent_id:
        _fail_stale(study, parent_id)
        log.info("resuming study %r (%s) in parent run %s", name, studies.counts(study), parent_id)
    tags = {
        **run_tags(spec, dataset, spec_path),
        **{"runway.sweep": "true", "optuna.study": name, ESTIMATOR_TAG: estimator_tag(spec)},
        "optuna.storage": studies.redact(storage_url),
    }
    with tracking.run(experiment_id, f"sweep-{name}", tags, run_id=parent_id) as parent:
        # Under `mlflow run` the parent is the project's run, in its experiment.
        where = (parent.info.experiment_id, parent.info.run_id, name, storage_url)
        threads = threads_for("sweep", settings.threads, workers)
        ctx = SweepContext(spec, split, *where, threads, beat, start, settings.sweep_outage_wait)
        study.set_user_attr(PARENT_ATTR, ctx.parent_run_id)
        if not resume or not study.user_attrs.get("logged_spec"):
            log_inputs(ctx, dataset, spec_path, workers)
            study.set_user_attr("logged_spec", True)
        started = time.perf_counter()
        _freeze_heap()
        _optimize(ctx, study, workers)
        _close_lost(study, ctx.parent_run_id)
        result = _finish(ctx, study, dataset, time.perf_counter() - started)
    return result


def _close_lost(study: optuna.Study, parent_id: str) -> None:
    """Runs of trials whose worker died (their retries ran) end KILLED, and say so."""
    lost = pool.close_lost_runs(study, parent_id)
    if lost:
        log.warning("trial(s) %s lost their worker and ran again", ", ".join(lost))


def _open(
    spec: ExperimentSpec,
    storage_url: str,
    beat: studies.Heartbeat | None,
    name: str,
    resume: bool,
) -> tuple[optuna.Study, int]:
    """The owner's study, with the number of trials it asks of every worker, and how many
    trials it holds already (a resumed owner must not replay its first draws: workers.seed)."""
    study = studies.open_study(
        spec, studies.open_storage(storage_url, beat), name, resume, storage_url
    )
    study.set_user_attr(studies.TARGET_ATTR, sweep_of(spec).trials)
    start = len(study.get_trials(deepcopy=False))
    studies.reseed(study, spec, pool.seed(spec, 0, start))
    return study, start


def _finish(
    ctx: SweepContext, study: optuna.Study, dataset: Dataset, seconds: float
) -> SweepResult:
    """Summarise the study on the parent run, refit its best trial, and say what came out."""
    best = summarise(ctx, study, seconds)
    estimator, params = params_of(ctx.spec, best)
    with limit(ctx.threads):  # the refit is a fit like any trial's: the same threads
        model_uri, holdout = refit(ctx, best.number, estimator, params)
    describe(ctx, study, best, estimator, holdout)
    return SweepResult(
        ctx.study_name,
        ctx.parent_run_id,
        ctx.experiment_id,
        best.number,
        float(best.value or 0.0),
        {"estimator": estimator, **params},
        estimator,
        model_uri,
        ctx.spec.registered_model_name,
        ctx.spec.spec_hash(),
        dataset.digest,
        trials=studies.counts(study),
        holdout=holdout,
        optimize_seconds=seconds,
    )
