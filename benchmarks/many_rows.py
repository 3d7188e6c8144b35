"""Many-row requests (issue 31): ``runway serve`` of an ONNX twin vs bare ``mlflow models serve``.

One LogisticRegression pipeline on churn (numeric and categorical columns, gaps) is
trained, registered, converted with ``runway onnx convert`` and its twin promoted, in a
temporary store (in a child process, so nothing of the training stays in this one).
Then two endpoints of the same twin version, on loopback, from this environment:

- ``runway serve`` of the twin (its defaults: contract checks, prediction log, metrics),
  whatever backend route the gateway chooses for a twin;
- bare ``mlflow models serve --env-manager local -w 1`` of the twin version.

Measured, the endpoints interleaved block by block (A B A B, ``repeat`` rounds), one
keep-alive client each, medians over the rounds:

- a 100-row ``dataframe_split`` request: wall p50, and CPU per request summed over each
  endpoint's process tree (``/proc/<pid>/stat`` utime+stime, read after each block once
  the prediction log's writer has flushed);
- the gateway's own CPU per row: the gateway process's CPU over the block / rows sent;
- a single-row request's p50 on each.

CPU is the figure to trust on a shared host; the load average is printed beside the table.

    python benchmarks/many_rows.py [--repeat 3]
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
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import serving as sv  # noqa: E402  (the serving benchmark's clients and process helpers)

from runway.team.procs import tree  # noqa: E402

MODEL = "bench-requests"
ROWS = 100
BLOCK = 60  # requests per endpoint per round
SETTLE_S = 1.3  # the prediction log flushes within 1 s: its CPU lands in the block
TICK = os.sysconf("SC_CLK_TCK")


def _setup(root: Path) -> dict[str, str]:
    """Train, register, convert and promote the twin; the env to serve it and its version."""
    from tests.helpers import ship

    from runway.jobs.onnx import lighten
    from runway.jobs.promote import promote

    (root / "churn.csv").write_bytes((REPO / "data" / "churn.csv").read_bytes())
    doc = yaml.safe_load((REPO / "experiments" / "churn.yaml").read_text())
    doc["data"]["source"] = str(root / "churn.csv")
    doc["model_name"] = MODEL
    doc["split"]["cv_folds"] = 2
    doc["estimator"] = {"name": "LogisticRegression", "params": {"max_iter": 500}}
    settings, version, _ = ship(root, doc, reviewer="bench")
    made = lighten(MODEL, version, settings)
    promote(MODEL, made.twin.version, "Staging", settings=settings)
    promote(MODEL, made.twin.version, "Production", reviewer="bench", settings=settings)
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "BENCH_TWIN_VERSION": str(made.twin.version),
    }


def _cpu_s(pids: list[int]) -> float:
    """utime + stime of ``pids`` (seconds); a process gone meanwhile counts as 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _bodies() -> tuple[bytes, bytes]:
    """(100-row dataframe_split, single-row dataframe_records) from churn's own rows."""
    import pandas as pd

    frame = pd.read_csv(REPO / "data" / "churn.csv").drop(columns=["churned", "customer_id"])
    frame = frame.astype({"tenure_months": float, "support_calls": float}).iloc[:ROWS]
    split = json.loads(frame.to_json(orient="split", index=False))
    many = json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}})
    one = json.dumps({"dataframe_records": json.loads(frame.iloc[:1].to_json(orient="records"))})
    return many.encode(), one.encode()


def _start(root: Path, env: dict[str, str], compare: str | None) -> dict[str, tuple[int, Any]]:
    """name -> (port, process) of the endpoints, each started and ready in turn."""
    version = env["BENCH_TWIN_VERSION"]
    commands: dict[str, tuple[list[str], str]] = {
        "runway": ([sys.executable, "-m", "runway", "serve", MODEL, "--log-dir",
                    str(root / "logs"), "--port"], "/ready"),
        "bare": ([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                  f"models:/{MODEL}/{version}", "--env-manager", "local", "-h", "127.0.0.1",
                  "-w", "1", "-p"], "/ping"),
    }  # fmt: skip
    if compare:  # the same gateway command, running another checkout's runway
        commands["compare"] = commands["runway"]
    started: dict[str, tuple[int, Any]] = {}
    for name, (command, ready) in commands.items():
        port, log = sv._free_port(), root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*command, str(port)],
                env=env if name != "compare" else {**env, "PYTHONPATH": _paths(str(compare))},
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started[name] = (port, proc)
        sv._wait(port, ready, proc, log)
    return started


def _block(client: sv.Client, pid: int, requests: int) -> tuple[list[float], float, float]:
    """(latencies, tree CPU seconds, own CPU seconds of ``pid``) of ``requests`` posts."""
    pids = tree(pid)
    tree_before, own_before = _cpu_s(pids), _cpu_s([pid])
    times = []
    for _ in range(requests):
        status, took = client.post()
        if status != 200:
            sys.exit(f"HTTP {status} from port {client.conn.port}")
        times.append(took)
    time.sleep(SETTLE_S)
    return times, _cpu_s(pids) - tree_before, _cpu_s([pid]) - own_before


def _run(endpoints: dict[str, tuple[int, Any]], repeat: int) -> dict[str, dict[str, float]]:
    many, one = _bodies()
    clients = {
        n: (sv.Client(port, many), sv.Client(port, one)) for n, (port, _) in endpoints.items()
    }
    for big, small in clients.values():  # warm: first requests pay imports and caches
        for _ in range(30):
            big.post()
            small.post()
    rounds: dict[str, dict[str, list[float]]] = {
        n: {"p50": [], "cpu": [], "own": [], "one": []} for n in endpoints
    }
    names = list(clients)
    for turn in range(repeat):  # each round starts with the next endpoint: no order bias
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            big, small = clients[name]
            pid = endpoints[name][1].pid
            times, cpu, own = _block(big, pid, BLOCK)
            rounds[name]["p50"].append(statistics.median(times))
            rounds[name]["cpu"].append(cpu / BLOCK)
            rounds[name]["own"].append(own / (BLOCK * ROWS))
            rounds[name]["one"].append(statistics.median(small.post()[1] for _ in range(BLOCK * 2)))
    return {n: {k: statistics.median(v) for k, v in r.items()} for n, r in rounds.items()}


def _paths(checkout: str) -> str:
    return os.pathsep.join([str(Path(checkout) / "src"), checkout])


def measure(repeat: int = 3) -> list[tuple[str, str, str, str, str]]:
    """Rows (figure, runway, anchor same work, ratio, target), measured in one run."""
    return _rows(_measure(repeat, None), "runway")


def _measure(repeat: int, compare: str | None) -> dict[str, dict[str, float]]:
    """Each endpoint's medians; with ``compare`` (a checkout), its runway serve interleaved too."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="runway-bench-requests-") as tmp:
        root = Path(tmp)
        env = sv.set_up_apart(__file__, str(root))
        endpoints = _start(root, env, compare)
        try:
            return _run(endpoints, repeat)
        finally:
            for _, proc in endpoints.values():
                sv._stop(proc)


def _rows(r: dict[str, dict[str, float]], which: str) -> list[tuple[str, str, str, str, str]]:
    ours, bare = r[which], r["bare"]
    ms = 1000.0
    return [
        (f"{ROWS}-row request p50, LR twin", f"{ours['p50'] * ms:.2f} ms",
         f"bare twin {bare['p50'] * ms:.2f} ms", f"{ours['p50'] / bare['p50']:.2f}x", "<= 1.0x"),
        (f"{ROWS}-row request CPU, process tree", f"{ours['cpu'] * ms:.2f} ms",
         f"bare twin {bare['cpu'] * ms:.2f} ms", f"{ours['cpu'] / bare['cpu']:.2f}x", "<= 1.0x"),
        ("gateway CPU per row in a request", f"{ours['own'] * 1e6:.1f} us", "-", "-", "<= 10 us"),
        ("twin endpoint single row p50", f"{ours['one'] * ms:.2f} ms",
         f"bare twin {bare['one'] * ms:.2f} ms", f"{ours['one'] / bare['one']:.2f}x",
         "<= 1.5 ms quiet"),
    ]  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--setup"]:  # the child of serving.set_up_apart
        where, out = sys.argv[2:4]
        Path(out).write_text(json.dumps(_setup(Path(where))))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (A B A B)")
    parser.add_argument(
        "--compare", help="another checkout: its runway serve measured in the same rounds"
    )
    args = parser.parse_args()
    r = _measure(args.repeat, args.compare)
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    tables = [("runway", "runway")] + (
        [("compare", f"runway of {args.compare}")] if args.compare else []
    )
    for which, title in tables:
        print(f"\n{title}\n| figure | runway | anchor, same work | ratio | target |")
        print("| --- | --- | --- | --- | --- |")
        for row in _rows(r, which):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
