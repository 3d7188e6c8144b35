"""The runs table's first view in the MLflow UI: the columns a person compares on arrival.

MLflow 3.17's UI opens an experiment's runs table with no metric or param
columns. It has one hook a link can carry: a *shared view*, an experiment tag
``mlflow.sharedViewState.<key>`` holding the table's state as JSON (its sort,
its ``selectedColumns``), applied when the URL says ``viewStateShareKey=<key>``
(the UI's own "Share" button writes the same tag). runway keeps one such view per
experiment, ``runway``, and the runs-table link it prints names it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from runway.store.tracking import MAX_TAG_CHARS, client

VIEW_KEY = "runway"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
_DEFAULT_COLUMNS = ["attributes.`Models`", "attributes.`Dataset`"]
_MAX_COLUMNS = 30


def column(kind: str, name: str) -> str:
    """A runs-table column as the UI names it (``metrics.`cv_roc_auc```)."""
    return f"{kind}.`{name}`"


def pin_runs_view(
    experiment_id: str,
    metrics: Sequence[str],
    params: Sequence[str],
    order_by: str,
    ascending: bool,
) -> None:
    """Show ``metrics`` and ``params`` (added to those already pinned) sorted by ``order_by``.

    Several specs may share an experiment: columns accumulate (up to 30), the
    sort is the latest spec's primary metric.
    """
    mlflow_client = client()
    current = mlflow_client.get_experiment(experiment_id).tags.get(VIEW_TAG)
    pinned: list[str] = []
    if current:
        try:
            pinned = [str(c) for c in json.loads(current).get("selectedColumns", [])]
        except (ValueError, AttributeError):
            pinned = []
    wanted = [column("metrics", m) for m in metrics] + [column("params", p) for p in params]
    columns = list(dict.fromkeys([*(pinned or _DEFAULT_COLUMNS), *wanted]))[:_MAX_COLUMNS]
    view = {
        "orderByKey": column("metrics", order_by),
        "orderByAsc": ascending,
        "selectedColumns": columns,
    }
    text = json.dumps(view)
    if text != current and len(text) <= MAX_TAG_CHARS:
        mlflow_client.set_experiment_tag(experiment_id, VIEW_TAG, text)
