"""Two machines, one sweep: 12 trials by two `runway sweep` processes against the team server.

The owner (`runway sweep SPEC`) and a second machine (`runway sweep SPEC --join`,
started as soon as the study exists) are separate processes, as on two
machines, each limited to one core (``RUNWAY_THREADS=1``) so that one 2-core box
stands for two 1-core machines; the same sweep with the owner alone is the
baseline. Measured from the study itself: the distinct parameter sets among the
finished trials (a repeat is work wasted) and the trial phase, from the first
trial's start to the last one's end (the joiner's start-up counts, the owner's
refit does not). Useful-trial speed = distinct sets per minute of trial phase.

The team stack is started by the code `runway team up` runs (runway.team.stack)
in a temporary RUNWAY_TEAM_DIR on free ports, with one author who has the
documented grants and database login, and stopped at the end.

    python benchmarks/team_sweep.py [--trials 12]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from runway.settings import get_settings
from runway.team import grants
from runway.team.config import TeamSettings
from runway.team.stack import Stack

MEMBER = "sweeper"
TARGET = 1.6


def bench_spec(trials: int, experiment: str) -> dict:
    """A RandomForest sweep whose trials take seconds (so start-up does not decide)."""
    return {
        "experiment": experiment,
        "model_name": f"{experiment}-model",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "RandomForestClassifier", "params": {}},
        "split": {"holdout": 0.2, "cv_folds": 5, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
        "sweep": {
            "trials": trials,
            "seed": 0,
            "pruning": False,
            "space": {
                "model__n_estimators": {"type": "int", "low": 300, "high": 700},
                "model__max_depth": {"type": "int", "low": 2, "high": 12},
                "model__min_samples_leaf": {"type": "int", "low": 1, "high": 8},
            },
        },
    }


def _member(stack: Stack, experiments: list[str]) -> dict[str, str]:
    """An author of every benchmark experiment, with the author's database login."""
    stack.add_user(MEMBER)
    for experiment in experiments:
        names = grants.resources(f"{experiment}-model", experiment, get_settings().audit_experiment)
        grants.apply(stack.admin(), "author", MEMBER, names)
    stack.grant_database(MEMBER, "author")
    return stack.env(MEMBER)


def _port_base() -> int:
    """Three free consecutive loopback ports (PostgreSQL, S3, MLflow)."""
    while True:
        base = random.randrange(20000, 32000)  # below the ephemeral ports
        socks = [socket.socket() for _ in range(3)]
        try:
            for offset, sock in enumerate(socks):
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()


def run(workers: int, folder: Path, env: dict[str, str], doc: dict) -> dict[str, float]:
    """One sweep by ``workers`` processes (the owner, then joiners); what the study shows."""
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(doc))
    storage = env["RUNWAY_OPTUNA_STORAGE"]
    before = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    command = [sys.executable, "-m", "runway", "sweep", "spec.yaml"]
    procs = [subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL)]
    if workers > 1:
        _new_study(storage, before)  # a joiner needs the study the owner creates
        for _ in range(workers - 1):
            joiner = subprocess.Popen(
                [*command, "--join"], cwd=folder, env=env, stdout=subprocess.DEVNULL
            )
            procs.append(joiner)
    codes = [p.wait(timeout=1800) for p in procs]
    load = os.getloadavg()[1]  # the last 5 minutes: other work on the cores changes the ratio
    if any(codes):
        raise RuntimeError(f"a sweep process failed: exit codes {codes}")
    [summary] = [s for s in optuna.get_all_study_summaries(storage) if s.study_name not in before]
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    distinct = {json.dumps(t.params, sort_keys=True) for t in done}
    start = min(t.datetime_start for t in done if t.datetime_start)
    end = max(t.datetime_complete for t in done if t.datetime_complete)
    phase = (end - start).total_seconds()
    return {"trials": len(done), "distinct": len(distinct), "phase": phase, "load": load}


def _new_study(storage: str, before: set[str], timeout: float = 300) -> str:
    """The name of the study the owner creates (it is named from the spec)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        new = {s.study_name for s in optuna.get_all_study_summaries(storage)} - before
        if new:
            return new.pop()
        time.sleep(0.5)
    raise RuntimeError(f"the owner made no study within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNWAY_"))}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stack = Stack(TeamSettings(dir=root / "team", port_base=_port_base()))
        started = time.perf_counter()
        stack.up()
        up_seconds = time.perf_counter() - started
        try:
            experiments = {1: "bench-2m-one", 2: "bench-2m-two"}
            member = _member(stack, list(experiments.values()))
            env = {**clean, **member, "RUNWAY_THREADS": "1"}
            for workers, experiment in experiments.items():
                doc = bench_spec(args.trials, experiment)
                results[workers] = run(workers, root / experiment, env, doc)
                print(f"  {workers} worker(s): {results[workers]}", file=sys.stderr)
        finally:
            stack.down(purge=True)
    _print(args.trials, results, up_seconds)


def _print(trials: int, results: dict[int, dict[str, float]], up_seconds: float) -> None:
    print(
        f"\nTwo-machine sweep: {trials} trials, separate `runway sweep` processes (owner + "
        f"`--join`) on the team server, one core each (team stack up in {up_seconds:.1f}s)\n"
    )
    print(
        "| workers | finished trials | distinct parameter sets | trial phase | useful trials/min "
        "| vs 1 | load average (5 min) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = results[1]["distinct"] / results[1]["phase"] * 60
    for workers, r in results.items():
        speed = r["distinct"] / r["phase"] * 60
        print(
            f"| {workers} | {r['trials']:.0f} | {r['distinct']:.0f} | {r['phase']:.1f} s | "
            f"{speed:.1f} | {speed / base:.2f}x | {r['load']:.1f} on {os.cpu_count()} cores |"
        )
    ratio = (
        results[2]["distinct"]
        / results[2]["phase"]
        / (results[1]["distinct"] / results[1]["phase"])
    )
    verdict = "meets" if ratio >= TARGET else "misses"
    print(
        f"\n2 workers against 1: {ratio:.2f}x useful-trial speed ({verdict} the {TARGET}x target)"
    )


if __name__ == "__main__":
    main()
