"""Issue #31's table from one run: each figure of runway beside a plain anchor doing the same work.

Every figure is a whole fresh process (wall seconds from spawn to exit, or to the
first 200), runway and its anchor interleaved A B A B, the median of
``--repeat`` pairs; peak memory is the process's own maximum RSS (wait4). The
load average is printed beside the table: on a shared host read the ratios, not
the seconds.

Rows (one model for all: HistGradientBoostingClassifier on 20 numeric features,
trained, registered and promoted in a temporary store):

- cold start to first 200: ``runway serve`` vs bare ``mlflow models serve`` (local env);
- batch ``--rows`` rows, labels + probabilities: ``runway score`` CSV to CSV vs a
  plain script (``read_csv``, ``predict``, ``predict_proba``, ``to_csv``; the model
  loaded with ``mlflow.sklearn.load_model``);
- batch 5k rows: the same; runway's fixed start-up is the difference;
- monitor 1M logged rows: ``runway monitor`` (no action) vs a plain pandas/NumPy
  PSI of every feature against the training rows;
- the request rows (100-row request p50 and CPU, gateway CPU per row, twin single
  row): ``benchmarks/many_rows.py``, ``runway serve`` of a LogisticRegression ONNX
  twin beside bare ``mlflow models serve`` of the same twin, in its own store.

The start-up budget (#31: ``runway score`` of 5k rows at most 1 s over the plain
script) is checked at the end: exit status 1 when it is missed.

    python benchmarks/fast.py [--rows 500000] [--log-rows 1000000] [--repeat 3] [--only cold|batch|monitor|requests]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' set-up helper
sys.path.insert(0, str(Path(__file__).resolve().parent))  # many_rows.py
from tests.helpers import ship

from runway.net import free_port

MODEL = "bench-fast"
FEATURES = 20
DAY = datetime(2026, 6, 1, tzinfo=UTC)
ROWS = ("cold", "batch", "monitor", "requests")  # the table's groups of rows, --only
STARTUP_BUDGET_S = 1.0  # runway score of 5k rows over the plain script
PLAIN_SCORE = """
import sys, mlflow.sklearn, pandas as pd
model = mlflow.sklearn.load_model(sys.argv[1])
X = pd.read_csv(sys.argv[2])
out = X.assign(prediction=model.predict(X))
proba = model.predict_proba(X)
for i, c in enumerate(model.classes_):
    out[f"proba_{c}"] = proba[:, i]
out.to_csv(sys.argv[3], index=False)
"""
PLAIN_PSI = """
import sys, numpy as np, pandas as pd
ref = pd.read_parquet(sys.argv[1])
log = pd.read_parquet(sys.argv[2], columns=[f"input.{c}" for c in ref.columns])
for c in ref.columns:
    edges = np.unique(np.quantile(ref[c], np.linspace(0, 1, 11)))
    edges[0], edges[-1] = -np.inf, np.inf
    a = np.histogram(ref[c], edges)[0] / len(ref) + 1e-6
    b = np.histogram(log[f"input.{c}"], edges)[0] / len(log) + 1e-6
    print(c, float(np.sum((b - a) * np.log(b / a))))
"""


def make_rows(n: int, seed: int):
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=FEATURES, n_informative=10, n_redundant=4, random_state=seed
    )
    return pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(FEATURES)]), y


def setup(root: Path, rows: int, log_rows: int) -> None:
    """The model in Production, the input files, the prediction log of ``log_rows`` rows."""
    X, y = make_rows(20_000, seed=1)
    X.assign(label=y).to_parquet(root / "train.parquet", index=False)
    X.to_parquet(root / "reference.parquet", index=False)
    spec = {
        "experiment": "bench-fast",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(root / "train.parquet"), "target": "label"},
        "estimator": {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 100}},
        "split": {"holdout": 0.2, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="bench")
    pool, _ = make_rows(max(rows, 5_000), seed=2)
    pool.head(rows).to_csv(root / "big.csv", index=False)
    pool.head(5_000).to_csv(root / "small.csv", index=False)
    write_log(root, pool, log_rows)


def write_log(root: Path, pool, rows: int) -> None:
    import mlflow.sklearn
    import numpy as np

    from runway.store.predlog import PredictionLog, scored_frame

    model = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    sink = PredictionLog(str(root / "predictions"))
    for start in range(0, rows, 100_000):
        X = pool.sample(min(100_000, rows - start), replace=True, random_state=start)
        X = X.reset_index(drop=True)
        proba = model.predict_proba(X)
        sink.write_frame(
            MODEL,
            scored_frame(
                X,
                model.classes_.take(np.argmax(proba, axis=1)),
                model=MODEL,
                version="1",
                source="batch",
                request_id="bench",
                timestamp=DAY + timedelta(minutes=start // 100_000),
                keys=[str(i) for i in range(start, start + len(X))],
                probabilities=proba,
                classes=list(model.classes_),
            ),
        )


def run(command: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one fresh process run to its end."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 10):  # 10: runway monitor's "threshold crossed"
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def first_200(command: list[str], port: int, body: bytes) -> tuple[float, float, float]:
    """Seconds from spawn to the first 200 of /invocations; then the server is stopped."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while proc.poll() is None and time.perf_counter() - started < 300:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                body,
                {"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started, 0.0, 0.0
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{' '.join(command)}: no 200 within 300 s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(60)


def pairs(a: Callable[[], tuple], b: Callable[[], tuple], repeat: int) -> tuple[list, list]:
    """A and B in turn, ``repeat`` times each (after one warm-up of each)."""
    a(), b()
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(a())
        runs_b.append(b())
    return runs_a, runs_b


def median(runs: list[tuple], i: int = 0) -> float:
    return statistics.median(r[i] for r in runs)


def measure(
    root: Path, args: argparse.Namespace, base_env: dict[str, str]
) -> list[tuple[str, ...]]:
    py, out = sys.executable, str(root / "out.csv")
    uri = f"models:/{MODEL}/1"
    rows: list[tuple[str, ...]] = []
    body = (
        b'{"dataframe_split": {"columns": ['
        + ",".join(f'"f{i:02d}"' for i in range(FEATURES)).encode()
        + b'], "data": [['
        + ",".join(["0.1"] * FEATURES).encode()
        + b"]]}}"
    )

    def serve(port: int = 0) -> tuple[float, float, float]:
        port = free_port()
        return first_200([py, "-m", "runway", "serve", MODEL, "--port", str(port)], port, body)

    def bare() -> tuple[float, float, float]:
        port = free_port()
        command = [py, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
        return first_200([*command, "-h", "127.0.0.1", "-w", "1", "-p", str(port)], port, body)

    only = set(args.only or ROWS)
    if "cold" in only:
        print("cold start ...", flush=True)
        a, b = pairs(serve, bare, args.repeat)
        rows.append(_row("cold start to first 200", a, b, "bare `mlflow models serve`", "<= 1.0x"))
    for name, rows_n, target in (
        ("big.csv", args.rows, "<= 1.1x"),
        ("small.csv", 5_000, f"start-up <= {STARTUP_BUDGET_S:g} s over the plain script"),
    ):
        if "batch" not in only:
            break
        src = str(root / name)
        print(f"batch {rows_n:,} rows ...", flush=True)
        a, b = pairs(
            lambda src=src: run(
                [py, "-m", "runway", "-q", "score", MODEL, "--input", src, "--output", out]
            ),
            lambda src=src: run([py, "-c", PLAIN_SCORE, uri, src, out]),
            args.repeat,
        )
        label = f"batch {rows_n:,} rows HGB, labels + probabilities"
        rows.append(_row(label, a, b, "read_csv + predict + predict_proba + to_csv", target))
    if "monitor" in only:
        print("monitor ...", flush=True)
        log_dir = str(root / "predictions" / MODEL)
        a, b = pairs(
            lambda: run([py, "-m", "runway", "-q", "monitor", MODEL, "--since", "2026-06-01"]),
            lambda: run([py, "-c", PLAIN_PSI, str(root / "reference.parquet"), log_dir]),
            args.repeat,
        )
        label = f"monitor {args.log_rows:,} logged rows"
        rows.append(_row(label, a, b, "plain numpy/pandas PSI", "<= 1.5x", memory=True))
    if "requests" in only:
        print("requests to an ONNX twin ...", flush=True)
        import many_rows

        with _environ(base_env):  # its own store, not this one's
            rows.extend(many_rows.measure(args.repeat))
    return rows


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _row(label, a, b, anchor, target, memory: bool = False) -> tuple[str, ...]:
    wa, wb = median(a), median(b)
    mine = f"{wa:.2f} s"
    theirs = f"{anchor}: {wb:.2f} s"
    if memory:
        mine += f", {median(a, 2):.0f} MB"
        theirs += f", {median(b, 2):.0f} MB"
    if a[0][1]:
        mine += f" (CPU {median(a, 1):.2f} s)"
        theirs += f" (CPU {median(b, 1):.2f} s)"
    return (label, mine, theirs, f"{wa / wb:.2f}x ({wa - wb:+.2f} s)", target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the large batch")
    parser.add_argument("--log-rows", type=int, default=1_000_000, help="rows of the logged window")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved pairs; median kept")
    parser.add_argument(
        "--only",
        action="append",
        choices=ROWS,
        help="measure only these rows (repeatable); the start-up budget is checked with batch",
    )
    args = parser.parse_args()
    from runway.core.text import format_table

    with tempfile.TemporaryDirectory(prefix="runway-bench-fast-") as tmp:
        root = Path(tmp)
        os.chdir(root)
        base_env = dict(os.environ)
        os.environ.update(
            MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
            RUNWAY_ARTIFACT_ROOT=str(root / "mlruns"),
            RUNWAY_REGISTRY_DIR=str(root / "registry"),
            RUNWAY_PREDICTION_LOG=str(root / "predictions"),
            RUNWAY_MONITOR_REPORT_DIR=str(root / "reports"),
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
            # `mlflow models serve` execs `uvicorn` from PATH: this environment's
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        print("setting up: the model, the input files and the prediction log ...", flush=True)
        setup(root, args.rows, args.log_rows)
        before = os.getloadavg()
        table = measure(root, args, base_env)
        after = os.getloadavg()
    print()
    print(
        f"load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after; {os.cpu_count()} cores"
    )
    print(
        "\n".join(
            format_table([("figure", "runway", "anchor, same work", "ratio", "target"), *table])
        )
    )
    small = [row for row in table if row[0].startswith("batch 5,000")]
    if not small:
        return
    over = float(small[0][3].split("(")[1].split(" s)")[0])
    verdict = "ok" if over <= STARTUP_BUDGET_S else "MISSED"
    print(
        f"start-up budget: runway score of 5k rows {over:.2f} s over the plain script "
        f"(budget {STARTUP_BUDGET_S:g} s): {verdict}"
    )
    if verdict != "ok":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
