"""The ONNX version over real HTTP: `mlflow models serve` of it, and `runway serve` of it.

One store per module: churn (HistGradientBoosting) v1 trained and promoted,
its twin v2 made by `runway onnx convert` and promoted through the same gates. The
twin must answer every input format exactly as v1 answers in process, and its
scoring server must not load scikit-learn.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import yaml

from runway.team.procs import tree
from tests.conftest import EXPERIMENTS, REPO, REPO_PYTHONPATH
from tests.helpers import free_port, ship, stop_process_group, wait_http

pytestmark = pytest.mark.slow

MODEL = "churn-classifier"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("twin")
    (root / "data").mkdir()
    (root / "data" / "churn.csv").write_bytes((REPO / "data" / "churn.csv").read_bytes())
    doc = yaml.safe_load((EXPERIMENTS / "churn.yaml").read_text())
    doc["data"]["source"] = str(root / "data" / "churn.csv")
    doc["estimator"]["params"]["max_iter"] = 30
    doc["split"]["cv_folds"] = 2
    _, version, _ = ship(root, doc, reviewer="alice")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": "off",
        # `mlflow models serve` execs `uvicorn` from PATH
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "RUNWAY_SERVE_POLL_SECONDS": "1",
        "RUNWAY_SERVE_CACHE_ENTRIES": "1000",
        "PYTHONPATH": REPO_PYTHONPATH,
    }

    def runway(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "runway", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    runway("onnx", "convert", MODEL, version)
    runway("registry", "promote", MODEL, "2", "--to", "Staging")
    runway("registry", "promote", MODEL, "2", "--to", "Production", "--reviewer", "alice")
    frame = pd.read_csv(REPO / "data" / "churn.csv").drop(columns=["churned", "customer_id"])
    rows = frame[frame.isna().any(axis=1)].head(6)  # missing values, numeric and categorical
    rows = pd.concat([rows, frame.head(6)]).reset_index(drop=True)
    rows = rows.astype({"tenure_months": "float64", "support_calls": "float64"})
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}").predict(rows).tolist()
    return root, env, rows, expected


def _formats(rows: pd.DataFrame) -> dict[str, tuple[bytes, str]]:
    records = json.loads(rows.to_json(orient="records"))
    columns = list(rows.columns)
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
    parquet = io.BytesIO()
    rows.to_parquet(parquet, index=False)
    return {
        "dataframe_split": (json.dumps({"dataframe_split": split}).encode(), "application/json"),
        "dataframe_records": (
            json.dumps({"dataframe_records": records}).encode(),
            "application/json",
        ),
        "instances": (json.dumps({"instances": records}).encode(), "application/json"),
        "inputs": (
            json.dumps({"inputs": {c: [r[c] for r in records] for c in columns}}).encode(),
            "application/json",
        ),
        "csv": (rows.to_csv(index=False).encode(), "text/csv"),
        "parquet": (parquet.getvalue(), "application/vnd.apache.parquet"),
    }


def _maps_sklearn(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if "/sklearn/" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def test_mlflow_models_serve_scores_the_twin_without_scikit_learn(store):
    root, env, rows, expected = store
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}/2",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=(root / "mlflow-serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", proc, timeout=180)
        body, kind = _formats(rows)["dataframe_split"]
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": kind},
            timeout=30,
        )
        assert answer.json() == {"predictions": expected}
        assert not _maps_sklearn(tree(proc.pid))
    finally:
        stop_process_group(proc)


def _serve(root: Path, env: dict[str, str], log_name: str) -> tuple[subprocess.Popen, str]:
    """``runway serve`` of the store's Production version, in its own session: (process, URL)."""
    port = free_port()
    command = [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(port)]
    with open(root / log_name, "wb") as log:
        proc = subprocess.Popen(
            [*command, "--log-dir", str(root / "logs")],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"


def test_runway_serve_of_the_twin_answers_like_the_source_for_every_format(store):
    root, env, rows, expected = store
    proc, url = _serve(root, env, "serve.log")
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        for _ in range(2):  # the second round is answered from the cache (JSON formats)
            for name, (body, kind) in _formats(rows).items():
                answer = requests.post(
                    f"{url}/invocations", data=body, headers={"Content-Type": kind}, timeout=30
                )
                assert answer.status_code == 200, (name, answer.text)
                assert answer.headers["X-Runway-Model-Version"] == "2"
                assert answer.json() == {"predictions": expected}, name
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        hits = next(x for x in metrics.splitlines() if x.startswith("runway_cache_hits_total "))
        assert float(hits.split()[1]) >= 4 * len(rows)
        assert not _maps_sklearn(tree(proc.pid)[1:])  # the backends: the gateway is runway
    finally:
        stop_process_group(proc)


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat fields after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _memory(pid: int, field: str) -> int:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return next(int(x.split()[1]) for x in rollup.splitlines() if x.startswith(f"{field}:"))


def _running(pid: int) -> bool:
    try:
        return _stat(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def test_backends_forked_from_one_zygote_share_pages_and_die_with_the_gateway(store):
    """Two backends, forked and adopted: the gateway's children, in their own groups, sharing
    most of their pages; a gateway killed with SIGKILL still takes them down."""
    root, env, _, _ = store
    proc, url = _serve(root, env, "serve-kill.log")
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        backends = tree(proc.pid)[1:]
        assert len(backends) == 2, backends  # the zygote itself has exited
        for pid in backends:
            _, ppid, pgrp = _stat(pid)[:3]
            assert int(ppid) == proc.pid and int(pgrp) == pid
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"runway.store.scoring_app:app" in command  # MLflow's app + the proba route
            # separately started backends share only their libraries (PSS ~0.75 of RSS)
            assert _memory(pid, "Pss") < 0.7 * _memory(pid, "Rss"), pid
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in backends) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(pid) for pid in backends), "a backend outlived a killed gateway"
    finally:
        stop_process_group(proc)


def test_a_model_whose_load_starts_threads_is_loaded_by_each_backend(store):
    """Backends are forked after the zygote loaded the model, unless the load started threads
    (onnxruntime's pool with RUNWAY_ONNX_THREADS=2), which a fork would leave behind: then the
    zygote starts over without the model, each backend loads it, and the answers are the same."""
    root, env, rows, expected = store
    proc, url = _serve(root, {**env, "RUNWAY_ONNX_THREADS": "2"}, "serve-threads.log")
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        for name, (body, kind) in _formats(rows).items():
            answer = requests.post(
                f"{url}/invocations", data=body, headers={"Content-Type": kind}, timeout=30
            )
            assert answer.json() == {"predictions": expected}, name
        assert len(tree(proc.pid)[1:]) == 2
        logs = "".join(p.read_text() for p in (root / "logs").glob("backend-*.log"))
        assert "loading the model started 1 thread(s); each backend loads it" in logs
    finally:
        stop_process_group(proc)


def _proba_answers(url: str, rows: pd.DataFrame, version: str) -> list[pd.DataFrame]:
    """``?proba=true`` in every request format, each answer as a frame of proba_<class> columns."""
    frames = []
    for name, (body, kind) in _formats(rows).items():
        answer = requests.post(
            f"{url}/invocations?proba=true", data=body, headers={"Content-Type": kind}, timeout=30
        )
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["X-Runway-Model-Version"] == version, name
        frames.append(pd.DataFrame(answer.json()["probabilities"]))
    return frames


def test_probabilities_agree_over_rest_batch_and_the_twin(store):
    """The same rows' class probabilities from `runway score` (the source version v1 and its
    twin v2), from `runway serve ?proba=true` of the twin (Production), then of v1 once it is
    rolled back to, in every request format: the same columns in the same order, the source's
    numbers exactly as batch's, the twin's within the parity tolerance. Run last: it rolls back."""
    from runway.core.onnx.parity import TOLERANCE

    root, env, rows, _ = store
    rows.to_csv(root / "proba-rows.csv", index=False)
    batch = {}
    for version in ("1", "2"):
        subprocess.run(
            [sys.executable, "-m", "runway", "score", MODEL, "--version", version,
             "--input", "proba-rows.csv", "--output", f"proba-{version}.csv"],
            cwd=root, env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        out = pd.read_csv(root / f"proba-{version}.csv")
        batch[version] = out[[c for c in out.columns if c.startswith("proba_")]]
    source, twin = batch["1"], batch["2"]
    assert list(source.columns) == list(twin.columns) and len(source.columns) == 2
    pd.testing.assert_frame_equal(twin, source, rtol=TOLERANCE, atol=TOLERANCE)
    proc, url = _serve(root, {**env, "RUNWAY_SERVE_CACHE_ENTRIES": "0"}, "serve-proba.log")
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        for answer in _proba_answers(url, rows, "2"):  # REST of the twin: as its batch
            assert list(answer.columns) == list(twin.columns)
            pd.testing.assert_frame_equal(answer, twin, rtol=1e-12, atol=1e-12)
        runway = [sys.executable, "-m", "runway", "registry", "rollback", MODEL]
        subprocess.run([*runway, "--reviewer", "alice"], cwd=root, env=env, check=True, timeout=300)
        deadline = time.monotonic() + 60
        while (
            requests.get(f"{url}/version", timeout=5).headers.get("X-Runway-Model-Version") != "1"
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        for answer in _proba_answers(url, rows, "1"):  # REST of the source: as its batch
            pd.testing.assert_frame_equal(answer, source, rtol=1e-12, atol=1e-12)
    finally:
        stop_process_group(proc)
