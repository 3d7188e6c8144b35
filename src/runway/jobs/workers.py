"""Who runs a study's trials: this process, workers it spawns, and other machines.

Every worker stops once the study holds the trials its owner asked for
(:class:`~runway.jobs.study.StopAtTarget`), whoever ran them, so machines that
``--join`` add speed, not trials. On an RDB study with heartbeats a worker that
dies (``kill -9``, a lost machine) stops beating; after the grace period its
trial is marked FAIL and queued again with the same parameters, so no trial is
lost and none is counted twice. The study's owner waits for that
(:func:`drain`) before it refits the best trial.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import time
import zlib
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from runway.core.training.spec import ExperimentSpec
from runway.jobs import study as studies
from runway.store import tracking

log = logging.getLogger(__name__)

Objective = Callable[[optuna.Trial], float]


def run_share(
    study: optuna.Study,
    objective: Objective,
    n_trials: int | None,
    timeout: float | None,
    total: int,
    callbacks: list[Any] | None = None,
) -> None:
    """Run up to ``n_trials`` trials here, stopping early once the study has ``total``."""
    if studies.counted(study) >= total:
        return
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[studies.StopAtTarget(total), *(callbacks or [])],
        gc_after_trial=False,
    )


def seed(spec: ExperimentSpec, worker: int | str = 0, start: int = 0) -> int:
    """One worker's TPE seed: reproducible, and distinct per worker so none repeats another's
    parameters (equal seeds made 2 workers' 8 trials 4 distinct sets).

    The study's owner (worker 0) keeps the study's seed, its n-th spawned worker seed + n;
    a worker that joined from another machine (``worker``: :func:`joined`) seed + the
    identity's CRC-32. ``start`` is how many trials the study held when this sweep began:
    a resumed sweep (start > 0) mixes it in, since the seed it started with would draw
    the first trials' parameters again (its random start-up trials replayed trials 0-2
    as 3-5). The same study resumed at the same point still gets the same seeds.
    """
    offset = worker if isinstance(worker, int) else zlib.crc32(worker.encode())
    if start:
        offset = zlib.crc32(f"{offset}@{start}".encode())
    return (studies.sampler_seed(spec) + offset) % 2**32


def joined(n: int) -> str:
    """The identity of the n-th worker this process adds to another machine's study."""
    return f"join:{socket.gethostname()}:{os.getpid()}:{n}"


def spawn(
    target: Callable[..., None], jobs: list[tuple[Any, ...]]
) -> list[multiprocessing.process.BaseProcess]:
    """Spawned (not started) worker processes, one per argument tuple."""
    context = multiprocessing.get_context("spawn")
    return [
        context.Process(target=target, args=args, name=f"runway-sweep-worker-{i}")
        for i, args in enumerate(jobs, start=1)
    ]


def wait(procs: list[multiprocessing.process.BaseProcess], tick: Callable[[], None]) -> None:
    """Wait for ``procs``, calling ``tick`` (progress) while they run."""
    while any(p.is_alive() for p in procs):
        time.sleep(0.5)
        tick()
    for proc in procs:
        proc.join()
    failed = [f"{p.name}={p.exitcode}" for p in procs if p.exitcode]
    if failed:
        log.warning("%d worker(s) exited with errors: %s", len(failed), ", ".join(failed))


def drain(
    study: optuna.Study,
    objective: Objective,
    total: int,
    timeout: float | None,
    tick: Callable[[], None],
) -> None:
    """The owner's last step: run what is queued or missing, and wait for live workers.

    Other machines' running trials are waited for only where heartbeats tell a
    live worker from a dead one; a dead worker's trial is retried here.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    beats = studies.has_heartbeats(study)
    while deadline is None or time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials) if beats else 0
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        done = studies.counted(study)
        if done >= total and not running and not waiting:
            return
        if waiting or done + running < total:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
            tick()
            continue
        log.info("waiting for %d trial(s) running on other workers", running)
        time.sleep(min(float(studies.heartbeat_interval(study) or 1), 5.0))
        studies.reap_stale(study)
    log.warning("sweep timeout reached while waiting for other workers' trials")


def close_lost_runs(study: optuna.Study, parent_id: str) -> list[str]:
    """The child runs of failed trials still RUNNING (their worker died) become KILLED.

    Runs are found by parent and trial number, not by the run id the trial
    records: a worker killed between creating a trial's run and recording its
    id leaves a run the trial does not name. Returns the trial numbers.
    """
    failed = {str(t.number) for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL}
    closed: list[str] = []
    if not failed:
        return closed
    for run_id, tags in tracking.child_runs(parent_id, status="RUNNING"):
        number = tags.get("optuna.trial_number")
        if number in failed:
            tracking.set_run_tag(run_id, "optuna.trial_state", "FAIL (interrupted)")
            tracking.terminate(run_id, "KILLED")
            closed.append(number)
    return sorted(closed, key=int)
