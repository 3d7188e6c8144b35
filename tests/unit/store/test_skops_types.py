"""The skops trusted-type list comes from a skeleton: it must equal a full dump's."""

from __future__ import annotations

import pytest
import skops.io
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runway.store.models import skops_trusted_types


def _full_dump_types(model) -> list[str]:
    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=20, random_state=0),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        KNeighborsClassifier(),
        VotingClassifier(
            [
                ("lr", LogisticRegression()),
                ("rf", RandomForestClassifier(n_estimators=5, random_state=0)),
                ("knn", KNeighborsClassifier(algorithm="kd_tree")),
            ]
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_skeleton_types_equal_full_dump(estimator):
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    model = make_pipeline(StandardScaler(), estimator).fit(X, y)
    members_before = len(getattr(model[-1], "estimators_", []))

    assert skops_trusted_types(model) == _full_dump_types(model)
    # The skeleton is a copy: the fitted model keeps every member.
    assert len(getattr(model[-1], "estimators_", [])) == members_before


def test_tree_types_are_named():
    X, y = make_classification(n_samples=60, random_state=0)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    assert "sklearn.tree._tree.Tree" in skops_trusted_types(forest)


def test_a_missed_type_falls_back_to_the_full_dump(monkeypatch, mlflow_store):
    """Should the skeleton ever miss a type, MLflow's load-back says so and we recover."""
    import mlflow
    import pandas as pd

    from runway.store import models

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame, y)
    monkeypatch.setattr(models, "skops_trusted_types", lambda model: [])

    with mlflow.start_run():
        uri = models.log_sklearn_model(forest, frame)

    flavor = mlflow.models.get_model_info(uri).flavors["sklearn"]
    assert "sklearn.tree._tree.Tree" in flavor["skops_trusted_types"]
    assert (mlflow.sklearn.load_model(uri).predict(frame) == forest.predict(frame)).all()


def test_a_model_off_runways_allow_list_is_warned_about_at_training_time(caplog):
    X, y = make_classification(n_samples=60, random_state=0)
    voting = VotingClassifier([("lr", LogisticRegression()), ("knn", KNeighborsClassifier())])
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    skops_trusted_types(plain)
    assert "allow-list" not in caplog.text
    skops_trusted_types(make_pipeline(StandardScaler(), voting).fit(X, y))
    assert "off runway's allow-list (" in caplog.text
    assert "sklearn.ensemble._voting.VotingClassifier" in caplog.text
