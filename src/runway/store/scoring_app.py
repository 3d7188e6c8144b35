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

from runway.store.served import PROBA_ROUTE, SCORING_MODEL_ENV


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
    """MLflow's app for ``model`` with :data:`PROBA_ROUTE` added."""
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

    return app


if SCORING_MODEL_ENV in os.environ:  # a backend; tests import build() alone
    app = build(scoring_server.load_model_with_mlflow_config(os.environ[SCORING_MODEL_ENV]))
