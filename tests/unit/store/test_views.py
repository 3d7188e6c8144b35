"""The runs table's first view (issue 29, item 1): the link runway prints opens on the
spec's metrics and the searched params, through MLflow's shared-view experiment tag."""

from __future__ import annotations

import json

from runway.settings import get_settings
from runway.store import tracking, views


def test_the_printed_link_names_a_view_with_the_metric_and_params_columns(mlflow_store, client):
    experiment_id = tracking.ensure_experiment("views", get_settings())
    first = [views.column("metrics", "cv_roc_auc"), views.column("params", "model__C")]
    views.pin_runs_view(experiment_id, first)
    second = [views.column("metrics", "cv_roc_auc"), views.column("params", "estimator")]
    views.pin_runs_view(experiment_id, second)

    url = tracking.experiment_url(experiment_id, "http://ui:5000")
    assert url.endswith("&viewStateShareKey=runway")
    tag = client.get_experiment(experiment_id).tags["mlflow.sharedViewState.runway"]
    view = json.loads(tag)
    assert "orderByKey" not in view  # sorted by a metric, a sweep's trials list flat
    # A second spec's columns join the first's, once each.
    columns = view["selectedColumns"]
    assert columns.count("metrics.`cv_roc_auc`") == 1
    assert {"params.`model__C`", "params.`estimator`"} <= set(columns)
