"""Airflow DAG: score the day's input file with the Production model, once a day.

One task runs ``runway score`` (the CLI, on the worker's PATH or at
``RUNWAY_BIN``); this file does not import runway, so Airflow's scheduler does
not need runway's dependencies to parse it. Scoring is idempotent by output
path and ``--scored-at`` is the run's logical time, so a retried or re-run day
writes the same files again. Exit 7 (too many rejected rows, or an input runway
cannot score) fails the task; the rejects file next to the output says why.

Set per deployment, as Airflow Variables (read when the task runs, not when the
DAG is parsed) or by editing the defaults below:

- ``runway_score_model``   registered model (default ``breast-cancer-classifier``)
- ``runway_score_input``   input URI; ``{ds}`` becomes the run's date
- ``runway_score_output``  output URI; ``{ds}`` likewise

The worker's environment supplies ``MLFLOW_TRACKING_URI`` and, for S3, the
AWS credentials and ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

try:  # Airflow 3: the task SDK
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2 without the standard provider
    from airflow.operators.bash import BashOperator

RUNWAY = os.environ.get("RUNWAY_BIN", "runway")
DEFAULTS = {
    "model": "breast-cancer-classifier",
    "input": "s3://runway-batch/incoming/{ds}.parquet",
    "output": "s3://runway-batch/scores/{ds}.parquet",
}


def _var(name: str) -> str:
    """A Jinja expression: the Airflow Variable ``runway_score_<name>``, else the default."""
    return (
        f"{{{{ var.value.get('runway_score_{name}', '{DEFAULTS[name]}') "
        "| replace('{ds}', ds) }}"
    )


with DAG(
    dag_id="runway_score",
    description="Batch-score the day's file with the Production model (runway score)",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10), "owner": "runway"},
    tags=["runway", "batch-scoring"],
) as dag:
    BashOperator(
        task_id="score",
        bash_command=(
            f"{RUNWAY} -q score {_var('model')} "
            f"--input {_var('input')} --output {_var('output')} "
            "--stage Production --scored-at {{ ts }}"
        ),
        append_env=True,
    )
