"""A twin's backend gets the checked rows as column ``inputs`` JSON at any row count (#31).

Its lean route reads JSON exactly, gaps included, and a JSON body costs the gateway and the
backend a fraction of a Parquet file's; an MLflow backend still gets Parquet where MLflow's
JSON reading would change a value (many rows, a missing text).
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from runway.core.columns.schema import DataContract
from runway.serving.http1 import Response
from runway.serving.payload import JSON_TYPE, PARQUET_TYPE
from runway.store.served import TWIN_ROUTE
from tests.unit.serving.test_proba import FakeBackend, _folder, _gateway, _post

CONTRACT = DataContract.model_validate(
    {
        "columns": {"x": {"kind": "numeric"}, "zone": {"kind": "categorical"}},
        "target": {"classes": [0, 1]},
    }
)


class Recording(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, bytes]] = []

    async def request(self, method: str, path: str, body: bytes, content_type: str) -> Response:
        self.bodies.append((content_type, body))
        self.paths.append(path)
        if content_type == JSON_TYPE:
            n = len(json.loads(body)["inputs"]["x"])
        else:
            n = len(pd.read_parquet(io.BytesIO(body)))
        return Response(200, JSON_TYPE, json.dumps({"predictions": [0] * n}).encode())


@pytest.mark.parametrize("n", [1, 100, 300])
@pytest.mark.parametrize("loader", ["runway.core.onnx.model", None], ids=["twin", "sklearn"])
def test_a_twin_gets_json_at_any_row_count_and_mlflow_parquet_where_needed(tmp_path, n, loader):
    gateway, _ = _gateway(tmp_path, CONTRACT, model_dir=_folder(tmp_path, loader))
    backend = Recording()
    gateway.slot.backends = [backend]  # type: ignore[union-attr]
    rows = [{"x": i if i % 3 else None, "zone": None if i % 4 == 1 else "north"} for i in range(n)]
    status, answer = _post(gateway, "/invocations", json.dumps({"dataframe_records": rows}))
    assert status == 200 and len(answer["predictions"]) == n
    [(kind, body)] = backend.bodies
    if loader is None:  # a missing text would reach MLflow's JSON reading as 'None'
        assert backend.paths == ["/invocations"]
        assert kind == (JSON_TYPE if n == 1 else PARQUET_TYPE)
        return
    assert backend.paths == [TWIN_ROUTE] and kind == JSON_TYPE
    inputs = json.loads(body)["inputs"]
    assert inputs["x"] == [None if r["x"] is None else float(r["x"]) for r in rows]
    assert inputs["zone"] == [r["zone"] for r in rows]


def test_a_partial_cache_hit_sends_a_twin_its_missed_rows_as_json_too(tmp_path):
    gateway, _ = _gateway(
        tmp_path, CONTRACT, cache=100, model_dir=_folder(tmp_path, "runway.core.onnx.model")
    )
    backend = Recording()
    gateway.slot.backends = [backend]  # type: ignore[union-attr]
    seen = [{"x": i, "zone": "north"} for i in range(80)]
    assert _post(gateway, "/invocations", json.dumps({"dataframe_records": seen}))[0] == 200
    more = [*seen, *({"x": i, "zone": None} for i in range(80, 160))]  # half hit, half missed
    status, answer = _post(gateway, "/invocations", json.dumps({"dataframe_records": more}))
    assert status == 200 and len(answer["predictions"]) == 160
    kinds = [kind for kind, _ in backend.bodies]
    assert kinds == [JSON_TYPE, JSON_TYPE], kinds
    assert len(json.loads(backend.bodies[1][1])["inputs"]["x"]) == 80
