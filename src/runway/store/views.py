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
_MAX_COLUMNS = 30


def column(kind: str, name: str) -> str:
    """A runs-table column as the UI names it (``metrics.`cv_roc_auc```)."""
    return f"{kind}.`{name}`"


def pin_runs_view(experiment_id: str, columns: Sequence[str]) -> None:
    """Show ``columns`` (:func:`column` names, added to those already pinned).

    Several specs may share an experiment: columns accumulate (up to 30). No sort
    is pinned: sorted by a metric, the UI lists a sweep's trials flat beside their
    parent instead of nested under it.
    """
    mlflow_client = client()
    current = mlflow_client.get_experiment(experiment_id).tags.get(VIEW_TAG)
    pinned: list[str] = []
    if current:
        try:
            pinned = [str(c) for c in json.loads(current).get("selectedColumns", [])]
        except (ValueError, AttributeError):
            pinned = []
    selected = list(dict.fromkeys([*pinned, *columns]))[:_MAX_COLUMNS]
    view = {"selectedColumns": selected}
    text = json.dumps(view)
    if text != current and len(text) <= MAX_TAG_CHARS:
        mlflow_client.set_experiment_tag(experiment_id, VIEW_TAG, text)
