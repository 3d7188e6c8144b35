"""An ONNX twin's lean routes (``/runway/twin``, ``/runway/twin/proba``) against MLflow's own.

A real twin per estimator kind (``runway onnx convert``'s job on a version trained
on the delivery table: numbers with gaps, whole numbers, booleans with gaps, ISO
timestamps with gaps, categories with gaps and a name with a space), loaded as a
backend loads it. Generated rows go through the gateway's own parse, contract
check and canonical body; the lean routes must answer exactly what
``/invocations`` and ``/runway/proba`` answer, and what the source version
scores in process. A body the lean route cannot read is a 4xx, never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.pyfunc import scoring_server

from runway.core.columns.contract import check_records
from runway.core.columns.input_policy import InputPolicy
from runway.serving import payload
from runway.serving.canonical import canonical
from runway.store.models import signature_inputs
from runway.store.scoring_app import build
from runway.store.served import PROBA_ROUTE, TWIN_PROBA_ROUTE, TWIN_ROUTE
from runway.store.tracking import load_contract
from tests.helpers import delivery_frame, delivery_spec, ship

CLASSIFIER = {
    "task": "classification",
    "data": {"target": "late", "features": "infer", "drop": ["minutes"]},
    "metrics": ["roc_auc"],
    "primary_metric": {"name": "roc_auc"},
}
KINDS = {
    "ridge": {},
    "logistic": {**CLASSIFIER, "estimator": {"name": "LogisticRegression", "params": {}}},
    "forest": {  # labels from probabilities (ties to the first class)
        **CLASSIFIER,
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 12}},
        "preprocessing": {"categorical": {"encode": "ordinal"}},
    },
}
FEATURES = ["distance_km", "items", "express", "ordered_at", "zone", "courier id"]


Twin = tuple[Any, TestClient, Any, dict[str, str]]


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Twin]:
    """Each kind's twin, made once per module (a train, a conversion: seconds each)."""
    made: dict[str, Twin] = {}

    def get(kind: str) -> Twin:
        if kind not in made:
            made[kind] = _twin(tmp_path_factory.mktemp(kind), KINDS[kind])
        return made[kind]

    return get


def _twin(root: Path, changes: dict[str, Any]) -> Twin:
    """(source pipeline, a backend app on the twin, the contract, the signature's types)."""
    from runway.jobs.onnx import lighten

    data = root / "delivery.csv"
    delivery_frame(400, seed=1, boolean_gaps=True).to_csv(data, index=False)
    spec = {**delivery_spec(data), **changes}
    spec["data"] = {**spec["data"], "source": str(data)}
    settings, version, run_id = ship(root, spec)
    made = lighten("delivery", version, settings)
    source = mlflow.sklearn.load_model(f"models:/delivery/{version}")
    twin_dir = Path(mlflow.artifacts.download_artifacts(f"models:/delivery/{made.twin.version}"))
    app = build(scoring_server.load_model_with_mlflow_config(str(twin_dir)))
    return source, TestClient(app), load_contract(run_id), signature_inputs(twin_dir)


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows with gaps in every kind, as a client sends them (JSON records)."""
    frame = delivery_frame(n, seed=seed, boolean_gaps=True)[FEATURES]
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _bodies(records: list[dict[str, Any]], contract: Any, types: dict[str, str]) -> list[Any]:
    """(rows, the gateway's body for a twin's lean route, its body for MLflow's routes).

    For MLflow the gateway chooses JSON ``inputs`` or Parquet (MLflow's JSON reading turns a
    missing text into ``'None'``); for the lean route it sends JSON at any row count, gaps of
    every kind included. For the rows without gaps, also ``inputs`` JSON with the timestamps
    as a client writes them, to both."""
    body = json.dumps({"dataframe_records": records}).encode()
    rows = payload.parse(body, payload.JSON_TYPE, contract).data()
    problems, rejected = check_records(rows, contract, InputPolicy())
    assert not problems and not rejected, (problems, rejected)
    checked = canonical(rows, contract, types)
    lean = canonical(rows, contract, types, lean=True)
    assert lean.content_type == payload.JSON_TYPE  # never Parquet for a twin
    pairs = [(records, (lean.body, lean.content_type), (checked.body, checked.content_type))]
    whole = [r for r in records if all(v is not None for v in r.values())]
    if whole:
        inputs = json.dumps({"inputs": {c: [r[c] for r in whole] for c in FEATURES}}).encode()
        pairs.append((whole, (inputs, payload.JSON_TYPE), (inputs, payload.JSON_TYPE)))
    return pairs


def _post(client: TestClient, route: str, body: tuple[bytes, str]) -> Any:
    answer = client.post(route, content=body[0], headers={"Content-Type": body[1]})
    assert answer.status_code == 200, (route, answer.text)
    return answer.json()


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_lean_route_answers_as_invocations_and_the_source(kind, twins):
    source, client, contract, types = twins(kind)
    classifier = kind != "ridge"
    for n, seed in ((1, 5), (7, 6), (150, 7)):  # MLflow: few rows as JSON, many as Parquet
        for records, body, mlflow_body in _bodies(_rows(n, seed), contract, types):
            frame = pd.DataFrame(records, columns=FEATURES)
            frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
            expected = source.predict(frame)
            lean = _post(client, TWIN_ROUTE, body)
            assert lean == _post(client, "/invocations", mlflow_body)  # same JSON, same values
            if not classifier:
                np.testing.assert_allclose(lean["predictions"], expected, rtol=1e-5, atol=1e-5)
                continue
            assert lean["predictions"] == expected.tolist()
            both = _post(client, TWIN_PROBA_ROUTE, body)
            assert both == _post(client, PROBA_ROUTE, mlflow_body)
            assert [label for label, _ in both["predictions"]] == expected.tolist()
            got = [[p[str(c)] for c in source.classes_] for _, p in both["predictions"]]
            np.testing.assert_allclose(got, source.predict_proba(frame), atol=1e-5)


BAD = [
    (b"not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'{"dataframe_split": {"columns": ["items"], "data": [[1]]}}', "application/json"),
    (b'{"inputs": {"items": [1]}}', "application/json"),  # columns missing
    (b'{"inputs": {"items": [1, 2], "zone": ["north"]}}', "application/json"),  # lengths differ
    (b"PAR1 not really", "application/vnd.apache.parquet"),
    (b"items\n1\n", "text/csv"),
    (b"", "application/json"),
]


def _all_columns(**values: list[Any]) -> tuple[bytes, str]:
    row: dict[str, list[Any]] = {
        "distance_km": [1.5],
        "items": [2],
        "express": [True],
        "ordered_at": ["2024-03-01T10:00:00"],
        "zone": ["north"],
        "courier id": ["c01"],
    }
    return json.dumps({"inputs": {**row, **values}}).encode(), "application/json"


def test_a_bad_body_to_the_lean_routes_is_a_clean_400_never_a_500(twins):
    _, client, _, _ = twins("logistic")
    assert _post(client, TWIN_ROUTE, _all_columns())["predictions"] in (["no"], ["yes"])
    bad = [
        *BAD,
        _all_columns(express=["maybe"]),  # an unreadable boolean
        _all_columns(ordered_at=["someday"]),  # an unreadable timestamp
        _all_columns(distance_km=["far"]),  # a text for a number
        _all_columns(zone=[["north"]]),  # a nested value
        _all_columns(items=[{"a": 1}]),
    ]
    for route in (TWIN_ROUTE, TWIN_PROBA_ROUTE):
        for content, kind in bad:
            answer = client.post(route, content=content, headers={"Content-Type": kind})
            assert 400 <= answer.status_code < 500, (route, content, answer.text)
            doc = answer.json()
            assert doc["error_code"] == "BAD_REQUEST" and doc["message"]
            assert "Traceback" not in answer.text


def test_a_regressor_twin_gives_no_probabilities(twins):
    _, client, _, _ = twins("ridge")
    answer = client.post(
        TWIN_PROBA_ROUTE, content=_all_columns()[0], headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "this model gives no probabilities"


def test_a_scikit_learn_model_has_no_lean_route(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    path = tmp_path / "model"
    mlflow.sklearn.save_model(LogisticRegression().fit(X, [0, 0, 1, 1]), path)
    client = TestClient(build(scoring_server.load_model_with_mlflow_config(str(path))))
    body = json.dumps({"inputs": {"a": [1.0]}})
    answer = client.post(TWIN_ROUTE, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 404 and "not an ONNX twin" in answer.json()["message"]
