"""Run inside the Airflow venv (not runway's): load dags/ with Airflow's DagBag, print JSON.

Used by test_airflow_dag.py; Airflow is too heavy for runway's own environment.
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
dag = bag.dags.get("runway_score")
task = dag.get_task("score") if dag else None


class _Values:
    def get(self, name, default=None):
        return default


rendered = None
if task is not None:
    env = dag.get_template_env()
    rendered = env.from_string(task.bash_command).render(
        ds="2026-01-02", ts="2026-01-02T00:00:00+00:00", var={"value": _Values()}
    )
print(
    json.dumps(
        {
            "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dag_ids": sorted(bag.dags),
            "schedule": str(getattr(dag, "schedule", None)),
            "tasks": [t.task_id for t in dag.tasks] if dag else [],
            "operator": type(task).__name__ if task else None,
            "rendered": rendered,
            "catchup": getattr(dag, "catchup", None),
            "retries": getattr(task, "retries", None),
        }
    )
)
