"""The Airflow DAGs under dags/ load in Airflow's own DagBag: daily scoring, daily monitoring.

Airflow is installed into its own environment (``.venv-airflow/``, reused while
its pin matches), never into runway's: it is heavy and pins its own versions.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from runway.cli import build_parser
from tests.conftest import REPO

AIRFLOW = "apache-airflow==3.3.2"
VENV = REPO / ".venv-airflow"


def _airflow_python() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-{AIRFLOW}"
    if not stamp.exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                AIRFLOW,
            ],
            check=True,
        )
        stamp.touch()
    return python


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both DAGs as Airflow's DagBag loads them (one Airflow run for the module)."""
    python = _airflow_python()
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))},
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    }
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("airflow_dagbag.py")), str(REPO / "dags")],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["import_errors"] == {}
    assert sorted(doc["dags"]) == ["runway_monitor", "runway_score"]
    return doc["dags"]


def _args(rendered: str) -> argparse.Namespace:
    argv = shlex.split(rendered.split(";")[0])
    assert argv[0] == "runway"
    return build_parser().parse_args(argv[1:])  # the command the task runs is a valid one


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_scoring_dag_loads_in_airflow_and_runs_runway_score_daily(loaded):
    dag = loaded["runway_score"]
    assert dag["schedule"] == "@daily" and dag["catchup"] is False
    [(name, task)] = dag["tasks"].items()
    assert name == "score" and task["operator"] == "BashOperator" and task["retries"] >= 1
    args = _args(task["rendered"])
    assert (args.command, args.model, args.stage) == (
        "score",
        "breast-cancer-classifier",
        "Production",
    )
    assert args.input == "s3://runway-batch/incoming/2026-01-02.parquet"
    assert args.output == "s3://runway-batch/scores/2026-01-02.parquet"
    assert args.scored_at == "2026-01-02T00:00:00+00:00"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_monitoring_dag_retrains_only_when_monitor_exits_10(loaded, tmp_path):
    dag = loaded["runway_monitor"]
    assert dag["schedule"] == "@daily" and dag["catchup"] is False
    monitor, retrain = dag["tasks"]["monitor"], dag["tasks"]["retrain"]
    assert monitor["downstream"] == ["retrain"] and retrain["downstream"] == []
    args = _args(monitor["rendered"])
    assert (args.command, args.model, args.window, args.no_action) == (
        "monitor",
        "breast-cancer-classifier",
        "1d",
        True,
    )
    assert args.since == "2026-01-02T00:00:00+00:00"
    args = _args(retrain["rendered"])
    assert (args.command, args.reason, args.trigger_run) == ("retrain", "monitoring", "latest")
    # The task's shell maps runway's exit codes: 10 -> run retrain, 0 -> skip it, 11 -> fail.
    skip = monitor["skip_on_exit_code"]
    skip = skip[0] if isinstance(skip, list) else skip
    tail = monitor["rendered"].split(";", 1)[1]
    for runway_exit, task_exit in ((10, 0), (0, skip), (11, 11)):
        proc = subprocess.run(["bash", "-c", f"(exit {runway_exit}); {tail}"], cwd=tmp_path)
        assert proc.returncode == task_exit, (runway_exit, proc.returncode)


@pytest.mark.parametrize("dag", ["runway_score.py", "runway_monitor.py"])
def test_dag_files_do_not_import_runway(dag):
    tree = ast.parse((REPO / "dags" / dag).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "runway"}
