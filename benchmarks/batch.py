"""Batch scoring benchmark: runway's pandas engine vs the raw scikit-learn model, in one process.

1. Throughput on 1,000,000 generated rows (20 numeric features, Parquet):
   - raw: ``model.predict(X)`` of the same fitted Pipeline on the same rows,
     already in memory as a DataFrame (reading the file is NOT timed);
   - runway: ``runway.scoring.batch.score_file`` end to end, in-process: resolve and
     load the model, read the Parquet file in chunks, check every row against
     the contract, cast, predict, write the output (input columns, prediction,
     class probabilities, lineage) and the rejects file atomically, append to
     the prediction log.
   Reported: rows/s of each and runway/raw (target >= 0.8). Each is the best of
   ``--repeat`` interleaved runs.
2. Peak memory (max RSS of a fresh process running ``score_file``): two chunk
   sizes on the 1M-row file, and two file sizes at one chunk size. Target: it
   grows with the chunk size, not with the file size.

The model is the project's default estimator (``experiments/breast_cancer.yaml``:
RandomForestClassifier, 200 trees, max_depth 8, min_samples_leaf 2, n_jobs -1),
trained by ``runway train`` on 20,000 rows, registered and promoted to
Production in a temporary store.

    python benchmarks/batch.py [--rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' set-up helper
from tests.helpers import ship

MODEL = "bench-batch"
TRAIN_ROWS = 20_000
FEATURES = 20


def make_rows(n: int, seed: int) -> tuple:
    """Features and labels from one fixed generator: training and scoring rows agree."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=FEATURES, n_informative=10, n_redundant=4, random_state=seed
    )
    return pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(FEATURES)]), y


def setup_store(root: Path) -> None:
    """Train, register and promote the benchmark model in ``root``'s store."""
    X, y = make_rows(TRAIN_ROWS, seed=1)
    X.assign(target=y).to_parquet(root / "train.parquet")
    spec = {
        "experiment": "bench-batch",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(root / "train.parquet"), "target": "target"},
        "estimator": {
            "name": "RandomForestClassifier",
            "params": {"n_estimators": 200, "max_depth": 8, "min_samples_leaf": 2, "n_jobs": -1},
        },
        "split": {"holdout": 0.2, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="bench")


def run_runway(source: Path, out_dir: Path, chunk_rows: int) -> tuple[float, int]:
    """One ``score_file`` run into a fresh output and prediction log; (seconds, rows scored)."""
    from runway.scoring.batch import ScoringOptions, score_file

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    os.environ["RUNWAY_PREDICTION_LOG"] = str(out_dir / "predictions")
    started = time.perf_counter()
    options = ScoringOptions(chunk_rows=chunk_rows)
    result = score_file(MODEL, source, out_dir / "scores.parquet", options)
    seconds = time.perf_counter() - started
    assert result.rows_in == result.rows_scored, result
    return seconds, result.rows_scored


def run_raw(model, X) -> float:
    started = time.perf_counter()
    model.predict(X)
    return time.perf_counter() - started


def child(source: str, out_dir: str, chunk_rows: int) -> None:
    """``--child``: one scoring run in a fresh process; print its peak RSS."""
    from runway.settings import get_settings
    from runway.store import tracking

    tracking.configure(get_settings())
    seconds, rows = run_runway(Path(source), Path(out_dir), chunk_rows)
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": _peak_rss_kb() / 1024}))


def _peak_rss_kb() -> int:
    """This process's peak RSS. Linux's VmHWM, not ru_maxrss: getrusage carries the
    high-water mark of the forked parent's copy across exec (here: the parent's ~1 GB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory(source: Path, out_dir: Path, chunk_rows: int) -> float:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(out_dir), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats; best is kept")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--setup-only", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", nargs=3, metavar=("SOURCE", "OUT", "CHUNK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("mlflow", "alembic", "runway"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    with tempfile.TemporaryDirectory(prefix="runway-bench-batch-") as tmp:
        root = Path(args.setup_only or tmp)
        os.chdir(root)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        os.environ["RUNWAY_ARTIFACT_ROOT"] = str(root / "mlruns")
        print(f"setting up: training and promoting {MODEL} ...", flush=True)
        setup_store(root)
        if args.setup_only:
            return

        X, _ = make_rows(args.rows, seed=2)
        big = root / "rows.parquet"
        X.to_parquet(big, index=False)
        quarter = root / "rows-quarter.parquet"
        X.iloc[: args.rows // 4].to_parquet(quarter, index=False)

        import mlflow.sklearn

        model = mlflow.sklearn.load_model(f"models:/{MODEL}/Production")
        # Logged to predict one row at a time (n_jobs=1); a raw batch predict gets every
        # core, as `runway score` gives it (RUNWAY_THREADS unset: all cores).
        model.set_params(model__n_jobs=-1)
        raw_times, runway_times = [], []
        for i in range(args.repeat):
            print(f"throughput, repeat {i + 1}/{args.repeat} ...", flush=True)
            raw_times.append(run_raw(model, X))
            seconds, rows = run_runway(big, root / "out", args.chunk_rows)
            assert rows == args.rows
            runway_times.append(seconds)
        raw_rps = args.rows / min(raw_times)
        runway_rps = args.rows / min(runway_times)
        ratio = runway_rps / raw_rps
        del X

        print("peak memory (one fresh process per run) ...", flush=True)
        small_chunk, large_chunk = args.chunk_rows // 4, args.chunk_rows * 4
        memory = [
            (args.rows, small_chunk, peak_memory(big, root / "mem", small_chunk)),
            (args.rows, large_chunk, peak_memory(big, root / "mem", large_chunk)),
            (args.rows // 4, args.chunk_rows, peak_memory(quarter, root / "mem", args.chunk_rows)),
            (args.rows, args.chunk_rows, peak_memory(big, root / "mem", args.chunk_rows)),
        ]

    from runway.core.text import format_table

    print()
    print(
        f"batch scoring, {args.rows:,} rows x {FEATURES} features, RandomForest(200 trees, depth 8)"
    )
    table = [
        ("run", "includes", "seconds", "rows/s"),
        (
            "raw model.predict",
            "predict on an in-memory DataFrame",
            f"{min(raw_times):.2f}",
            f"{raw_rps:,.0f}",
        ),
        (
            f"runway score (chunks of {args.chunk_rows:,})",
            "read Parquet, contract check, predict + proba, write output + rejects, prediction log",
            f"{min(runway_times):.2f}",
            f"{runway_rps:,.0f}",
        ),
    ]
    print("\n".join(format_table(table)))
    verdict = "ok" if ratio >= 0.8 else "FAIL"
    print(f"runway / raw throughput: {ratio:.2f}  (target >= 0.80: {verdict})")
    print()
    rows_table = [("file rows", "chunk rows", "peak RSS MB")]
    rows_table += [(f"{r:,}", f"{c:,}", f"{m:,.0f}") for r, c, m in memory]
    print("\n".join(format_table(rows_table)))
    by_chunk = memory[1][2] - memory[0][2]
    by_file = memory[3][2] - memory[2][2]
    grows_with_chunk = by_chunk > 0
    flat_in_file = abs(by_file) < max(by_chunk, 1.0) / 2
    print(
        f"chunk {small_chunk:,} -> {large_chunk:,}: {by_chunk:+,.0f} MB; "
        f"file {args.rows // 4:,} -> {args.rows:,} rows: {by_file:+,.0f} MB  "
        f"(target: grows with chunk size, not file size: "
        f"{'ok' if grows_with_chunk and flat_in_file else 'FAIL'})"
    )


if __name__ == "__main__":
    main()
