"""One trial of a sweep: its child run, fold-by-fold cross-validation, and what it records.

Each trial reports its folds so the median pruner can stop weak ones early; its
child run gets params, per-fold and mean metrics, state and duration in a
handful of store calls, never a model. A trial that SIGTERM stops, or that the
tracking store stays away from (:mod:`runway.jobs.interrupt`), is marked
interrupted: it did not evaluate, so it is not counted and ``--resume`` runs it
again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna

from runway.core.documents import Params
from runway.core.training.evaluate import cross_validate, cv_metric, fold_metric
from runway.jobs import study as studies
from runway.jobs.interrupt import through_outages
from runway.jobs.study import build_trial_pipeline
from runway.jobs.sweep_parent import SweepContext
from runway.store import tracking
from runway.store.identity import user_tag

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial
INTERRUPTED = "FAIL (interrupted)"  # the state tag of a trial SIGTERM or an outage stopped


class _Pruned(optuna.TrialPruned):
    def __init__(self, folds: dict[str, list[float]]):
        super().__init__()
        self.folds = {m: list(v) for m, v in folds.items()}


def objective(ctx: SweepContext) -> Any:
    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        estimator, params = studies.suggest(trial, ctx.spec)
        with _interruptible(trial):
            run_id = _trial_run(ctx, trial, estimator)
        folds: dict[str, list[float]] = {}
        state, error = "FAILED", ""

        def report(value: float, fold: int, so_far: dict[str, list[float]]) -> None:
            trial.report(value, fold)
            if trial.should_prune():
                raise _Pruned(so_far)

        try:
            pipeline = build_trial_pipeline(ctx.spec, ctx.split, estimator, params)
            cv = cross_validate(
                ctx.spec,
                pipeline,
                ctx.split.X_train,
                ctx.split.y_train,
                report,
                pos_label=ctx.split.pos_label,
            )
            folds, state = cv.folds, "COMPLETE"
            return cv.mean(ctx.spec.primary_metric.name)
        except _Pruned as pruned:
            folds, state = pruned.folds, "PRUNED"
            raise
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: not an evaluation, --resume runs it again
            state = INTERRUPTED
            studies.mark_interrupted(trial.storage, trial._trial_id)
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            args = (run_id, {"estimator": estimator, **params}, folds, state, error)
            seconds = time.perf_counter() - started
            if state == INTERRUPTED:  # stopping: no waiting for an absent server, and the
                # interruption must go on (--resume kills a run this could not end)
                with contextlib.suppress(Exception):
                    log_trial(*args, seconds)
            else:
                with _interruptible(trial):
                    wait = ctx.outage_wait
                    through_outages(
                        lambda: log_trial(*args, seconds), f"trial {trial.number}", wait
                    )

    return objective


def trial_run_name(study: str, number: int, retried: int | None = None) -> str:
    """``<study> trial 7``: found by number in the table; a dead worker's trial run again
    under a new number says which one it resumes (its KILLED row is the same params)."""
    return f"{study} trial {number}" + (
        f" (resumed trial {retried})" if retried is not None else ""
    )


@contextlib.contextmanager
def _interruptible(trial: optuna.Trial) -> Iterator[None]:
    """A trial that SIGTERM or an outage stops here is marked interrupted: not counted."""
    try:
        yield
    except KeyboardInterrupt:
        studies.mark_interrupted(trial.storage, trial._trial_id)
        raise


def _trial_run(ctx: SweepContext, trial: optuna.Trial, estimator: str) -> str:
    """The trial's child run, created once the tracking store answers (it may be away)."""
    tags = {
        tracking.PARENT_TAG: ctx.parent_run_id,
        "optuna.study": ctx.study_name,
        "optuna.trial_number": str(trial.number),
        "runway.estimator": estimator,
        **user_tag(),
    }
    retried = trial.storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    name = trial_run_name(ctx.study_name, trial.number, retried)
    run_id = through_outages(
        lambda: tracking.create_run(ctx.experiment_id, name, tags),
        f"trial {trial.number}",
        ctx.outage_wait,
    )
    trial.set_user_attr("mlflow_run_id", run_id)
    trial.set_user_attr("runway.worker", WORKER)
    return run_id


def log_trial(
    run_id: str,
    params: Params,
    folds: dict[str, list[float]],
    state: str,
    error: str,
    seconds: float,
) -> None:
    """One batch and one status update per trial: logging must stay cheap."""
    metrics = [(fold_metric(m), v, step) for m, vs in folds.items() for step, v in enumerate(vs)]
    for m, vs in folds.items():
        if vs:
            metrics += [
                (cv_metric(m), float(np.mean(vs)), 0),
                (f"{cv_metric(m)}_std", float(np.std(vs)), 0),
            ]
    metrics.append(("trial_seconds", seconds, 0))
    tags = {"optuna.trial_state": state, **({tracking.ERROR_TAG: error} if error else {})}
    tracking.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    # A pruned trial was stopped, not finished: KILLED draws the UI's red icon, not
    # the green tick of a success; the tag tells pruned from failed (and filters).
    ended = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", INTERRUPTED: "KILLED"}
    tracking.terminate(run_id, ended.get(state, "FAILED"))
