"""MLflow's scoring app, as ``mlflow models serve`` runs it, plus the one route it lacks.

A backend runs MLflow's own app (``/invocations``, ``/ping``, ``/health``,
``/version``) on the model folder named by ``SCORING_MODEL_ENV``. MLflow 3.17
offers no way to ask a logged scikit-learn model for ``predict_proba`` over
REST: its sklearn wrapper ignores ``params`` and a pyfunc drops params its
signature does not declare (runway's do not). So runway adds
``POST /runway/proba``: the same body parsing and schema enforcement as
``/invocations`` (MLflow's own ``invocations`` function on the same loaded
model), answering each row as ``[label, {class: probability}]``. Only the
gateway reaches a backend (owner-only Unix sockets), so the route is private.

For an ONNX twin it adds the lean routes ``POST /runway/twin`` (what
``/invocations`` answers) and ``POST /runway/twin/proba`` (what the probability
route answers). The gateway has checked the rows against the contract and typed
them as the signature (its canonical body: column-wise ``inputs`` JSON or
Parquet), so these read the columns straight into the graph's inputs, skipping
MLflow's parsing, schema enforcement and DataFrame, which were most of a
twin backend's time per request (the graph's run is ~0.02 ms). The twin stays
an MLflow model: ``/invocations`` is MLflow's, unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response
from mlflow.pyfunc import scoring_server

from runway.core.onnx.model import TwinPyfunc
from runway.store.served import PROBA_ROUTE, SCORING_MODEL_ENV, TWIN_PROBA_ROUTE, TWIN_ROUTE

JSON_TYPE = "application/json"
PARQUET_TYPE = "application/vnd.apache.parquet"
SCALARS = frozenset({str, float, int, bool, type(None)})  # what a canonical body's JSON holds
INLINE_BYTES = 64 * 1024  # smaller bodies are scored on the event loop: a thread hop costs more
# What MLflow's /invocations answers when the model's predict raises (the gateway shows it)
PREDICT_FAILED = (
    "Encountered an unexpected error while evaluating the model. Verify that the serialized "
    "input Dataframe is compatible with the model for inference."
)


class BadBody(ValueError):
    """A lean route's body is not the gateway's canonical one (a 400, never a 500)."""


def classes_of(impl: Any) -> list[Any] | None:
    """The classes a loaded pyfunc's model scores (``predict_proba``'s column order), or None."""
    raw = impl.get_raw_model() if hasattr(impl, "get_raw_model") else impl
    classes = getattr(raw, "classes_", None)
    if classes is None or not hasattr(impl, "predict_proba"):
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in classes]


def labels_and_probabilities(model: Any) -> Any:
    """``model`` (a PyFuncModel) answering ``[label, {class: p}]`` per row, MLflow's checks kept."""
    impl = model._model_impl
    classes = classes_of(impl)
    if classes is None:
        return None
    keys = [str(c) for c in classes]

    def both(data: Any, params: dict[str, Any] | None = None) -> list[Any]:
        labels = np.asarray(impl.predict(data)).tolist()
        probabilities = np.asarray(impl.predict_proba(data), dtype="float64").tolist()
        return [
            [label, dict(zip(keys, row, strict=True))]
            for label, row in zip(labels, probabilities, strict=True)
        ]

    answering = copy.copy(model)
    answering._predict_fn = both  # PyFuncModel.predict enforces the schema, then calls this
    return answering


def build(model: Any) -> Any:
    """MLflow's app for ``model`` with :data:`PROBA_ROUTE` added, behind the twin's lean routes."""
    app = scoring_server.init(model)
    schema = model.metadata.get_input_schema()
    answering = labels_and_probabilities(model)

    @app.post(PROBA_ROUTE)
    async def proba(request: Request) -> Response:
        if answering is None:
            return Response(
                '{"error_code": "BAD_REQUEST", "message": "this model gives no probabilities"}',
                status_code=400,
                media_type="application/json",
            )
        data = await request.body()
        kind = request.headers.get("content-type", "")
        try:
            result = await asyncio.to_thread(
                scoring_server.invocations, data, kind, answering, schema
            )
        except Exception as exc:  # MLflow's own handler does the same for /invocations
            message = str(getattr(exc, "message", exc))[:2000]  # the gateway shows its first line
            body = json.dumps({"error_code": "BAD_REQUEST", "message": message})
            return Response(body, status_code=400, media_type="application/json")
        return Response(result.response, status_code=result.status, media_type=result.mimetype)

    return with_twin_routes(app, model)


Answer = tuple[int, bytes]


def _error(status: int, message: str) -> Answer:
    return status, json.dumps({"error_code": "BAD_REQUEST", "message": message[:2000]}).encode()


def with_twin_routes(app: Any, model: Any) -> Any:
    """``app`` behind the twin's lean routes, answered in plain ASGI before FastAPI's routing
    and Request/Response objects (~0.5 ms of a one-row request); for another model they
    answer 404."""
    impl = getattr(model, "_model_impl", None)
    twin = impl.twin if isinstance(impl, TwinPyfunc) else None
    routes = {TWIN_ROUTE: False, TWIN_PROBA_ROUTE: True}

    async def lean(scope: dict[str, Any], receive: Any, send: Any) -> None:
        proba = routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if proba is None or scope.get("method") != "POST":
            return await app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        data = b"".join(chunks)
        kind = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1")
        if twin is None:
            status, body = _error(404, "not an ONNX twin: score on /invocations")
        elif len(data) <= INLINE_BYTES:
            status, body = twin_answer(twin, data, kind, proba)
        else:
            status, body = await asyncio.to_thread(twin_answer, twin, data, kind, proba)
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})
        return None

    return lean


def twin_answer(twin: Any, data: bytes, content_type: str, proba: bool) -> Answer:
    """The twin's answer to a canonical body: ``/invocations``' JSON (``proba``: the
    probability route's), or a 400 for a body or rows it cannot score."""
    if proba and (not twin.is_classifier or not twin.meta["outputs"].get("probabilities")):
        return _error(400, "this model gives no probabilities")
    try:
        columns = twin_columns(data, content_type)
    except BadBody as exc:
        return _error(400, str(exc))
    try:
        labels, probabilities = twin.scores(twin.feeds_from(columns), proba=proba)
    except Exception:  # MLflow's /invocations answers any predict failure so, as a 400
        return _error(400, PREDICT_FAILED)
    if probabilities is None:
        answer: Any = labels.tolist()
    else:
        keys = [str(c.item() if isinstance(c, np.generic) else c) for c in twin.classes or []]
        answer = [
            [label, dict(zip(keys, row, strict=True))]
            for label, row in zip(labels.tolist(), probabilities.tolist(), strict=True)
        ]
    return 200, json.dumps({"predictions": answer}).encode()


def twin_columns(data: bytes, content_type: str) -> dict[str, Any]:
    """A canonical body's columns, as lists (JSON ``inputs``) or numpy arrays (Parquet)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == JSON_TYPE:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise BadBody(f"body is not JSON: {exc}") from None
        inputs = doc.get("inputs") if isinstance(doc, dict) else None
        if not isinstance(inputs, dict) or not all(
            isinstance(v, list) and all(type(x) in SCALARS for x in v) for v in inputs.values()
        ):
            raise BadBody('expected a JSON body {"inputs": {column: [values]}}, values plain')
        columns: dict[str, Any] = inputs
    elif kind == PARQUET_TYPE:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:  # one row group (the gateway's): read it alone, ~4x cheaper than read_table
            parquet = pq.ParquetFile(pa.BufferReader(data))
            one = parquet.num_row_groups == 1
            table = parquet.read_row_group(0, use_threads=False) if one else parquet.read()
        except Exception as exc:  # pyarrow raises its own kinds for a damaged file
            raise BadBody(f"body is not a Parquet file: {str(exc)[:200]}") from None
        columns = {
            n: c.to_numpy(zero_copy_only=False)
            for n, c in zip(table.column_names, table.columns, strict=True)
        }
    else:
        raise BadBody(f"content type {kind or '(none)'!r}: expected {JSON_TYPE} or {PARQUET_TYPE}")
    if len({len(v) for v in columns.values()}) > 1:
        raise BadBody("columns of different lengths")
    return columns


if SCORING_MODEL_ENV in os.environ:  # a backend; tests import build() alone
    app = build(scoring_server.load_model_with_mlflow_config(os.environ[SCORING_MODEL_ENV]))
