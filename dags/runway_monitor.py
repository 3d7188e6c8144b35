"""Airflow DAG: judge yesterday's predictions of the Production model; retrain when the policy says so.

Two tasks run the CLI (``runway``, on the worker's PATH or at ``RUNWAY_BIN``);
this file does not import runway, so Airflow's scheduler does not need its
dependencies to parse it:

- ``monitor``: ``runway monitor MODEL --since <data interval start> --window 1d
  --no-action``. Its exit code decides what follows: 10 (a policy threshold
  crossed, as many windows as the policy's trigger asks) lets ``retrain`` run;
  0 (healthy) is turned into Airflow's skip code, so ``retrain`` is skipped;
  11 (the window could not be judged: too few rows, no reference) and any other
  failure fail the task, and nothing is retrained.
- ``retrain``: ``runway retrain MODEL --reason monitoring --trigger-run latest``:
  the version's spec on fresh data, registered and put through the Staging
  gates. Production waits for the reviewer the policy names.

Set per deployment, as Airflow Variables (read when the task runs) or by
editing the default below: ``runway_monitor_model`` (default
``breast-cancer-classifier``). The worker's environment supplies
``MLFLOW_TRACKING_URI`` and ``RUNWAY_PREDICTION_LOG``.
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
MODEL = "{{ var.value.get('runway_monitor_model', 'breast-cancer-classifier') }}"
SKIP = 99  # BashOperator's skip_on_exit_code

with DAG(
    dag_id="runway_monitor",
    description="Judge yesterday's prediction log against the policy; retrain on exit 10",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10), "owner": "runway"},
    tags=["runway", "monitoring"],
) as dag:
    monitor = BashOperator(
        task_id="monitor",
        bash_command=(
            f"{RUNWAY} -q monitor {MODEL} --since '{{{{ data_interval_start }}}}' --window 1d "
            f"--no-action; rc=$?; if [ $rc -eq 10 ]; then exit 0; "
            f"elif [ $rc -eq 0 ]; then exit {SKIP}; else exit $rc; fi"
        ),
        skip_on_exit_code=SKIP,
        append_env=True,
    )
    retrain = BashOperator(
        task_id="retrain",
        bash_command=f"{RUNWAY} -q retrain {MODEL} --reason monitoring --trigger-run latest",
        append_env=True,
    )
    monitor >> retrain
