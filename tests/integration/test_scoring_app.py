"""The backend's probability route (runway.store.scoring_app) on real MLflow models, in process.

MLflow's own app plus ``POST /runway/proba``: the same parsing and schema
enforcement as ``/invocations``, each row answered as ``[label, {class: p}]``
with the model's own ``predict`` and ``predict_proba``.
"""

from __future__ import annotations

import io
import json

import mlflow
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from mlflow.models import infer_signature
from mlflow.pyfunc import scoring_server
from sklearn.linear_model import LinearRegression, LogisticRegression

from runway.store.scoring_app import build
from runway.store.served import PROBA_ROUTE

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
Y = np.array(["no", "no", "no", "yes", "yes", "yes"])


def _client(tmp_path, estimator) -> TestClient:
    path = tmp_path / "model"
    mlflow.sklearn.save_model(estimator, path, signature=infer_signature(X, Y))
    return TestClient(build(scoring_server.load_model_with_mlflow_config(str(path))))


def test_a_classifier_answers_labels_and_probabilities_by_class(tmp_path):
    model = LogisticRegression().fit(X, Y)
    client = _client(tmp_path, model)
    parquet = io.BytesIO()
    X.to_parquet(parquet, index=False)
    bodies = [
        (json.dumps({"inputs": X.to_dict("list")}), "application/json"),
        (parquet.getvalue(), "application/vnd.apache.parquet"),
    ]
    expected = model.predict_proba(X)
    for body, kind in bodies:
        answer = client.post(PROBA_ROUTE, content=body, headers={"Content-Type": kind})
        assert answer.status_code == 200, answer.text
        rows = answer.json()["predictions"]
        assert [label for label, _ in rows] == model.predict(X).tolist()
        got = np.array([[p["no"], p["yes"]] for _, p in rows])
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    plain = client.post(
        "/invocations", content=bodies[0][0], headers={"Content-Type": "application/json"}
    )
    assert plain.json() == {"predictions": model.predict(X).tolist()}  # MLflow's route as it was


def test_a_regressor_is_refused_and_a_bad_body_is_a_clean_400(tmp_path):
    client = _client(tmp_path, LinearRegression().fit(X, (Y == "yes").astype(float)))
    body = json.dumps({"inputs": X.to_dict("list")})
    answer = client.post(PROBA_ROUTE, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "this model gives no probabilities"
    classifier = _client(tmp_path / "c", LogisticRegression().fit(X, Y))
    answer = classifier.post(
        PROBA_ROUTE,
        content=b'{"inputs": {"a": [1.0]}}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and answer.json()["error_code"] == "BAD_REQUEST"
    assert "Traceback" not in answer.text
