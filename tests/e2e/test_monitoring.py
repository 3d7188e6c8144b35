"""The loop closed, as an operator runs it: serve, score, monitor, retrain, nothing reaches Production.

A model is trained and promoted; `runway serve` (real `mlflow models serve`
backends) answers single-row requests and `runway score` scores a batch, both
with two named features shifted; `runway monitor` runs as a command. Then a
window of the same size without shift, and labels that degrade the live metric.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from sklearn.datasets import load_breast_cancer

from runway.store.predlog import read_predictions
from tests.conftest import REPO_PYTHONPATH
from tests.helpers import free_port, ship, stop_process_group, wait_http

pytestmark = pytest.mark.slow

MODEL = "cancer-loop"
SHIFTED = ("mean radius", "worst texture")
SPEC = {
    "experiment": "loop-tests",
    "task": "classification",
    "model_name": MODEL,
    "data": {"source": "sklearn:breast_cancer", "target": "target"},
    "estimator": {"name": "LogisticRegression", "params": {"max_iter": 2000}},
    "split": {"holdout": 0.25, "cv_folds": 3, "seed": 2},
    "metrics": ["roc_auc", "accuracy"],
    "primary_metric": {"name": "roc_auc"},
}


def _rows(n: int, seed: int, shift: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    rows = frame.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for column in shift:
        rows[column] = rows[column] + 3 * frame[column].std()
    return rows


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("loop")
    ship(root, SPEC)
    policy_path = root / "registry" / f"{MODEL}.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    policy["monitor"] = {
        "min_rows": 200,
        "features": {"drift_share": 0.05},
        "action": "retrain",
    }
    policy_path.write_text(yaml.safe_dump(policy))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        # this tree's code, even where the venv's editable install points at another checkout
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    port = free_port()
    with open(root / "serve.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", proc, timeout=180)
        yield root, env, f"http://127.0.0.1:{port}", proc
    finally:
        stop_process_group(proc)


def _runway(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runway", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _serve(url: str, rows: pd.DataFrame, prefix: str) -> None:
    """One request per row, each with its own request id (what labels would be keyed by)."""
    features = rows.drop(columns="target")
    with requests.Session() as session:
        for i, record in enumerate(json.loads(features.to_json(orient="records"))):
            answer = session.post(
                f"{url}/invocations",
                json={"dataframe_records": [record]},
                headers={"X-Request-Id": f"{prefix}-{i}"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text


def _log_rows(root: Path, request_prefix: str, n: int) -> None:
    """Wait for the gateway's background writer to flush what was served."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logged = read_predictions(MODEL, str(root / "predictions"))
        if logged["request_id"].astype(str).str.startswith(request_prefix).sum() >= n:
            return
        time.sleep(0.3)
    raise AssertionError(f"{n} served rows did not reach the prediction log")


def _client(env: dict) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"], env["MLFLOW_TRACKING_URI"])


def test_a_shifted_window_is_flagged_reported_and_retrained_up_to_staging(loop):
    root, env, url, _ = loop
    served = _rows(150, seed=11, shift=SHIFTED)
    _serve(url, served, "shifted")
    bad = json.loads(served.drop(columns="target").head(3).to_json(orient="records"))
    for i, record in enumerate(bad):
        record["mean area"] = "n/a"
        refused = requests.post(
            f"{url}/invocations",
            json={"dataframe_records": [record]},
            headers={"X-Request-Id": f"shifted-bad-{i}"},
            timeout=30,
        )
        assert refused.status_code == 422
    batch = _rows(250, seed=12, shift=SHIFTED)
    batch.insert(0, "id", range(len(batch)))
    batch.drop(columns="target").to_parquet(root / "batch.parquet", index=False)
    scored = _runway(
        root,
        env,
        "-q",
        "score",
        MODEL,
        "--input",
        "batch.parquet",
        "--output",
        "scores.parquet",
        "--key-column",
        "id",
    )
    assert scored.returncode == 0, scored.stderr
    _log_rows(root, "shifted", len(served) + len(bad))

    monitored = _runway(root, env, "monitor", MODEL, "--window", "1h")

    assert monitored.returncode == 10, monitored.stderr  # threshold crossed
    out = monitored.stdout
    drifted = {
        line.split()[0] + " " + line.split()[1]
        for line in out.splitlines()
        if " DRIFT " in line and "numeric" in line
    }
    assert drifted == set(SHIFTED)
    assert "400 scored, 3 rejected" in out  # served and batch rows alike, refused ones too
    assert "class probabilities of 150 served rows computed by monitor" in out
    report = Path(root / re.search(r"^report\s+(\S+)", out, re.M).group(1))
    page = report.read_text()
    assert "threshold crossed" in page and all(name in page for name in SHIFTED)
    assert "column &#x27;mean area&#x27;: expected a number" in page  # the rejection reasons
    assert not re.search(r"""(src|href)=["']https?://|@import|url\(https?:""", page)  # offline
    client = _client(env)
    experiment = client.get_experiment_by_name("runway-monitoring")
    [window] = client.search_runs([experiment.experiment_id])
    assert window.data.tags["runway.monitor.outcome"] == "crossed"
    assert {a.path for a in client.list_artifacts(window.info.run_id)} >= {
        "report.html",
        "summary.json",
    }
    # action: retrain -> a new version, tagged with its trigger, in Staging; Production untouched
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert versions["2"].tags["runway.retrain.trigger_run"] == window.info.run_id
    assert versions["2"].tags["runway.retrain.reason"] == "monitoring"
    assert versions["2"].current_stage == "Staging"
    assert versions["1"].current_stage == "Production"
    status = _runway(root, env, "registry", "status", MODEL, "--json")
    production = [r for r in json.loads(status.stdout) if r["stage"] == "Production"]
    assert [r["version"] for r in production] == ["1"]


def test_a_window_of_the_same_size_without_shift_is_healthy(loop):
    root, env, url, _ = loop
    # A later window: its own hour, nothing shifted.
    served = _rows(150, seed=21)
    _serve(url, served, "steady")
    batch = _rows(250, seed=22)
    batch.insert(0, "id", [f"s{i}" for i in range(len(batch))])
    batch.drop(columns="target").to_parquet(root / "steady.parquet", index=False)
    scored = _runway(
        root,
        env,
        "-q",
        "score",
        MODEL,
        "--input",
        "steady.parquet",
        "--output",
        "steady-scores.parquet",
        "--key-column",
        "id",
    )
    assert scored.returncode == 0, scored.stderr
    _log_rows(root, "steady", len(served))
    since = read_predictions(MODEL, str(root / "predictions"))
    start = since.loc[since["request_id"].astype(str).str.startswith("steady"), "timestamp"].min()
    before = len(_client(env).search_model_versions(f"name = '{MODEL}'"))

    monitored = _runway(root, env, "monitor", MODEL, "--since", start.isoformat(), "--window", "1h")

    assert monitored.returncode == 0, monitored.stdout + monitored.stderr
    assert " DRIFT " not in monitored.stdout and "CROSSED" not in monitored.stdout
    assert len(_client(env).search_model_versions(f"name = '{MODEL}'")) == before

    # Labels joined by key (served request ids, batch ids): a degraded live metric is reported.
    keys = [f"steady-{i}" for i in range(len(served))] + batch["id"].tolist()
    truth = np.concatenate([served["target"].to_numpy(), batch["target"].to_numpy()])
    flip = np.random.default_rng(1).random(len(truth)) < 0.4
    pd.DataFrame({"key": keys, "target": np.where(flip, 1 - truth, truth)}).to_csv(
        root / "labels.csv", index=False
    )
    judged = _runway(
        root,
        env,
        "monitor",
        MODEL,
        "--since",
        start.isoformat(),
        "--window",
        "1h",
        "--labels",
        "labels.csv",
        "--no-action",
    )
    assert judged.returncode == 10, judged.stdout + judged.stderr
    assert re.search(
        r"CROSSED\s+performance: live roc_auc 0\.\d+ below the floor", judged.stdout
    ), judged.stdout
    assert re.search(
        r"live roc_auc 0\.\d+ \(holdout 0\.\d+, 400 labels\): BELOW FLOOR", judged.stdout
    ), judged.stdout
