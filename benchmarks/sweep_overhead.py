"""Sweep benchmark: tracking overhead and worker speed-up, measured in one run.

1. The same 40-trial, 3-fold study on the same data, twice: bare Optuna (the
   same objective, no MLflow) and `runway sweep` (parent + child runs, refit,
   model logging, registration). Target: ratio <= 1.10.
2. Trials per minute of `runway sweep` with 1 and 2 workers. Target: 2 workers
   >= 1.6x on a 2-core machine.

    python benchmarks/sweep_overhead.py [--trials 40]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import mlflow
import optuna

from runway.data import load_dataset, prepare
from runway.spec import spec_from_dict
from runway.sweep import (
    _sampler,
    build_trial_pipeline,
    evaluate_trial,
    open_storage,
    suggest,
    sweep,
)


def bench_spec(trials: int) -> dict:
    return {
        "experiment": "bench-sweep",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "RandomForestClassifier", "params": {}},
        "split": {"holdout": 0.2, "cv_folds": 3, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
        "sweep": {
            "trials": trials,
            "seed": 0,
            "pruning": False,
            "space": {
                "model__n_estimators": {"type": "int", "low": 150, "high": 400},
                "model__max_depth": {"type": "int", "low": 2, "high": 12},
                "model__min_samples_leaf": {"type": "int", "low": 1, "high": 8},
            },
        },
    }


def bare_optuna(doc: dict, journal: Path) -> float:
    """The same study with no tracking at all."""
    spec = spec_from_dict(doc)
    split = prepare(spec, load_dataset(spec.data))

    def objective(trial: optuna.Trial) -> float:
        estimator, params = suggest(trial, spec)
        folds = evaluate_trial(spec, split, build_trial_pipeline(spec, split, estimator, params))
        return sum(folds["roc_auc"]) / len(folds["roc_auc"])

    started = time.perf_counter()
    study = optuna.create_study(
        storage=open_storage(str(journal)), sampler=_sampler(spec), direction="maximize"
    )
    study.optimize(objective, n_trials=doc["sweep"]["trials"])
    return time.perf_counter() - started


def runway_sweep(doc: dict, workdir: Path, workers: int) -> tuple[float, float]:
    """Wall time of the whole sweep, and of its trial phase alone."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["RUNWAY_ARTIFACT_ROOT"] = str(workdir / "mlruns")
    # A team's store already exists: create it (MLflow's migrations) outside the timing.
    mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_experiments()
    spec = spec_from_dict(doc)
    started = time.perf_counter()
    result = sweep(spec, workers=workers, storage=str(workdir / "optuna.journal"))
    return time.perf_counter() - started, result.optimize_seconds


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    doc = bench_spec(args.trials)
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("bare", "w1", "w2"):
            (root / name).mkdir()
        os.chdir(root)
        bare = bare_optuna(doc, root / "bare" / "optuna.journal")
        one, one_trials = runway_sweep(doc, root / "w1", workers=1)
        two, _ = runway_sweep(doc, root / "w2", workers=2)
    ratio, phase_ratio = one / bare, one_trials / bare
    speedup = one / two
    print(f"\nsweep benchmark: {n} trials, 3-fold CV, breast_cancer, {os.cpu_count()} cores")
    print(f"{'what':<36}{'seconds':>9}{'trials/min':>12}")
    rows = [
        ("bare Optuna (no tracking)", bare),
        ("runway sweep, 1 worker", one),
        ("  its trial phase alone", one_trials),
        ("runway sweep, 2 workers", two),
    ]
    for label, seconds in rows:
        print(f"{label:<36}{seconds:>9.1f}{n / seconds * 60:>12.1f}")
    print(f"overhead ratio, end to end   {ratio:.3f}  target <= 1.10: {_verdict(ratio <= 1.10)}")
    print(
        f"overhead ratio, trial phase  {phase_ratio:.3f}  (child runs only; no refit/model/plots)"
    )
    print(
        f"2-worker speed-up            {speedup:.2f}x  target >= 1.60: {_verdict(speedup >= 1.6)}"
    )


if __name__ == "__main__":
    main()
