"""Run inside the Airflow venv (not runway's): load dags/ with Airflow's DagBag, print JSON.

Used by test_airflow_dag.py; Airflow is too heavy for runway's own environment.
For every DAG: its schedule and, per task, the operator, the bash command
rendered for a run on 2026-01-02, retries, downstream tasks and skip code.
"""

from __future__ import annotations

import inspect
import json
import sys

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
kwargs = (
    {"include_examples": False}
    if "include_examples" in inspect.signature(DagBag).parameters
    else {}
)
bag = DagBag(dag_folder=sys.argv[1], **kwargs)


class _Values:
    def get(self, name, default=None):
        return default


CONTEXT = {
    "ds": "2026-01-02",
    "ts": "2026-01-02T00:00:00+00:00",
    "data_interval_start": "2026-01-02T00:00:00+00:00",
    "data_interval_end": "2026-01-03T00:00:00+00:00",
    "var": {"value": _Values()},
}


def describe(dag):
    env = dag.get_template_env()
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "operator": type(task).__name__,
            "rendered": env.from_string(task.bash_command).render(**CONTEXT),
            "retries": getattr(task, "retries", None),
            "downstream": sorted(task.downstream_task_ids),
            "skip_on_exit_code": getattr(task, "skip_on_exit_code", None),
        }
    return {
        "schedule": str(getattr(dag, "schedule", None)),
        "catchup": getattr(dag, "catchup", None),
        "tasks": tasks,
    }


print(
    json.dumps(
        {
            "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {dag_id: describe(dag) for dag_id, dag in sorted(bag.dags.items())},
        },
        default=str,
    )
)
