"""What a user does from the README, over real processes: make train, make ui, mlflow run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pytest
from sklearn.datasets import load_breast_cancer

from tests.conftest import REPO
from tests.helpers import free_port, stop_process_group, wait_http, write_spec

pytestmark = pytest.mark.slow
VENV = Path(sys.prefix)


def _project_copy(tmp_path: Path) -> Path:
    """The parts of the repo a user's `make` needs, in a fresh directory."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "MLproject", "experiments", "data", "registry"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, project / name)
    return project


def _user_env() -> dict[str, str]:
    """The environment of a user who has not configured anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNWAY_"))}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_make_train_then_make_ui_on_the_embedded_default(tmp_path):
    project = _project_copy(tmp_path)
    port = free_port()
    proc = subprocess.run(
        [
            "make",
            "train",
            f"VENV={VENV}",
            "INSTALL=",
            "SET=estimator.params.n_estimators=25",
            f"UI_PORT={port}",
        ],
        cwd=project,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = re.search(r"^run ([0-9a-f]{32}) FINISHED", proc.stdout, re.M).group(1)
    assert "holdout_roc_auc" in proc.stdout and "(primary, maximize)" in proc.stdout
    assert "make ui" in proc.stdout
    assert (project / "mlflow.db").is_file()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model__n_estimators"] == "25"
    assert {"cv_roc_auc", "holdout_roc_auc"} <= set(run.data.metrics)
    assert run.info.artifact_uri.startswith((project / "mlruns" / "breast-cancer").as_uri())
    assert (project / "mlruns").is_dir()

    env = _user_env()
    printed = tmp_path / "ui.out"
    with open(printed, "wb") as out:
        ui = subprocess.Popen(
            ["make", "ui", f"VENV={VENV}", "INSTALL=", f"UI_PORT={port}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", ui)
        # Light on a 2-core machine: make, the mlflow CLI and one uvicorn worker; no job
        # runner (huey consumers), no telemetry (issue 16: 16 processes and 3.5 GB before).
        session = _session_processes(ui.pid)
        assert len(session) <= 4, session
        assert not [name for name in session if "huey" in name], session
        with urllib.request.urlopen(f"{base}/ajax-api/3.0/mlflow/ui-telemetry", timeout=10) as r:
            assert json.load(r)["disable_ui_telemetry"] is True
        said = printed.read_text()
        runs = f"{base}/#/experiments/{run.info.experiment_id}/runs?workflowType=machine_learning"
        assert "Model training" in said and f"{base}/#/experiments/" in said, said
        assert runs in proc.stdout  # the link `make train` printed, on this port
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert "<html" in resp.read().decode().lower()
        body = json.dumps({"experiment_ids": [run.info.experiment_id]}).encode()
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            runs = json.load(resp)["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]
    finally:
        stop_process_group(ui)


def _session_processes(sid: int) -> list[str]:
    """The command names of the processes in session ``sid`` (what one Ctrl-C stops)."""
    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if int(rest.split()[3]) == sid:
            names.append(name)
    return names


def _mlflow_run(
    tmp_path: Path, store: str, entry: str, params: list[str], experiment: str
) -> subprocess.CompletedProcess:
    """`mlflow run <repo> -e ENTRY` with the local env manager, on this test's store."""
    env = {
        **_user_env(),
        "MLFLOW_TRACKING_URI": store,
        "RUNWAY_ARTIFACT_ROOT": str(tmp_path / "mlruns"),
        "RUNWAY_OPTUNA_STORAGE": str(tmp_path / "optuna.journal"),
    }
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", entry]
    for param in params:
        command += ["-P", param]
    command += ["--env-manager", "local", "--experiment-name", experiment]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_mlproject_train_entry_point(tmp_path, mlflow_store):
    spec = write_spec(tmp_path / "tiny.yaml", experiment="via-mlflow-run")
    proc = _mlflow_run(tmp_path, mlflow_store, "train", [f"spec={spec}"], "via-mlflow-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["via-mlflow-run"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["spec_hash"]
    assert {"cv_roc_auc", "holdout_roc_auc"} <= set(run.data.metrics)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert [m.source_run_id for m in models] == [run.info.run_id]


def test_make_help_lists_every_target():
    proc = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    listed = set(re.findall(r"make (\S+)", proc.stdout))
    assert {"install", "train", "ui", "test", "lint", "help"} <= listed
    declared = set(re.findall(r"^([a-z][a-z_-]*):", (REPO / "Makefile").read_text(), re.M))
    assert declared <= listed


def test_mlproject_sweep_entry_point(tmp_path, mlflow_store):
    space = {"model__C": {"type": "float", "low": 0.01, "high": 10, "log": True}}
    spec = write_spec(
        tmp_path / "tiny.yaml",
        experiment="sweep-via-mlflow-run",
        sweep={"trials": 10, "space": space},
    )
    proc = _mlflow_run(
        tmp_path, mlflow_store, "sweep", [f"spec={spec}", "trials=3"], "sweep-via-mlflow-run"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["sweep-via-mlflow-run"], output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "sweep"]
    assert parent.data.tags["runway.sweep"] == "true"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    client = mlflow.MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    (version,) = client.search_model_versions("name = 'sweep-via-mlflow-run'")
    assert version.tags["sweep_parent_run_id"] == parent.info.run_id


def _make(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", *args, f"VENV={VENV}", "INSTALL="],
        cwd=project,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_sweep_promote_to_production_then_status(tmp_path):
    """The reviewer's journey through the CLI, on the embedded default store."""
    project = _project_copy(tmp_path)
    model = "breast-cancer-classifier"
    trained = _make(project, "train", "SET=estimator.params.n_estimators=25")
    assert trained.returncode == 0, trained.stderr
    swept = _make(project, "sweep", "TRIALS=3")
    assert swept.returncode == 0, swept.stderr
    version = re.search(rf"registered {model} version (\d+)", swept.stdout).group(1)

    staged = _make(project, "promote", f"MODEL={model}", f"VERSION={version}", "STAGE=Staging")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert "holdout roc_auc" in staged.stdout and "result: PASS" in staged.stdout
    assert f"{model} v{version}: None -> Staging" in staged.stdout

    refused = _make(project, "promote", f"MODEL={model}", f"VERSION={version}", "STAGE=Production")
    assert refused.returncode == 2  # make's own code for a failed recipe (README) ...
    assert "error: " in refused.stderr and "--reviewer" in refused.stderr
    assert "Error 6" in refused.stderr  # ... and runway's, in make's message

    shipped = _make(
        project,
        "promote",
        f"MODEL={model}",
        f"VERSION={version}",
        "STAGE=Production",
        "REVIEWER=alice",
        "COMMENT=first champion",
    )
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert "four-eyes" in shipped.stdout and "result: PASS" in shipped.stdout

    status = _make(project, "status", f"MODEL={model}")
    assert status.returncode == 0, status.stderr
    (row,) = [
        line for line in status.stdout.splitlines() if line.startswith(f"{model}  {version} ")
    ]
    assert "Production" in row and "production" in row and "alice" in row and row.endswith("ok")
    history = _make(project, "history", f"MODEL={model}")
    rows = [line for line in history.stdout.splitlines()[1:] if not line.startswith(" ")]
    assert [line.split()[1:6] for line in rows] == [
        ["promote", version, "None", "Staging", "applied"],
        ["promote", version, "Staging", "Production", "refused"],  # no reviewer: audited too
        ["promote", version, "Staging", "Production", "applied"],
    ]
    assert "refused: " in history.stdout and "--reviewer" in history.stdout

    # The service owner serves it; an application scores a row over REST.
    port = free_port()
    server = subprocess.Popen(
        ["make", "-s", "serve", f"MODEL={model}", f"PORT={port}", f"VENV={VENV}", "INSTALL="],
        cwd=project,
        env=_user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", server, timeout=180)
        row = load_breast_cancer(as_frame=True).data.head(1)
        body = json.dumps({"dataframe_records": row.to_dict("records")}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["X-Runway-Model-Version"] == version
            assert json.load(response)["predictions"] in ([0], [1])
    finally:
        stop_process_group(server)
    printed = server.stdout.read()
    assert f"serving {model} v{version} at http://127.0.0.1:{port}/invocations" in printed
