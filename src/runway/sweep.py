"""Optuna sweeps around ``train``: one parent run, one nested child run per trial.

Trials cross-validate and report each fold so the median pruner can stop weak
ones early; each trial's child run gets its params, per-fold and mean metrics,
state and duration in a handful of store calls, never a model. The best trial is
refitted once, logged like a training run, and registered (stage None).

The study lives in an Optuna storage (a journal file by default, any RDB URL from
settings), so ``--resume`` keeps every finished trial and reuses the parent run,
and ``--workers N`` processes (or other machines) share one study.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from runway import registry, tracking
from runway.catalog import METRICS
from runway.data import Split, load_dataset, prepare
from runway.errors import RunwayError
from runway.evaluate import cv_splitter, holdout_metrics
from runway.pipeline import build_pipeline, loggable_params
from runway.settings import Settings
from runway.spec import ExperimentSpec, ParamSpace, spec_from_dict
from runway.train import log_evaluated_model, log_lineage, log_spec, run_tags

log = logging.getLogger(__name__)

ESTIMATOR_CHOICE = "estimator"
PARENT_ATTR = "mlflow_parent_run_id"
SPEC_HASH_ATTR = "spec_hash"
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepError(RunwayError):
    """A sweep cannot start, or ended without a usable trial."""

    exit_code = 5


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced."""

    study_name: str
    parent_run_id: str
    experiment_id: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    model_uri: str
    registered_name: str
    registered_version: str
    trials: dict[str, int] = field(default_factory=dict)
    holdout: dict[str, float] = field(default_factory=dict)
    optimize_seconds: float = 0.0


# --- the search space ------------------------------------------------------------


def suggest(trial: optuna.Trial, spec: ExperimentSpec) -> tuple[str, dict[str, Any]]:
    """Sample the estimator name and its ``step__param`` values for one trial."""
    sweep = spec.sweep
    assert sweep is not None
    name = spec.estimator.name
    dims: dict[str, ParamSpace] = dict(sweep.space)
    if sweep.estimators:
        name = trial.suggest_categorical(ESTIMATOR_CHOICE, list(sweep.estimators))
        # Conditional: each estimator's params are distinct Optuna dimensions.
        dims.update(sweep.estimators[name])
    params: dict[str, Any] = {}
    for key, dim in dims.items():
        params[key] = _suggest_one(trial, _dimension_name(key, name, sweep.estimators), dim)
    return name, params


def _dimension_name(key: str, estimator: str, estimators: dict | None) -> str:
    if estimators and key.startswith("model__"):
        return f"{estimator}:{key}"
    return key


def _suggest_one(trial: optuna.Trial, name: str, dim: ParamSpace) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(name, list(dim.choices or ()))
    if dim.type == "int":
        return trial.suggest_int(
            name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log
        )
    return trial.suggest_float(name, float(dim.low), float(dim.high), step=dim.step, log=dim.log)


def trial_spec(spec: ExperimentSpec, estimator: str) -> ExperimentSpec:
    """The spec with the trial's estimator (its params come from the trial)."""
    if estimator == spec.estimator.name:
        return spec
    doc = spec.model_dump(mode="json")
    doc["estimator"] = {"name": estimator, "params": {}}
    return spec_from_dict(doc)


def build_trial_pipeline(
    spec: ExperimentSpec, split: Split, estimator: str, params: dict
) -> Pipeline:
    """The pipeline one trial evaluates."""
    pipeline = build_pipeline(trial_spec(spec, estimator), split.numeric, split.categorical)
    return pipeline.set_params(**params)


def check_space(spec: ExperimentSpec, split: Split) -> None:
    """Refuse ``preprocess__*`` names the built pipeline does not have (needs the columns)."""
    sweep = spec.sweep
    if sweep is None:
        raise SweepError("the spec has no sweep section; add sweep.space (see runway spec schema)")
    known = build_pipeline(spec, split.numeric, split.categorical).get_params(deep=True)
    for key in sweep.space:
        if key.startswith("preprocess__") and key not in known:
            candidates = [k for k in known if k.startswith("preprocess__")]
            raise SweepError(
                f"sweep.space.{key}: unknown field; preprocess params are: {', '.join(candidates)}"
            )


# --- one trial ----------------------------------------------------------------------


@dataclass
class _TrialContext:
    spec: ExperimentSpec
    split: Split
    experiment_id: str
    parent_run_id: str
    study_name: str


def evaluate_trial(
    spec: ExperimentSpec,
    split: Split,
    pipeline: Pipeline,
    report: Any = None,
) -> dict[str, list[float]]:
    """Cross-validate ``pipeline`` fold by fold; ``report(value, fold)`` after each fold.

    ``report`` may raise ``optuna.TrialPruned``; the folds scored so far are
    kept in the returned mapping's caller through the exception's ``folds``.
    """
    folds: dict[str, list[float]] = {m: [] for m in spec.metrics}
    primary = spec.primary_metric.name
    X, y = split.X_train, split.y_train
    for fold, (train_idx, valid_idx) in enumerate(cv_splitter(spec).split(X, y)):
        fitted = clone(pipeline).fit(X.iloc[train_idx], y.iloc[train_idx])
        X_valid, y_valid = X.iloc[valid_idx], y.iloc[valid_idx]
        for metric in spec.metrics:
            entry = METRICS[metric]
            folds[metric].append(
                float(get_scorer(entry.scorer)(fitted, X_valid, y_valid)) * entry.sign
            )
        if report is not None:
            report(float(np.mean(folds[primary])), fold, folds)
    return folds


class _Pruned(optuna.TrialPruned):
    def __init__(self, folds: dict[str, list[float]]):
        super().__init__()
        self.folds = folds


def _objective(ctx: _TrialContext) -> Any:
    client = mlflow.MlflowClient()

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        estimator, params = suggest(trial, ctx.spec)
        run = client.create_run(
            ctx.experiment_id,
            run_name=f"trial-{trial.number:03d}",
            tags={
                MLFLOW_PARENT_RUN_ID: ctx.parent_run_id,
                "optuna.study": ctx.study_name,
                "optuna.trial_number": str(trial.number),
                "runway.estimator": estimator,
            },
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        folds: dict[str, list[float]] = {}
        state, error = "FAILED", ""

        def report(value: float, fold: int, so_far: dict[str, list[float]]) -> None:
            trial.report(value, fold)
            if trial.should_prune():
                raise _Pruned(so_far)

        try:
            pipeline = build_trial_pipeline(ctx.spec, ctx.split, estimator, params)
            folds = evaluate_trial(ctx.spec, ctx.split, pipeline, report)
            state = "COMPLETE"
            return float(np.mean(folds[ctx.spec.primary_metric.name]))
        except _Pruned as pruned:
            folds, state = pruned.folds, "PRUNED"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _log_trial(
                client,
                run.info.run_id,
                trial.number,
                estimator,
                params,
                folds,
                state,
                error,
                time.perf_counter() - started,
            )

    return objective


def _log_trial(
    client: mlflow.MlflowClient,
    run_id: str,
    number: int,
    estimator: str,
    params: dict[str, Any],
    folds: dict[str, list[float]],
    state: str,
    error: str,
    seconds: float,
) -> None:
    """One batch and one status update per trial: logging must stay cheap."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"cv_{m}", v, now, step) for m, vs in folds.items() for step, v in enumerate(vs)
    ]
    for m, vs in folds.items():
        if vs:
            metrics += [
                Metric(f"cv_{m}_mean", float(np.mean(vs)), now, 0),
                Metric(f"cv_{m}_std", float(np.std(vs)), now, 0),
            ]
    metrics.append(Metric("trial_seconds", seconds, now, 0))
    tags = [RunTag("optuna.trial_state", state)]
    if error:
        tags.append(RunTag(tracking.ERROR_TAG, error[: tracking.MAX_TAG_CHARS]))
    logged = [Param(k, str(v)[:6000]) for k, v in {"estimator": estimator, **params}.items()]
    client.log_batch(run_id, metrics=metrics, params=logged, tags=tags)
    status = RunStatus.FAILED if state == "FAILED" else RunStatus.FINISHED
    client.set_terminated(run_id, RunStatus.to_string(status))
    log.debug("trial %d %s in %.1fs", number, state, seconds)


# --- storage, study, workers --------------------------------------------------------


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a journal file path or an RDB URL."""
    try:
        if "://" in url:
            return optuna.storages.RDBStorage(url, heartbeat_interval=None)
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except Exception as exc:  # whatever the driver raises, the URL is the problem
        message = f"optuna storage {_redact(url)!r} cannot be opened: {exc}"
        raise SweepError(message.splitlines()[0]) from exc


def default_study_name(spec: ExperimentSpec) -> str:
    """Same spec, same study: what ``--resume`` finds again.

    The trial count and time budget are left out of the hash, so a resumed sweep
    may ask for more trials or time than the first attempt.
    """
    doc = spec.model_dump(mode="json")
    doc["sweep"].pop("trials")
    doc["sweep"].pop("timeout")
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f"{spec.experiment}-{digest[:10]}"


def _sampler(spec: ExperimentSpec) -> optuna.samplers.BaseSampler:
    seed = spec.sweep.seed if spec.sweep and spec.sweep.seed is not None else spec.split.seed
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: ExperimentSpec) -> optuna.pruners.BasePruner:
    if spec.sweep and spec.sweep.pruning:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def _load_study(spec: ExperimentSpec, storage: Any, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=storage, sampler=_sampler(spec), pruner=_pruner(spec)
    )


def _worker_main(
    spec_doc: dict,
    storage_url: str,
    study_name: str,
    experiment_id: str,
    parent_run_id: str,
    n_trials: int,
    timeout: float | None,
    tracking_uri: str,
) -> None:
    """A sweep worker process: its own data split, storage handle and MLflow client."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri)
    spec = spec_from_dict(spec_doc)
    split = prepare(spec, load_dataset(spec.data))
    study = _load_study(spec, open_storage(storage_url), study_name)
    ctx = _TrialContext(spec, split, experiment_id, parent_run_id, study_name)
    _freeze_heap()
    study.optimize(
        _objective(ctx),
        n_trials=n_trials,
        timeout=timeout,
        catch=(Exception,),
        gc_after_trial=False,
    )


def _freeze_heap() -> None:
    """Move what is alive now (modules, MLflow, SQLAlchemy) out of the collector's sight.

    Each trial allocates many short-lived objects; without this every full
    collection re-walks the tens of thousands of long-lived objects the tracking
    stack imported, a few percent of each trial (measured in the benchmark).
    """
    gc.collect()
    gc.freeze()


def _fail_stale(study: optuna.Study, client: mlflow.MlflowClient, parent_id: str) -> int:
    """Trials left RUNNING by a killed sweep become FAIL, their child runs KILLED.

    Child runs are found by parent and trial number, not by the run id the trial
    records: a sweep killed between creating a trial's run and recording its id
    leaves a run the trial does not name.
    """
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    numbers = {str(t.number) for t in stale}
    if numbers:
        experiment_id = client.get_run(parent_id).info.experiment_id
        children = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'",
            max_results=10_000,
        )
        for run in children:
            if run.data.tags.get("optuna.trial_number") in numbers:
                client.set_tag(run.info.run_id, "optuna.trial_state", "FAIL (interrupted)")
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
    if stale:
        log.warning(
            "marked %d interrupted trial(s) as FAIL: %s",
            len(stale),
            ", ".join(str(t.number) for t in stale),
        )
    return len(stale)


def _counts(study: optuna.Study) -> dict[str, int]:
    counts = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] += 1
    return {k: v for k, v in counts.items() if v}


class _Progress:
    """Trials done, the current best value and its params: a bar on a terminal, lines otherwise."""

    def __init__(self, total: int, done: int, metric: str):
        self.total, self.metric, self.last = total, metric, done
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=done, unit="trial", file=sys.stderr, dynamic_ncols=True
            )

    def update(self, study: optuna.Study) -> None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED_STATES]
        done = len(trials)
        if done == self.last:
            return
        best = _best(study)
        summary = (
            f"best {self.metric}={best.value:.4f} (trial {best.number}) {best.params}"
            if best
            else "no completed trial yet"
        )
        if self.bar is not None:
            self.bar.update(done - self.last)
            self.bar.set_postfix_str(summary, refresh=True)
        else:
            latest = max(trials, key=lambda t: t.number)
            value = f"{latest.value:.4f}" if latest.value is not None else "-"
            log.info(
                "trial %d/%d done (#%d %s %s) | %s",
                done,
                self.total,
                latest.number,
                latest.state.name,
                value,
                summary,
            )
        self.last = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


# --- the sweep -------------------------------------------------------------------------


def sweep(
    spec: ExperimentSpec,
    *,
    spec_path: str | None = None,
    workers: int = 1,
    resume: bool = False,
    study_name: str | None = None,
    storage: str | None = None,
    settings: Settings | None = None,
) -> SweepResult:
    """Run (or resume) a study, refit the best trial and register its model.

    Raises:
        SweepError: bad space, storage that cannot be opened, an existing study
            without ``resume``, or no completed trial at the end.
    """
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    settings = tracking.configure(settings)
    if spec.sweep is None:
        raise SweepError("the spec has no sweep section; add sweep.space (see runway spec schema)")
    dataset = load_dataset(spec.data)
    split = prepare(spec, dataset)
    check_space(spec, split)
    storage_url = storage or settings.optuna_storage
    store = open_storage(storage_url)
    name = study_name or default_study_name(spec)
    study = _open_study(spec, store, name, resume, storage_url)
    client = mlflow.MlflowClient()
    experiment_id = tracking.ensure_experiment(spec.experiment, settings)

    parent_id = study.user_attrs.get(PARENT_ATTR)
    if resume and parent_id:
        _fail_stale(study, client, parent_id)
        log.info("resuming study %r (%s) in parent run %s", name, _counts(study), parent_id)
    tags = {
        **run_tags(spec, dataset, spec_path),
        "runway.sweep": "true",
        "optuna.study": name,
        "optuna.storage": _redact(storage_url),
    }
    with tracking.run(experiment_id, f"sweep-{name}", tags, run_id=parent_id) as parent:
        parent_id = parent.info.run_id
        # Under `mlflow run` the parent is the project's run, in its experiment.
        experiment_id = parent.info.experiment_id
        study.set_user_attr(PARENT_ATTR, parent_id)
        if not resume or not study.user_attrs.get("logged_spec"):
            log_spec(spec, spec_path)
            log_lineage(spec, dataset, split)
            mlflow.log_params(
                {
                    "sweep.trials": spec.sweep.trials,
                    "sweep.workers": workers,
                    "sweep.pruning": spec.sweep.pruning,
                    "sweep.seed": _sampler_seed(spec),
                }
            )
            study.set_user_attr("logged_spec", True)
        optimize_started = time.perf_counter()
        _freeze_heap()
        _optimize(
            spec,
            split,
            study,
            store,
            storage_url,
            name,
            experiment_id,
            parent_id,
            workers,
            settings.tracking_uri,
        )
        optimize_seconds = time.perf_counter() - optimize_started
        mlflow.log_metric("optimize_seconds", optimize_seconds)
        counts = _counts(study)
        mlflow.log_metrics({f"trials_{k.lower()}": v for k, v in counts.items()})
        best = _best(study)
        if best is None:
            raise SweepError(
                f"study {name!r} finished with no completed trial ({counts}); "
                "nothing registered. See the FAILED trial runs for errors"
            )
        mlflow.set_tags(
            {
                "best_trial": str(best.number),
                "best_trial_run_id": best.user_attrs.get("mlflow_run_id", ""),
            }
        )
        client.set_tag(best.user_attrs["mlflow_run_id"], "best_trial", "true")
        mlflow.log_metric(f"best_cv_{spec.primary_metric.name}", best.value)
        mlflow.log_dict(best.params, "study/best_params.json")
        _log_study_plots(study)

        estimator, params = _params_of(spec, best)
        log.info("refitting trial %d (%s) on the training split", best.number, estimator)
        fitted = build_trial_pipeline(spec, split, estimator, params).fit(
            split.X_train, split.y_train
        )
        tracking.log_params({f"best.{k}": v for k, v in loggable_params(fitted).items()})
        holdout = holdout_metrics(
            trial_spec(spec, estimator), fitted, split.X_holdout, split.y_holdout
        )
        mlflow.log_metrics(holdout)
        model_uri = log_evaluated_model(spec, split, fitted)
        version = registry.register_version(
            spec.registered_model_name,
            model_uri,
            run_id=parent_id,
            tags={
                "sweep_parent_run_id": parent_id,
                "trial_number": str(best.number),
                "spec_hash": spec.spec_hash(),
                "data_digest": dataset.digest,
                "optuna_study": name,
                "estimator": estimator,
            },
            description=f"Best of sweep {name} (trial {best.number}).",
        )
        mlflow.set_tags({"registered_model": version.name, "registered_version": version.version})

    return SweepResult(
        study_name=name,
        parent_run_id=parent_id,
        experiment_id=experiment_id,
        best_trial=best.number,
        best_value=float(best.value),
        best_params={"estimator": estimator, **params},
        model_uri=model_uri,
        registered_name=version.name,
        registered_version=version.version,
        trials=_counts(study),
        holdout=holdout,
        optimize_seconds=optimize_seconds,
    )


def _sampler_seed(spec: ExperimentSpec) -> int:
    return spec.sweep.seed if spec.sweep and spec.sweep.seed is not None else spec.split.seed


def _redact(url: str) -> str:
    """A storage URL without its password, for tags and messages."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def _open_study(
    spec: ExperimentSpec, store: Any, name: str, resume: bool, url: str
) -> optuna.Study:
    direction = spec.primary_metric.direction
    try:
        existing = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    except Exception as exc:  # a storage that opened lazily fails here
        raise SweepError(
            f"optuna storage {_redact(url)!r} cannot be read: {exc}".splitlines()[0]
        ) from exc
    if name in existing and not resume:
        done = existing[name].n_trials
        raise SweepError(
            f"study {name!r} already exists in {_redact(url)} ({done} trials); "
            "pass --resume to continue it or --study-name NAME to start another"
        )
    if resume and name not in existing:
        log.warning("no study %r in %s yet: starting it", name, _redact(url))
    study = optuna.create_study(
        study_name=name,
        storage=store,
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        direction=direction,
        load_if_exists=True,
    )
    study.set_user_attr(SPEC_HASH_ATTR, spec.spec_hash())
    return study


def _optimize(
    spec: ExperimentSpec,
    split: Split,
    study: optuna.Study,
    store: Any,
    storage_url: str,
    name: str,
    experiment_id: str,
    parent_id: str,
    workers: int,
    tracking_uri: str,
) -> None:
    assert spec.sweep is not None
    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state in FINISHED_STATES)
    remaining = max(spec.sweep.trials - finished, 0)
    progress = _Progress(spec.sweep.trials, finished, spec.primary_metric.name)
    log.info(
        "study %r: %d of %d trials to run on %d worker(s)",
        name,
        remaining,
        spec.sweep.trials,
        workers,
    )
    if remaining == 0:
        progress.close()
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # This process runs the first share itself: a spawned worker pays seconds of
    # imports, so N workers means N-1 new processes.
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(
            target=_worker_main,
            args=(
                spec.model_dump(mode="json"),
                storage_url,
                name,
                experiment_id,
                parent_id,
                share,
                spec.sweep.timeout,
                tracking_uri,
            ),
            name=f"runway-sweep-worker-{i}",
        )
        for i, share in enumerate(shares[1:], start=1)
        if share
    ]
    try:
        for proc in procs:
            proc.start()
        study.optimize(
            _objective(_TrialContext(spec, split, experiment_id, parent_id, name)),
            n_trials=shares[0],
            timeout=spec.sweep.timeout,
            catch=(Exception,),
            callbacks=[lambda s, t: progress.update(s)],
            gc_after_trial=False,
        )
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            progress.update(study)
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
        progress.update(study)
        progress.close()
    failed = [p for p in procs if p.exitcode]
    if failed:
        log.warning(
            "%d worker(s) exited with errors: %s",
            len(failed),
            ", ".join(f"{p.name}={p.exitcode}" for p in failed),
        )


def _params_of(spec: ExperimentSpec, trial: optuna.trial.FrozenTrial) -> tuple[str, dict[str, Any]]:
    """A finished trial's estimator and ``step__param`` values (undoing conditional names)."""
    params = dict(trial.params)
    estimator = (
        params.pop(ESTIMATOR_CHOICE, spec.estimator.name)
        if spec.sweep.estimators
        else spec.estimator.name
    )
    return estimator, {k.split(":", 1)[1] if ":" in k else k: v for k, v in params.items()}


def _log_study_plots(study: optuna.Study) -> None:
    """Optimization history, parameter importances and parallel coordinates as PNGs."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
        "parallel_coordinate.png": ovm.plot_parallel_coordinate,
    }
    import warnings

    with tempfile.TemporaryDirectory() as tmp:
        for filename, plot in plots.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ax = plot(study)
                fig = ax.figure if hasattr(ax, "figure") else np.ravel(ax)[0].figure
                fig.set_size_inches(9, 5.5)
                fig.tight_layout()
                fig.savefig(Path(tmp) / filename, dpi=100)
                plt.close(fig)
                mlflow.log_artifact(str(Path(tmp) / filename), "study")
            except Exception as exc:  # e.g. importances need two completed trials
                log.warning("study plot %s skipped: %s", filename, exc)
                plt.close("all")
