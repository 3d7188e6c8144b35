"""Team-mode benchmark: the same sweep and promotions on the embedded store and the team stack.

1. The 40-trial, 3-fold sweep of benchmarks/sweep_overhead.py, trials per
   minute over the trial phase and end to end: on the embedded default
   (SQLite + an Optuna journal file, 1 worker) and on the team stack (mlflow
   server with basic-auth on PostgreSQL and S3, the study in PostgreSQL with
   heartbeats) with 1 and 2 workers.
2. Promotion latency, None -> Staging and Staging -> Production (gates, lock,
   audit, stage writes), median of three, on both stores.
3. On the team stack: a 64 MB artifact logged and downloaded through the server
   (seconds each way), each service's memory after all of the above, and how
   long `team down` takes.

The team stack is started by the code `make team-up` runs (runway.team.stack),
in a temporary folder on free ports, and stopped at the end. Both stores are
measured in one run, one after the other, so the ratios compare like with like.

    python benchmarks/team.py [--trials 40] [--promotions 3] [--artifact-mb 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import yaml

from runway.core.training.spec import spec_from_dict
from runway.jobs.promote import promote
from runway.jobs.register import register_sweep
from runway.jobs.sweep import sweep
from runway.settings import get_settings
from runway.store import registry, tracking
from runway.team import grants
from runway.team.config import TeamSettings
from runway.team.stack import Stack

HERE = Path(__file__).resolve().parent
REVIEWER = "bench"


def bench_spec(trials: int, experiment: str) -> dict:
    """The sweep benchmark's spec (benchmarks/sweep_overhead.py), in its own experiment."""
    location = importlib.util.spec_from_file_location("sweep_overhead", HERE / "sweep_overhead.py")
    assert location is not None and location.loader is not None
    module = importlib.util.module_from_spec(location)
    location.loader.exec_module(module)
    doc = dict(module.bench_spec(trials))
    doc["experiment"] = experiment
    doc["model_name"] = f"{experiment}-model"
    return doc


def _port_base() -> int:
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


def _use(env: dict[str, str]) -> None:
    """Point this process at a store (what a member's shell exports)."""
    for key in [k for k in os.environ if k.startswith(("MLFLOW_TRACKING_", "RUNWAY_OPTUNA"))]:
        del os.environ[key]
    os.environ.update(env)
    tracking.configure(get_settings())


def run_sweep(doc: dict, workers: int, name: str) -> tuple[float, float, str]:
    """Seconds end to end (registration included) and of the trial phase; the version."""
    started = time.perf_counter()
    result = sweep(spec_from_dict(doc), workers=workers, study_name=name, settings=get_settings())
    version = register_sweep(result).version
    total = time.perf_counter() - started
    print(f"  {name}: {total:.1f}s, trial phase {result.optimize_seconds:.1f}s", file=sys.stderr)
    return total, result.optimize_seconds, version


def promotion_latency(model: str, version: str, repeats: int) -> tuple[float, float]:
    """Median seconds of None -> Staging and Staging -> Production over ``repeats`` versions."""
    source = registry.get_version(model, version).source
    staging, production = [], []
    for _ in range(repeats):
        fresh = registry.register_version(model, source, tags={}).version
        started = time.perf_counter()
        promote(model, fresh, "Staging")
        staging.append(time.perf_counter() - started)
        started = time.perf_counter()
        promote(model, fresh, "Production", reviewer=REVIEWER)
        production.append(time.perf_counter() - started)
    return statistics.median(staging), statistics.median(production)


def artifact_round_trip(experiment: str, folder: Path, megabytes: int) -> tuple[float, float]:
    """Seconds to log one ``megabytes`` artifact through the server, and to download it."""
    source = folder / "blob.bin"
    source.write_bytes(os.urandom(megabytes << 20))
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        started = time.perf_counter()
        mlflow.log_artifact(str(source))
        upload = time.perf_counter() - started
    started = time.perf_counter()
    fetched = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="blob.bin", dst_path=str(folder / "back")
    )
    download = time.perf_counter() - started
    assert Path(fetched).stat().st_size == source.stat().st_size
    return upload, download


def _policy(folder: Path, model: str) -> None:
    (folder / "registry").mkdir(exist_ok=True)
    policy = {
        "model": model,
        "staging": {"max_latency_ms": 60_000, "max_model_size_mb": 1000},
        "production": {"reviewers": [REVIEWER], "four_eyes": False},
    }
    (folder / "registry" / f"{model}.yaml").write_text(yaml.safe_dump(policy))


def _team_member(stack: Stack, experiment: str, model: str) -> dict[str, str]:
    """A member who may train, sweep and review this model (author and reviewer grants)."""
    stack.add_user(REVIEWER)
    names = grants.resources(model, experiment, get_settings().audit_experiment)
    for role in ("author", "reviewer"):
        grants.apply(stack.admin(), role, REVIEWER, names)
    stack.grant_database(REVIEWER, "author")  # the member's own login on the Optuna database
    return stack.env(REVIEWER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--promotions", type=int, default=3)
    parser.add_argument("--artifact-mb", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    rows, latency = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        embedded = {
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
            "RUNWAY_OPTUNA_STORAGE": str(root / "optuna.journal"),
        }
        _use(embedded)
        mlflow.MlflowClient().search_experiments()  # migrations outside the timing
        doc = bench_spec(args.trials, "bench-embedded")
        _policy(root, doc["model_name"])
        total, phase, version = run_sweep(doc, 1, "embedded-1")
        rows.append(("embedded: SQLite + journal file", 1, total, phase))
        latency["embedded: SQLite"] = promotion_latency(doc["model_name"], version, args.promotions)

        settings = TeamSettings(dir=root / "team", port_base=_port_base())
        stack = Stack(settings)
        started = time.perf_counter()
        stack.up()
        up_seconds = time.perf_counter() - started
        try:
            doc = bench_spec(args.trials, "bench-team")
            _policy(root, doc["model_name"])
            _use(_team_member(stack, doc["experiment"], doc["model_name"]))
            for workers in (1, 2):
                total, phase, version = run_sweep(doc, workers, f"team-{workers}")
                rows.append(("team: mlflow server + PostgreSQL", workers, total, phase))
            latency["team: mlflow server (basic-auth)"] = promotion_latency(
                doc["model_name"], version, args.promotions
            )
            artifact = artifact_round_trip(doc["experiment"], root, args.artifact_mb)
            services = stack.status()[0]
        finally:
            started = time.perf_counter()
            stack.down(purge=True)
            down_seconds = time.perf_counter() - started
    _print(args.trials, rows, latency, up_seconds)
    print(
        f"\n{args.artifact_mb} MB artifact through the server: logged in {artifact[0]:.2f}s, "
        f"downloaded in {artifact[1]:.2f}s; team down in {down_seconds:.1f}s"
    )
    print("\n".join(services))


def _print(
    trials: int,
    rows: list[tuple[str, int, float, float]],
    latency: dict[str, tuple[float, float]],
    up_seconds: float,
) -> None:
    print(
        f"\nteam benchmark: {trials}-trial sweep (RandomForest, 3-fold, breast_cancer), "
        f"{os.cpu_count()} cores; team stack up in {up_seconds:.1f}s (cold)"
    )
    print(f"{'store':<34}{'workers':>8}{'seconds':>9}{'trial phase':>13}{'trials/min':>12}")
    for label, workers, total, phase in rows:
        print(f"{label:<34}{workers:>8}{total:>9.1f}{phase:>13.1f}{trials / phase * 60:>12.1f}")
    base = rows[0][3]
    for label, workers, _, phase in rows[1:]:
        print(f"  {label}, {workers} worker(s): {base / phase:.2f}x the embedded trial rate")
    print(f"\n{'promotion latency (median)':<34}{'-> Staging':>12}{'-> Production':>15}")
    for label, (staging, production) in latency.items():
        print(f"{label:<34}{staging:>11.2f}s{production:>14.2f}s")


if __name__ == "__main__":
    main()
