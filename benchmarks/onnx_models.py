"""ONNX models benchmark: a version's ONNX version against the version itself, over REST.

For RandomForest (100 trees), HistGradientBoosting (the churn spec) and
LogisticRegression pipelines on churn, four endpoints side by side in one run,
all on loopback, from this environment, each started fresh and one at a time
(start-up is not contended), the models trained in a separate process:

- bare ``mlflow models serve -w 1`` of the scikit-learn version;
- ``runway serve`` of that version (gateway + 2 backends, its defaults);
- ``runway serve`` of its ONNX version (``runway onnx convert``, promoted);
- the same with the prediction cache on (``RUNWAY_SERVE_CACHE_ENTRIES``);
- ``runway serve --workers 1`` of the twin (one backend: the memory target).

Measured: ready time (start to the first 200 on /ping or /ready), single-row
p50/p99 from one keep-alive client with the endpoints interleaved block by
block, requests/s with 8 keep-alive clients, RSS and PSS summed over each process tree
after the load (RSS counts a page shared by two processes twice, PSS splits it); for the
cache, a workload where half the requests repeat one of 20 rows (hits timed
apart from misses). Targets (issue 15): the twin's p50 at most 0.5x bare
``mlflow models serve``, requests/s at least 2x; cache hits under 1 ms at p50;
memory at most bare's and ready within 1 s of bare. The ratios are printed with
which targets hold.

    python benchmarks/onnx_models.py [--requests 600] [--throughput-seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import serving as sv  # noqa: E402  (the serving benchmark's clients and process helpers)
from tests.helpers import ship  # noqa: E402

from runway.team.procs import tree  # noqa: E402

ESTIMATORS = {
    "RandomForestClassifier": {"n_estimators": 100},
    "HistGradientBoostingClassifier": None,  # the churn spec's own parameters
    "LogisticRegression": {"max_iter": 500},
}
ENDPOINTS = (
    "bare mlflow models serve",
    "runway serve",
    "runway serve, ONNX version",
    "twin + cache",
    "runway serve --workers 1, ONNX version",
)


def _spec(root: Path, estimator: str, model: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "experiments" / "churn.yaml").read_text())
    doc["data"]["source"] = str(root / "churn.csv")
    doc["model_name"] = model
    doc["split"]["cv_folds"] = 2
    if ESTIMATORS[estimator] is not None:
        doc["estimator"] = {"name": estimator, "params": ESTIMATORS[estimator]}
    return doc


def _setup(root: Path, estimator: str) -> dict[str, str]:
    """Two registered models from the same spec: one served as is, one as its promoted twin."""
    from runway.jobs.onnx import lighten
    from runway.jobs.promote import promote

    base = estimator.lower().replace("classifier", "")
    settings, _, _ = ship(root, _spec(root, estimator, f"{base}-sklearn"), reviewer="bench")
    settings, version, _ = ship(root, _spec(root, estimator, f"{base}-twin"), reviewer="bench")
    made = lighten(f"{base}-twin", version, settings)
    promote(f"{base}-twin", made.twin.version, "Staging", settings=settings)
    promote(f"{base}-twin", made.twin.version, "Production", reviewer="bench", settings=settings)
    print(f"  {made.report.render().splitlines()[0]}: max |diff| {made.report.max_abs_diff:.2g}")
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        "PYTHONPATH": str(REPO / "src"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def _memory_mb(pids: list[int], field: str) -> float:
    """``Rss`` or ``Pss`` summed over a process tree (smaps_rollup). RSS counts a page shared by
    two processes twice; PSS splits it between them, so its sum is what the tree holds."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(
            (int(x.split()[1]) for x in rollup.splitlines() if x.startswith(f"{field}:")), 0
        )
    return total / 1024


def _start(root: Path, env: dict[str, str], base: str) -> dict[str, tuple[int, Any, float]]:
    """Start the four endpoints one after another; name -> (port, process, ready seconds)."""
    runway = [sys.executable, "-m", "runway", "serve"]
    commands = {
        ENDPOINTS[0]: ([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                        f"models:/{base}-sklearn/1", "--env-manager", "local", "-h", "127.0.0.1",
                        "-w", "1", "-p"], env, "/ping"),
        ENDPOINTS[1]: ([*runway, f"{base}-sklearn", "--log-dir", str(root / "logs"), "--port"],
                       env, "/ready"),
        ENDPOINTS[2]: ([*runway, f"{base}-twin", "--log-dir", str(root / "logs"), "--port"],
                       env, "/ready"),
        ENDPOINTS[3]: ([*runway, f"{base}-twin", "--log-dir", str(root / "logs"), "--port"],
                       {**env, "RUNWAY_SERVE_CACHE_ENTRIES": "100000"}, "/ready"),
        ENDPOINTS[4]: ([*runway, f"{base}-twin", "--workers", "1", "--log-dir",
                        str(root / "logs"), "--port"], env, "/ready"),
    }  # fmt: skip
    started: dict[str, tuple[int, Any, float]] = {}
    for i, (name, (command, environment, ready)) in enumerate(commands.items()):
        port = sv._free_port()
        log = root / f"endpoint-{i}.log"
        begun = time.perf_counter()
        proc = sv._start([*command, str(port)], environment, log)
        started[name] = (port, proc, 0.0)
        sv._wait(port, ready, proc, log)
        started[name] = (port, proc, time.perf_counter() - begun)
    return started


def _body(record: dict[str, Any]) -> bytes:
    return json.dumps({"dataframe_records": [record]}).encode()


def _cache_workload(port: int, records: list[dict[str, Any]], requests: int) -> tuple[list, list]:
    """Half the requests repeat one of 20 rows: (hit latencies, miss latencies)."""
    hot, cold = records[:20], iter(records[20:])
    seen: set[int] = set()
    hits, misses = [], []
    client = sv.Client(port, b"")
    rng = random.Random(0)
    for _ in range(requests):
        if rng.random() < 0.5:
            k = rng.randrange(len(hot))
            client.body, was_hit = _body(hot[k]), k in seen
            seen.add(k)
        else:
            client.body, was_hit = _body(next(cold)), False
        status, took = client.post()
        if status != 200:
            sys.exit(f"cache workload: HTTP {status}")
        (hits if was_hit else misses).append(took)
    return hits, misses


def _bench_one(estimator: str, args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="runway-bench-onnx-") as tmp:
        root = Path(tmp)
        (root / "churn.csv").write_bytes((REPO / "data" / "churn.csv").read_bytes())
        print(f"{estimator}: training, registering, converting to ONNX ...", flush=True)
        env = sv.set_up_apart(__file__, str(root), estimator)
        frame = pd.read_csv(REPO / "data" / "churn.csv").drop(columns=["churned", "customer_id"])
        records = json.loads(
            frame.astype({"tenure_months": float, "support_calls": float}).to_json(orient="records")
        )
        base = estimator.lower().replace("classifier", "")
        endpoints = _start(root, env, base)
        try:
            ports = {name: port for name, (port, _, _) in endpoints.items()}
            body = _body(records[0])
            plain = {n: p for n, p in ports.items() if n != ENDPOINTS[3]}
            print(
                f"  latency: {args.requests} single-row requests each, interleaved ...", flush=True
            )
            times = sv._latency(plain, body, args.requests, block=100)
            rps = {}
            for name in plain:
                n, bad, _ = sv._concurrent(plain[name], body, 8, args.throughput_seconds)
                if bad:
                    sys.exit(f"{name}: {bad} errors under load")
                rps[name] = n / args.throughput_seconds
            print("  cache workload ...", flush=True)
            hits, misses = _cache_workload(ports[ENDPOINTS[3]], records, args.requests)
            pids = {name: tree(proc.pid) for name, (_, proc, _) in endpoints.items()}
            rss = {name: _memory_mb(p, "Rss") for name, p in pids.items()}
            pss = {name: _memory_mb(p, "Pss") for name, p in pids.items()}
            ready = {name: seconds for name, (_, _, seconds) in endpoints.items()}
        finally:
            for _, proc, _ in endpoints.values():
                sv._stop(proc)
    return {
        **{"times": times, "rps": rps, "hits": hits, "misses": misses},
        **{"rss": rss, "pss": pss, "ready": ready},
    }


def _report(estimator: str, r: dict[str, Any]) -> list[tuple[str, bool]]:
    print(f"\n{estimator}")
    print("| endpoint | ready s | p50 ms | p99 ms | req/s @ c=8 | RSS MB | PSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    p50 = {n: statistics.median(t) * 1000 for n, t in r["times"].items()}
    for name in (*ENDPOINTS[:3], ENDPOINTS[4]):
        t = r["times"][name]
        print(
            f"| {name} | {r['ready'][name]:.1f} | {p50[name]:.2f} | {sv._pct(t, 0.99):.2f} | "
            f"{r['rps'][name]:.0f} | {r['rss'][name]:.0f} | {r['pss'][name]:.0f} |"
        )
    hit = statistics.median(r["hits"]) * 1000 if r["hits"] else float("nan")
    miss = statistics.median(r["misses"]) * 1000
    name = ENDPOINTS[3]
    print(
        f"| {name}: {len(r['hits'])} hits, {len(r['misses'])} misses | {r['ready'][name]:.1f} | "
        f"hit {hit:.2f} / miss {miss:.2f} | hit {sv._pct(r['hits'], 0.99):.2f} | - | "
        f"{r['rss'][name]:.0f} | {r['pss'][name]:.0f} |"
    )
    bare, twin, one = ENDPOINTS[0], ENDPOINTS[2], ENDPOINTS[4]
    checks = [
        (f"twin p50 / bare p50 = {p50[twin] / p50[bare]:.2f} (<= 0.5)", p50[twin] <= 0.5 * p50[bare]),
        (f"twin req/s / bare = {r['rps'][twin] / r['rps'][bare]:.2f} (>= 2)", r["rps"][twin] >= 2 * r["rps"][bare]),
        (f"cache hit p50 {hit:.2f} ms (< 1 ms)", hit < 1.0),
        (f"twin RSS {r['rss'][twin]:.0f} MB vs bare {r['rss'][bare]:.0f} MB (<=)", r["rss"][twin] <= r["rss"][bare]),
        (f"twin, 1 backend: RSS {r['rss'][one]:.0f} MB vs bare {r['rss'][bare]:.0f} MB (<=)", r["rss"][one] <= r["rss"][bare]),
        (f"twin PSS {r['pss'][twin]:.0f} MB vs bare {r['pss'][bare]:.0f} MB (<=)", r["pss"][twin] <= r["pss"][bare]),
        (f"twin ready {r['ready'][twin]:.1f} s vs bare {r['ready'][bare]:.1f} s (within 1 s)", r["ready"][twin] <= r["ready"][bare] + 1),
        (f"runway serve (sklearn) p50 / bare = {p50[ENDPOINTS[1]] / p50[bare]:.2f} (for reference)", True),
    ]  # fmt: skip
    for text, ok in checks:
        print(f"  {'holds' if ok else 'MISSED'}: {text}")
    return checks


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:  # the child of serving.set_up_apart
        where, estimator, out = sys.argv[2:5]
        Path(out).write_text(json.dumps(_setup(Path(where), estimator)))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=600, help="single-row requests per endpoint"
    )
    parser.add_argument("--throughput-seconds", type=float, default=8)
    parser.add_argument("--estimators", nargs="*", default=list(ESTIMATORS))
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    results = {e: _bench_one(e, args) for e in args.estimators}
    held = missed = 0
    for estimator, result in results.items():
        for _, ok in _report(estimator, result):
            held, missed = held + ok, missed + (not ok)
    print(f"\ntargets: {held} hold, {missed} missed (ratios measured in one run; see above)")


if __name__ == "__main__":
    main()
