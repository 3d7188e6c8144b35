"""The endpoint's OpenAPI 3.1 document, generated from the data contract of the version served.

``POST /invocations`` takes rows in any format ``mlflow models serve`` accepts;
the JSON shapes are described row by row from the contract (each column's
type, integer range, categories, whether it may be null, whether other columns
are refused), under the input policy recorded on the version. So the document
says exactly what the gateway's own checks accept: a request valid against it
is scored, one that is not gets a 4xx naming the column and row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np

from runway import __version__
from runway.core.columns.contract import ColumnContract, DataContract
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import requirement
from runway.core.documents import Document
from runway.serving import proba
from runway.serving.payload import CSV_TYPE, JSON_TYPE, PARQUET_TYPE
from runway.store.served import ResolvedModel

OPENAPI_VERSION = "3.1.0"
MODEL_HEADERS = ("X-Runway-Model", "X-Runway-Model-Version", "X-Request-Id")
ERROR_CODES = {
    "400": "The body cannot be read: malformed JSON, CSV or Parquet, an empty body, a wrong shape.",
    "401": "Missing or invalid bearer token.",
    "413": "The body is over the size limit (RUNWAY_SERVE_MAX_BODY_MB).",
    "415": "Missing or unsupported Content-Type.",
    "422": "Rows that break the data contract: the error names the column and row.",
    "502": "The model itself failed on rows that passed the contract (no stack trace).",
    "503": "Busy (retry after the Retry-After header) or no model answering yet.",
    "504": "No answer within RUNWAY_SERVE_TIMEOUT.",
}


class ColumnSchema(TypedDict, total=False):
    """One column as JSON Schema: the keywords runway writes (and the pages read back)."""

    type: str | list[str]
    enum: list[object]
    examples: list[object]
    minimum: int
    maximum: int
    description: str


def column_schema(entry: ColumnContract, policy: InputPolicy) -> ColumnSchema:
    """One column of the contract as a JSON Schema: what the gateway's check accepts."""
    dtype = entry.training_dtype
    kind = entry.effective_kind
    if kind == "numeric":
        if dtype.startswith(("int", "uint", "Int", "UInt")):
            info = np.iinfo(dtype.lower())
            schema: ColumnSchema = {
                "type": "integer",
                "minimum": int(info.min),
                "maximum": int(info.max),
            }
        else:
            schema = {"type": "number"}
        low, high = entry.min, entry.max
        if low is not None and high is not None:
            schema["description"] = f"{dtype} in training, from {low:g} to {high:g}"
    elif kind == "boolean":
        schema = {
            "type": ["boolean", "string", "integer"],
            "enum": [True, False, "true", "True", "TRUE", "false", "False", "FALSE", 1, 0],
            "description": "true or false; also the texts true/True/TRUE/false/False/FALSE and 1/0",
        }
    elif kind == "datetime":
        schema = {
            "type": "string",
            "description": "an ISO 8601 date or timestamp (no offset: UTC)",
            "examples": [v for v in (entry.min, entry.max) if v],
        }
    else:
        categories = entry.categories or []
        closed = policy.unseen_categories == "reject" and not entry.categories_truncated
        schema = {"type": "string"}
        if categories and closed:
            schema["enum"] = list(categories)
        elif categories:
            schema["examples"] = list(categories[:10])
    if policy.missing_values == "pass":
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def required_columns(contract: DataContract, policy: InputPolicy) -> list[str]:
    """The columns a request must hold (:func:`requirement` says why, per column)."""
    refused = policy.missing_values == "reject"  # a left-out column is missing on every row
    return [n for n, e in contract.columns.items() if refused or not e.optional]


def column_requirement(entry: ColumnContract, policy: InputPolicy) -> str:
    """``required`` or ``optional (may be left out)``: one column, under this input policy."""
    return requirement(entry.optional, policy.missing_values == "reject")


def row_schema(contract: DataContract, policy: InputPolicy) -> Document:
    """One row (a JSON object): required columns, optional ones; others refused unless passed."""
    columns = contract.columns
    properties: dict[str, Any] = {}
    for name, entry in columns.items():
        schema: Any = dict(column_schema(entry, policy))
        what = column_requirement(entry, policy)
        schema["description"] = (
            f"{what}; {schema['description']}" if "description" in schema else what
        )
        properties[name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": required_columns(contract, policy),
        "additionalProperties": policy.unknown_columns == "pass",
    }


def _rows(minimum: int = 1) -> Document:
    return {"type": "array", "items": {"$ref": "#/components/schemas/Row"}, "minItems": minimum}


def _only(key: str, value: Mapping[str, object]) -> Document:
    return {
        "type": "object",
        # MLflow's params: runway's models take none, so only an empty object is accepted.
        "properties": {key: value, "params": {"type": "object", "maxProperties": 0}},
        "required": [key],
        "additionalProperties": False,
    }


def json_body(contract: DataContract, policy: InputPolicy) -> Document:
    """The JSON request: exactly one of MLflow's four shapes.

    ``dataframe_split`` names its columns: every required one, any optional one,
    in any order (the gateway reads values by name), each row one value per name.
    """
    names = list(contract.columns)
    required = required_columns(contract, policy)
    name: Document = {"type": "string"} if policy.unknown_columns == "pass" else {"enum": names}
    split = {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": name,
                "uniqueItems": True,
                "allOf": [{"contains": {"const": n}} for n in required],
                "description": f"required: {', '.join(required) or 'none'}; optional (may be "
                f"left out): {', '.join(n for n in names if n not in required) or 'none'}",
            },
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "description": "one value per name in columns, in that order, each as the "
                    "Row schema says for its column",
                },
            },
        },
        "required": ["columns", "data"],
    }
    return {
        "oneOf": [
            _only("dataframe_records", _rows()),
            _only("dataframe_split", split),
            _only("instances", _rows()),
            _only("inputs", _rows()),
        ]
    }


def _headers(named: bool) -> Document:
    names = MODEL_HEADERS if named else MODEL_HEADERS[-1:]  # the request id only
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _answer(
    description: str, content: Mapping[str, object] | None = None, named: bool = True
) -> Document:
    """A response; ``named=False`` when it does not name the model (not a token holder's)."""
    doc: Document = {"description": description, "headers": _headers(named)}
    if content is not None:
        doc["content"] = content
    return doc


def _json(ref: str) -> Document:
    return {JSON_TYPE: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _errors(*codes: str) -> Document:
    # A 401 goes to someone without a token: it names no model.
    return {code: _answer(ERROR_CODES[code], _json("Error"), code != "401") for code in codes}


def _get(
    summary: str, responses: Mapping[str, object], operation: str, auth: bool = False
) -> Document:
    """A GET; with ``auth`` it needs the bearer token (and may answer 401)."""
    get: Document = {"summary": summary, "operationId": operation, "responses": responses}
    if auth:
        get["responses"] = {**responses, **_errors("401")}
        get["security"] = [{"bearer": []}]
    return {"get": get}


# As JSON's ``data`` (minItems 1): a header and at least one row, else 400 "no rows to score".
CSV_BODY: Document = {
    "type": "string",
    "minLength": 1,
    "pattern": "\\S[^\\n]*\\n\\s*\\S",  # a header line, then a line that is not blank
    "description": "CSV with a header row and at least one row (an empty body, or a header "
    "alone, is answered 400: no rows to score, as JSON with no rows is)",
}


def _probabilities(contract: DataContract) -> tuple[list[Document], Document]:
    """A classifier's ``proba`` query parameter and an answer's example with it (none: empty)."""
    labels, columns = proba.classes(contract), proba.names(contract)
    if not labels:
        return [], {}
    parameter: Document = {
        "name": proba.PARAMETER,
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "example": True,
        "description": (
            "true: add `probabilities`, one object per row keyed "
            f"{', '.join(columns)} (the contract's class order; the same names as "
            "`runway score`'s columns). Any request format. A regressor answers 400."
        ),
    }
    share = round(1 / len(labels), 4)
    row = dict.fromkeys(columns, share)
    example = {"predictions": [labels[0]], "probabilities": [row]}
    return [parameter], {"examples": {"with proba=true": {"value": example}}}


def _invocations(auth: bool, example: Any, contract: DataContract) -> Document:
    codes = ("400", *(("401",) if auth else ()), "413", "415", "422", "502", "503", "504")
    parameters, examples = _probabilities(contract)
    answer = {JSON_TYPE: {"schema": {"$ref": "#/components/schemas/Predictions"}, **examples}}
    operation: Document = {
        "summary": "Score rows with the model (checked against its data contract first)",
        "operationId": "invocations",
        "requestBody": {
            "required": True,
            "content": {
                JSON_TYPE: {"schema": {"$ref": "#/components/schemas/Request"}, "example": example},
                CSV_TYPE: {"schema": CSV_BODY},
                PARQUET_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {"200": _answer("The model's predictions", answer)} | _errors(*codes),
    }
    if parameters:
        operation["parameters"] = parameters
    if auth:
        operation["security"] = [{"bearer": []}]
    return {"post": operation}


def _pages(auth: bool) -> Document:
    """The pages; with tokens set, those describing the model are for token holders only."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    html = {"text/html": {"schema": {"type": "string"}}}
    ok = {"200": _answer("OK", _json("Status"), not auth)}
    return {
        "/": _get(
            "What is served and how to call it (HTML for a browser, text for curl)",
            {"200": _answer("This endpoint, described", {**html, **text})},
            "home",
            auth,
        ),
        "/docs": _get(
            "This API in Swagger UI, to try requests out (needs no network or token; "
            "open /docs#token=<token> to send one)",
            {"200": _answer("HTML", html, not auth)},
            "docs",
        ),
        "/openapi.json": _get(
            "This document", {"200": _answer("OpenAPI 3.1", _json("Document"))}, "openapi", auth
        ),
        "/version": _get(
            "The model version served",
            {"200": _answer("Versions", _json("Version"))},
            "version",
            auth,
        ),
        "/health": _get("Alive (the gateway answers)", ok, "health"),
        "/ping": _get("Alive: the same as /health, as mlflow models serve names it", ok, "ping"),
        "/ready": _get(
            "A model version is loaded and answering (which one: to token holders)",
            {
                "200": _answer("Ready", _json("Ready"), not auth),
                "503": _answer(ERROR_CODES["503"], _json("Error"), not auth),
            },
            "ready",
        ),
        "/metrics": _get(
            "Prometheus metrics: requests, latency, rows scored and rejected, the version served",
            {"200": _answer("Prometheus text format", text)},
            "metrics",
            auth,
        ),
    }


def _components(contract: DataContract, policy: InputPolicy, auth: bool) -> Document:
    text = {"type": "string"}
    components: Document = {
        "schemas": {
            "Row": row_schema(contract, policy),
            "Request": json_body(contract, policy),
            "Predictions": {
                "type": "object",
                "properties": {
                    "predictions": {"type": "array"},
                    "probabilities": {
                        "type": "array",
                        "items": {"type": "object", "additionalProperties": {"type": "number"}},
                        "description": "with ?proba=true (classifiers): one object per row",
                    },
                },
                "required": ["predictions"],
            },
            "Error": {
                "type": "object",
                "properties": {"error_code": text, "message": text, "errors": {"type": "array"}},
                "required": ["error_code", "message"],
            },
            "Status": {"type": "object", "properties": {"status": text}, "required": ["status"]},
            "Ready": {
                "type": "object",
                "properties": {"status": text, "model": text, "version": text, "backends": {}},
                "required": ["status", "model", "version"],
            },
            "Version": {
                "type": "object",
                "properties": {k: text for k in ("model", "version", "stage", "runway")},
                "required": ["model", "version"],
            },
            "Document": {"type": "object", "required": ["openapi", "paths"]},
        },
        "headers": {
            name: {"description": what, "required": True, "schema": text}
            for name, what in zip(
                MODEL_HEADERS,
                ("The registered model served", "Its version", "The request's id (sent or made)"),
                strict=True,
            )
        },
    }
    if auth:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return components


def document(
    model: ResolvedModel,
    contract: DataContract,
    policy: InputPolicy,
    *,
    auth: bool,
    example: Any = None,
) -> Document:
    """The OpenAPI 3.1 document of the endpoint serving ``model``."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"{model.name} v{model.version}",
            "version": model.version,
            "description": (
                f"runway {__version__} serving {model.name} version {model.version} "
                f"({model.stage} when loaded). Every response carries X-Runway-Model and "
                "X-Runway-Model-Version. Input rules (the policy recorded on the version): "
                + ", ".join(f"{k}: {v}" for k, v in policy.model_dump().items())
                + "."
            ),
        },
        "paths": {"/invocations": _invocations(auth, example, contract), **_pages(auth)},
        "components": _components(contract, policy, auth),
    }
