"""``?proba=true``: class probabilities from the gateway, named and ordered as batch names them.

The ASGI app is called directly with a fake backend that records the route it
was asked and answers as runway's backend route does (``[label, {class: p}]``
per row, in the estimator's class order).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import DataContract
from runway.serving import openapi, proba
from runway.serving.gateway import Gateway, Slot
from runway.serving.http1 import Response
from runway.settings import Settings
from runway.store.served import PROBA_ROUTE, TWIN_PROBA_ROUTE, TWIN_ROUTE, ResolvedModel, is_twin
from tests.unit.serving.asgi import call

CLASSIFIER = DataContract.model_validate(
    {
        "columns": {"x": {"kind": "numeric"}},
        "target": {"classes": [0, 1], "class_names": ["stays", "churns"]},
    }
)
REGRESSOR = DataContract.model_validate({"columns": {"x": {"kind": "numeric"}}})


class FakeBackend:
    """Answers like a backend: labels on /invocations, ``[label, {class: p}]`` on the proba route."""

    alive = True
    inflight = 0
    served = 0

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def request(self, method: str, path: str, body: bytes, content_type: str) -> Response:
        self.paths.append(path)
        rows = _rows(body, content_type)
        if path in (
            PROBA_ROUTE,
            TWIN_PROBA_ROUTE,
        ):  # the estimator's order is the backend's: 1 before 0 here
            answer = [[int(x > 0), {"1": x / 10, "0": 1 - x / 10}] for x in rows]
        else:
            answer = [int(x > 0) for x in rows]
        return Response(200, "application/json", json.dumps({"predictions": answer}).encode())


def _rows(body: bytes, content_type: str) -> list[float]:
    if "parquet" in content_type:  # frames (CSV, Parquet) reach the backend as Parquet
        return [float(v) for v in pd.read_parquet(io.BytesIO(body))["x"]]
    doc = json.loads(body)
    inputs = doc.get("inputs", doc)
    return [float(v) for v in inputs["x"]]


def _gateway(
    tmp_path: Path, contract: DataContract, cache: int = 0, model_dir: Path | None = None
) -> tuple[Gateway, FakeBackend]:
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}", serve_cache_entries=cache
    )
    gateway, backend = Gateway(settings), FakeBackend()
    model = ResolvedModel("churn", "3", "Production", None)
    backends: Any = [backend]
    gateway.slot = Slot(
        model, contract, InputPolicy(), backends, b"", 0, model_dir, input_types={"x": "double"}
    )
    return gateway, backend


def _post(gateway: Gateway, path: str, body: str, kind: str = "application/json") -> tuple:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", kind.encode())]
    status, _, answer = call(gateway, "POST", path, headers, body.encode())
    return status, json.loads(answer)


RECORDS = '{"dataframe_records": [{"x": 2}, {"x": 0}]}'
EXPECTED = {
    "predictions": [1, 0],
    "probabilities": [
        {"proba_stays": 0.8, "proba_churns": 0.2},
        {"proba_stays": 1.0, "proba_churns": 0.0},
    ],
}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (RECORDS, "application/json"),
        ('{"dataframe_split": {"columns": ["x"], "data": [[2], [0]]}}', "application/json"),
        ('{"instances": [{"x": 2}, {"x": 0}]}', "application/json"),
        ('{"inputs": {"x": [2, 0]}}', "application/json"),
        ("x\n2\n0\n", "text/csv"),
    ],
)
def test_proba_true_answers_probabilities_in_the_contracts_class_order(tmp_path, body, kind):
    gateway, backend = _gateway(tmp_path, CLASSIFIER)
    status, answer = _post(gateway, "/invocations?proba=true", body, kind)
    assert status == 200, answer
    assert answer == EXPECTED
    assert list(answer["probabilities"][0]) == ["proba_stays", "proba_churns"]  # contract order
    assert backend.paths == [PROBA_ROUTE]


def _folder(tmp_path: Path, loader: str | None) -> Path:
    """A served model folder whose MLmodel names ``loader`` (None: a scikit-learn model's)."""
    folder = tmp_path / (loader or "sklearn")
    folder.mkdir()
    pyfunc = {"loader_module": loader} if loader else {"loader_module": "mlflow.sklearn"}
    flavors = {"python_function": {**pyfunc, "data": "data/twin"}}
    (folder / "MLmodel").write_text(json.dumps({"flavors": flavors}))  # JSON is YAML
    return folder


@pytest.mark.parametrize(
    ("loader", "routes"),
    [
        ("runway.core.onnx.model", [TWIN_ROUTE, TWIN_PROBA_ROUTE]),
        ("runway.core.onnx_model", [TWIN_ROUTE, TWIN_PROBA_ROUTE]),  # twins logged before rooms
        (None, ["/invocations", PROBA_ROUTE]),
    ],
    ids=["twin", "older-twin", "scikit-learn"],
)
def test_a_twin_is_scored_on_its_lean_routes_with_the_same_answer(tmp_path, loader, routes):
    gateway, backend = _gateway(tmp_path, CLASSIFIER, model_dir=_folder(tmp_path, loader))
    status, answer = _post(gateway, "/invocations", RECORDS)
    assert (status, answer) == (200, {"predictions": [1, 0]})
    status, answer = _post(gateway, "/invocations?proba=true", RECORDS)
    assert (status, answer) == (200, EXPECTED)
    assert backend.paths == routes
    assert is_twin(tmp_path / "gone") is False  # no folder: MLflow's route


def test_without_the_parameter_the_answer_is_mlflows_labels_alone(tmp_path):
    gateway, backend = _gateway(tmp_path, CLASSIFIER)
    for path in ("/invocations", "/invocations?proba=false"):
        assert _post(gateway, path, RECORDS) == (200, {"predictions": [1, 0]})
    assert backend.paths == ["/invocations", "/invocations"]


def test_a_regressor_or_a_bad_value_is_a_400_naming_the_parameter(tmp_path):
    gateway, backend = _gateway(tmp_path, REGRESSOR)
    status, answer = _post(gateway, "/invocations?proba=true", RECORDS)
    assert status == 400
    assert answer["message"] == (
        "query parameter proba=true: probabilities need a classifier, and churn is a "
        "regressor; leave proba out"
    )
    gateway, backend = _gateway(tmp_path, CLASSIFIER)
    status, answer = _post(gateway, "/invocations?proba=maybe", RECORDS)
    assert (status, answer["message"]) == (
        400,
        "query parameter proba='maybe': expected true or false",
    )
    assert backend.paths == []


def test_the_cache_never_serves_labels_for_probabilities_or_the_reverse(tmp_path):
    gateway, backend = _gateway(tmp_path, CLASSIFIER, cache=100)
    assert _post(gateway, "/invocations", RECORDS) == (200, {"predictions": [1, 0]})
    assert _post(gateway, "/invocations?proba=true", RECORDS) == (200, EXPECTED)
    assert _post(gateway, "/invocations?proba=true", RECORDS) == (200, EXPECTED)  # cached
    assert _post(gateway, "/invocations", RECORDS) == (200, {"predictions": [1, 0]})  # cached
    assert backend.paths == ["/invocations", PROBA_ROUTE]


def test_the_prediction_log_gets_what_was_computed(tmp_path):
    gateway, _ = _gateway(tmp_path, CLASSIFIER)
    submitted: list[tuple] = []

    class Writer:
        dropped = 0

        def submit(self, *args: Any) -> None:
            submitted.append(args)

    gateway.writer = Writer()  # type: ignore[assignment]
    _post(gateway, "/invocations?proba=true", RECORDS)
    _post(gateway, "/invocations", RECORDS)
    assert submitted[0][-1] == {"0": [0.8, 1.0], "1": [0.2, 0.0]}  # by label, as batch logs
    assert submitted[1][-1] is None


def test_openapi_documents_the_parameter_with_an_example():
    model = ResolvedModel("churn", "3", "Production", None)
    doc = openapi.document(model, CLASSIFIER, InputPolicy(), auth=False)
    operation = doc["paths"]["/invocations"]["post"]
    [parameter] = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["schema"]["type"]) == (
        "proba",
        "query",
        "boolean",
    )
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]
    [shown] = example.values()
    assert shown["value"]["probabilities"] == [{"proba_stays": 0.5, "proba_churns": 0.5}]
    regressor = openapi.document(model, REGRESSOR, InputPolicy(), auth=False)
    assert "parameters" not in regressor["paths"]["/invocations"]["post"]
    assert proba.names(CLASSIFIER) == ["proba_stays", "proba_churns"]
