"""The Airflow DAG under dags/ loads in Airflow's own DagBag and runs `runway score` daily.

Airflow is installed into its own environment (``.venv-airflow/``, reused while
its pin matches), never into runway's: it is heavy and pins its own versions.
"""

from __future__ import annotations

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


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_dag_loads_in_airflow_and_runs_runway_score_daily(tmp_path):
    python = _airflow_python()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))},
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    }
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("airflow_dagbag.py")), str(REPO / "dags")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])

    assert loaded["import_errors"] == {}
    assert loaded["dag_ids"] == ["runway_score"]
    assert loaded["schedule"] == "@daily"
    assert loaded["tasks"] == ["score"] and loaded["operator"] == "BashOperator"
    assert loaded["catchup"] is False and loaded["retries"] >= 1
    argv = shlex.split(loaded["rendered"])
    assert argv[0] == "runway"
    args = build_parser().parse_args(argv[1:])  # the command the task runs is a valid one
    assert (args.command, args.model, args.stage) == (
        "score",
        "breast-cancer-classifier",
        "Production",
    )
    assert args.input == "s3://runway-batch/incoming/2026-01-02.parquet"
    assert args.output == "s3://runway-batch/scores/2026-01-02.parquet"
    assert args.scored_at == "2026-01-02T00:00:00+00:00"


def test_dag_file_does_not_import_runway():
    tree = ast.parse((REPO / "dags" / "runway_score.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "runway"}
