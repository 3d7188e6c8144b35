"""Monitoring benchmark: `runway monitor` over a large prediction log, in fresh processes.

A model over 20 generated features is trained and promoted in a temporary
store; two prediction logs are written in the log's own format (batch rows
with class probabilities, one day), drawn from the training population:
250,000 rows as they were, and 1,000,000 rows with two features (f03, f11)
shifted, which must be the only ones flagged. Each is judged by ``runway.monitoring.monitor``
(no action) in a fresh process, the two sizes interleaved, best of
``--repeat``. Reported per size: the seconds ``monitor()`` takes (reading the
log, binning every feature, statistics, report, monitoring run), rows/s, and
the process's peak RSS.

Targets: 1,000,000 rows judged in under 10 s; peak memory flat in the number
of rows (the 1M-row window within 100 MB of the 250k-row one).

    python benchmarks/monitor.py [--rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' set-up helper
from tests.helpers import ship

MODEL = "bench-monitor"
FEATURES = 20
DAY = datetime(2026, 6, 1, tzinfo=UTC)


TRAIN_ROWS, POOL_ROWS = 20_000, 100_000


def make_rows():
    """Training rows and a pool of rows from the same population (one generator call)."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=TRAIN_ROWS + POOL_ROWS,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=4,
        random_state=1,
    )
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(FEATURES)])
    return frame.iloc[:TRAIN_ROWS], y[:TRAIN_ROWS], frame.iloc[TRAIN_ROWS:].reset_index(drop=True)


def setup(root: Path) -> None:
    """Train and promote the model; write the two logs."""
    import yaml

    X, y, pool = make_rows()
    data = root / "train.parquet"
    X.assign(label=y).to_parquet(data, index=False)
    spec = {
        "experiment": "bench-monitor",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(data), "target": "label"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.2, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="bench")
    policy = root / "registry" / f"{MODEL}.yaml"
    doc = yaml.safe_load(policy.read_text())
    doc["monitor"] = {"features": {"drift_share": 0.05}}
    policy.write_text(yaml.safe_dump(doc))
    for rows, shifted in ((250_000, False), (1_000_000, True)):
        write_log(root / f"log-{rows}", pool, rows, shifted)


def write_log(target: Path, pool, rows: int, shifted: bool) -> None:
    """``rows`` scored batch rows with probabilities in the prediction log's own format."""
    import mlflow.sklearn
    import numpy as np

    from runway.store.predlog import PredictionLog, scored_frame

    model = mlflow.sklearn.load_model(f"models:/{MODEL}/Production")
    sink = PredictionLog(str(target))
    chunk = 100_000
    for start in range(0, rows, chunk):
        X = pool.sample(min(chunk, rows - start), replace=True, random_state=start)
        X = X.reset_index(drop=True)
        if shifted:
            X["f03"] += 2.0
            X["f11"] *= 3.0
        probabilities = model.predict_proba(X)
        frame = scored_frame(
            X,
            model.classes_.take(np.argmax(probabilities, axis=1)),
            model=MODEL,
            version="1",
            source="batch",
            request_id="bench",
            timestamp=DAY + timedelta(minutes=start // chunk),
            keys=[str(i) for i in range(start, start + len(X))],
            probabilities=probabilities,
            classes=list(model.classes_),
        )
        sink.write_frame(MODEL, frame)


def child(log_dir: str) -> None:
    """``--child``: judge one log in this fresh process; print seconds, rows and peak RSS."""
    from runway.monitoring.monitor import MonitorOptions, monitor
    from runway.settings import get_settings
    from runway.store import tracking

    os.environ["RUNWAY_PREDICTION_LOG"] = log_dir
    settings = tracking.configure(get_settings())
    options = MonitorOptions(since=DAY, window="1d", act=False)
    started = time.perf_counter()
    result = monitor(MODEL, options, settings)
    seconds = time.perf_counter() - started
    assert result.verdict is not None
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": result.verdict.rows_scored,
                "drifted": result.verdict.drifted,
                "peak_mb": _peak_rss_kb() / 1024,
            }
        )
    )


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def judge(root: Path, rows: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(root / f"log-{rows}")],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats; best is kept")
    parser.add_argument("--child", metavar="LOG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="runway-bench-monitor-") as tmp:
        root = Path(tmp)
        os.chdir(root)
        os.environ.update(
            MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
            RUNWAY_ARTIFACT_ROOT=str(root / "mlruns"),
            RUNWAY_REGISTRY_DIR=str(root / "registry"),
            RUNWAY_MONITOR_REPORT_DIR=str(root / "reports"),
        )
        print("setting up: a model and two prediction logs (250k and 1M rows) ...", flush=True)
        setup(root)
        runs: dict[int, list[dict]] = {250_000: [], 1_000_000: []}
        for i in range(args.repeat):
            print(f"judging, repeat {i + 1}/{args.repeat} ...", flush=True)
            for rows in runs:
                runs[rows].append(judge(root, rows))
    report(runs)


def report(runs: dict[int, list[dict]]) -> None:
    from runway.core.text import format_table

    best = {rows: min(found, key=lambda r: r["seconds"]) for rows, found in runs.items()}
    peak = {rows: min(r["peak_mb"] for r in found) for rows, found in runs.items()}
    print()
    print(f"runway monitor: prediction-log window x {FEATURES} features, judged in a fresh process")
    table = [("log rows", "seconds", "rows/s", "peak RSS MB", "drifted")]
    for rows, result in best.items():
        table.append(
            (
                f"{rows:,}",
                f"{result['seconds']:.2f}",
                f"{rows / result['seconds']:,.0f}",
                f"{peak[rows]:,.0f}",
                ",".join(result["drifted"]) or "-",
            )
        )
    print("\n".join(format_table(table)))
    seconds = best[1_000_000]["seconds"]
    growth = peak[1_000_000] - peak[250_000]
    print(
        f"1,000,000 rows judged in {seconds:.2f} s (target < 10 s: {'ok' if seconds < 10 else 'MISSED'})"
    )
    print(
        f"peak RSS 250k -> 1M rows: {growth:+,.0f} MB "
        f"(target: flat, within 100 MB: {'ok' if abs(growth) < 100 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
