"""Class probabilities on request: ``POST /invocations?proba=true``.

A query parameter rather than MLflow's ``"params"`` in a JSON body: it works
for every request format (CSV and Parquet bodies carry no params), it leaves
the body exactly as ``mlflow models serve`` reads it, and MLflow 3.17 could not
honour the body's form anyway (its scikit-learn flavor ignores ``params``; a
pyfunc drops params its signature does not declare).

The answer keeps MLflow's ``predictions`` (the labels, as without the
parameter) and adds ``probabilities``: one object per row, keyed
``proba_<class>`` exactly as ``runway score`` names its columns (a class's name
where the contract records one), in the contract's class order.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from runway.core.columns.schema import DataContract
from runway.serving.payload import BadRequest
from runway.store.served import PROBA_ROUTE, TWIN_PROBA_ROUTE, TWIN_ROUTE

PARAMETER = "proba"
PREFIX = "proba_"  # runway score's column prefix (scoring/model.PROBA_PREFIX)
TRUE = frozenset({"true", "1", "yes"})
FALSE = frozenset({"false", "0", "no", ""})


def wanted(query: bytes, contract: DataContract, model: str) -> bool:
    """Whether the request asks for probabilities; a 400 for a value or model that cannot."""
    values = (
        parse_qs(query.decode("latin-1"), keep_blank_values=True).get(PARAMETER) if query else None
    )
    if not values:
        return False
    value = values[-1].strip().lower()
    if value not in TRUE | FALSE:
        raise BadRequest(
            400,
            f"query parameter {PARAMETER}={values[-1][:40]!r}: expected true or false",
            "INVALID_PARAMETER_VALUE",
        )
    if value in TRUE and not classes(contract):
        raise BadRequest(
            400,
            f"query parameter {PARAMETER}=true: probabilities need a classifier, and "
            f"{model} is a regressor; leave {PARAMETER} out",
            "INVALID_PARAMETER_VALUE",
        )
    return value in TRUE


def route(want: bool, lean: bool = False) -> str:
    """The backend path that answers: for an ONNX twin (``lean``: ``store.served.is_twin``
    of the served folder, read once per slot) its lean routes, which take the checked rows
    straight to the graph; else runway's probability route, or MLflow's own. Every route
    answers the same JSON."""
    if lean:
        return TWIN_PROBA_ROUTE if want else TWIN_ROUTE
    return PROBA_ROUTE if want else "/invocations"


def classes(contract: DataContract) -> list[str]:
    """The contract's target classes (as the model's labels print), in its order."""
    target = contract.target
    return [str(c) for c in (target.classes if target else None) or []]


def names(contract: DataContract) -> list[str]:
    """``proba_<class>`` per class, the class's name where the contract records one."""
    labels = classes(contract)
    target = contract.target
    shown = (target.class_names if target else None) or labels
    return [f"{PREFIX}{name}" for name in shown]


def public(
    body: bytes, contract: DataContract, want: bool
) -> tuple[bytes, dict[str, list[float]] | None]:
    """The backend's ``[label, {class: p}]`` rows as the answer a caller gets, and the
    probabilities per class label for the prediction log (``body`` as is unless ``want``)."""
    if not want:
        return body, None
    rows = json.loads(body)["predictions"]
    labels = classes(contract)
    columns = names(contract)
    by_class: dict[str, list[float]] = {label: [] for label in labels}
    probabilities: list[dict[str, Any]] = []
    for _, scored in rows:
        row = {}
        for label, column in zip(labels, columns, strict=True):
            value = float(scored[label])
            row[column] = value
            by_class[label].append(value)
        probabilities.append(row)
    answer = {"predictions": [label for label, _ in rows], "probabilities": probabilities}
    return json.dumps(answer).encode(), by_class
