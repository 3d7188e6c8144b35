"""Training threads: the shipped HGB spec fitted with runway's default, one thread, and unpinned.

`runway train` pins BLAS/OpenMP threads (``RUNWAY_THREADS``; unset: the idle
cores, the cores minus the 1-minute load average, at least 1). This times what
a training run fits (the spec's cross-validation, then the fit on the training
split) of ``experiments/churn.yaml`` (HistGradientBoostingClassifier) three
ways, side by side in one run: the default, single-threaded, and unpinned (the
process's own OpenMP default, one thread per core). Every measurement is a fresh
process (OpenMP reads its settings once), the three modes interleaved per
repeat; the table gives the median and best of each and the ratio to one thread.
A fit still running after ``--timeout`` seconds is stopped and counted at the
timeout (``>=`` in the table): unpinned on a busy host takes minutes.
Run it while the host is busy (another test suite) to see why training pins.

    python benchmarks/training_threads.py [--repeat 3] [--rows 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("default", "one thread", "unpinned")
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def child(mode: str, data: str) -> None:
    """One measurement in this fresh process: print {"seconds": ..., "threads": ...}."""
    import contextlib

    from runway.core.threads import limit, threads_for
    from runway.core.training.data import load_dataset, prepare
    from runway.core.training.evaluate import cross_validate
    from runway.core.training.pipeline import build_pipeline
    from runway.core.training.spec import load_spec

    spec = load_spec(ROOT / "experiments" / "churn.yaml", {"data.source": data})
    split = prepare(spec, load_dataset(spec.data))
    pipeline = build_pipeline(spec, **split.columns_by_kind())
    threads = {"default": threads_for("train", None), "one thread": 1}.get(mode)
    pinned = limit(threads) if threads is not None else contextlib.nullcontext()
    started = time.perf_counter()
    with pinned:
        cross_validate(spec, pipeline, split.X_train, split.y_train, pos_label=split.pos_label)
        pipeline.fit(split.X_train, split.y_train)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "threads": threads or "os default"}))


def measure(mode: str, data: str, timeout: float) -> tuple[float, str]:
    """Seconds of one fresh process's fit in ``mode`` (``timeout``: stopped, a lower bound)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.pop("RUNWAY_THREADS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--data", data],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        ).stdout
    except subprocess.TimeoutExpired:
        return timeout, "(stopped)"
    doc = json.loads(out.strip().splitlines()[-1])
    return float(doc["seconds"]), str(doc["threads"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument(
        "--timeout", type=float, default=25.0, help="stop a fit after this many seconds"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data)
        return
    sys.path.insert(0, str(ROOT))
    from scripts.make_churn_data import make_churn

    with tempfile.TemporaryDirectory(prefix="runway-bench-threads-") as tmp:
        data = str(Path(tmp) / "churn.csv")
        make_churn(args.rows).to_csv(data, index=False)
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        threads: dict[str, str] = {}
        for repeat in range(args.repeat):
            order = MODES[repeat % 3 :] + MODES[: repeat % 3]  # interleaved, rotated
            for mode in order:
                seconds, used = measure(mode, data, args.timeout)
                threads[mode] = threads.get(mode, used) if used == "(stopped)" else used
                times[mode].append(seconds)
    one = statistics.median(times["one thread"])
    print(
        f"training time, experiments/churn.yaml (HGB), {args.rows} rows, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {args.repeat} repeats"
    )
    print(f"{'mode':<12} {'threads':>10} {'median s':>9} {'best s':>8} {'vs one':>7}")
    for mode in MODES:
        median = statistics.median(times[mode])
        at_least = ">=" if max(times[mode]) >= args.timeout else "  "
        print(
            f"{mode:<12} {threads[mode]:>10} {at_least}{median:7.2f} {min(times[mode]):8.2f} "
            f"{at_least}{median / one:4.2f}x"
        )


if __name__ == "__main__":
    main()
