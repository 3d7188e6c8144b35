"""The endpoint explains itself: ``/`` (what is served and how to call it), ``/docs``,
``/openapi.json`` and ``/version``.

Everything is built from what the gateway already holds for the version being
served (its model, data contract, input policy and logged input example), once
per version, and needs no network: ``/docs`` is Swagger UI served from an
installed package (:mod:`runway.serving.swagger`), never fetched from elsewhere.
Without ``RUNWAY_SERVE_TOKENS`` the pages are open like ``/health``; with tokens
set ``/``, ``/openapi.json`` and ``/version`` need one, as scoring and
``/metrics`` do (the gateway checks it): they name the model, its columns and
categories. ``/docs`` and its assets name nothing and are open (``OPEN``).
"""

from __future__ import annotations

import html
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from runway import __version__
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import ColumnContract, DataContract
from runway.core.documents import Document
from runway.serving import swagger
from runway.serving.openapi import column_requirement, column_schema, document
from runway.serving.payload import CSV_TYPE, JSON_TYPE, PARQUET_TYPE, BadRequest
from runway.store.served import ResolvedModel

OPEN = swagger.PATHS  # Swagger UI: the same bytes whatever is served
GATED = frozenset({"/", "/openapi.json", "/version"})  # these describe the model
PATHS = GATED | OPEN
HTML = b"text/html; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"
CSP = (
    b"content-security-policy",
    swagger.CSP,
)  # on every page: scripts and requests from here only
OTHER_PATHS = (
    ("GET /docs", "this API as a page: try requests out (Swagger UI, no network)"),
    ("GET /openapi.json", "the OpenAPI 3.1 document (input schema from the data contract)"),
    ("GET /version", "the model version served"),
    ("GET /health, /ping", "alive"),
    ("GET /ready", "a version is loaded and answering (503 before)"),
    ("GET /metrics", "Prometheus metrics"),
)


@dataclass(frozen=True)
class Described:
    """What the pages describe: the version a gateway slot serves."""

    model: ResolvedModel
    contract: DataContract
    policy: InputPolicy
    example: bytes  # the logged input example, compact JSON
    auth: bool


_documents: dict[tuple[str, str, bool], Document] = {}


def openapi_document(served: Described) -> Document:
    """The OpenAPI document of ``served``, built once per model version."""
    key = (served.model.name, served.model.version, served.auth)
    if key not in _documents:
        if len(_documents) > 8:  # versions come and go with promotions
            _documents.clear()
        _documents[key] = document(
            served.model, served.contract, served.policy, auth=served.auth, example=_example(served)
        )
    return _documents[key]


def answer(
    path: str, method: str, accept: str, host: str, served: Described
) -> tuple[bytes, bytes]:
    """(body, content type) of a documentation path; 405 for anything but GET."""
    if method != "GET":
        raise BadRequest(405, f"use GET for {path}", "METHOD_NOT_ALLOWED")
    if path == "/openapi.json":
        return json.dumps(openapi_document(served)).encode(), JSON
    if path == "/version":
        return json.dumps(version_info(served.model)).encode(), JSON
    if path in swagger.PATHS:
        return swagger.answer(path)
    if "text/html" in accept:
        return home_page(served, host).encode(), HTML
    return home_text(served, host).encode(), TEXT


def version_info(model: ResolvedModel) -> Document:
    """What ``/version`` answers."""
    try:
        mlflow = package_version("mlflow")
    except PackageNotFoundError:  # pragma: no cover - runway depends on it
        mlflow = "unknown"
    return {
        "model": model.name,
        "version": model.version,
        "stage": model.stage,
        "run_id": model.run_id,
        "model_uri": model.uri,
        "runway": __version__,
        "mlflow": mlflow,
    }


def _example(served: Described) -> Any:
    """One row of the logged input example as ``dataframe_records``, in strict JSON.

    MLflow logs missing values as ``NaN`` (not JSON) and integer columns as floats;
    the example shows a complete row if there is one, with its integers as integers.
    """
    doc = json.loads(served.example)
    split = doc.get("dataframe_split") if isinstance(doc, dict) else None
    if not (isinstance(split, dict) and split.get("data")):
        return doc
    rows = [dict(zip(split["columns"], values, strict=False)) for values in split["data"]]
    complete = [r for r in rows if not any(_missing(v) for v in r.values())]
    row = (complete or rows)[0]
    columns = served.contract.columns
    return {"dataframe_records": [{k: _plain(v, columns.get(k)) for k, v in row.items()}]}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any, entry: ColumnContract | None) -> Any:
    if _missing(value):
        return None
    dtype = entry.source_dtype if entry is not None else None
    integer = str(dtype or "").lower().startswith(("int", "uint"))
    if integer and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def curl_line(served: Described, host: str) -> str:
    """A ready-to-paste curl command scoring the example row."""
    auth = " -H 'Authorization: Bearer '\"$RUNWAY_TOKEN\"" if served.auth else ""
    body = json.dumps(_example(served), separators=(",", ":"))
    return (
        f"curl -s http://{host}/invocations -H 'Content-Type: {JSON_TYPE}'{auth} "
        f"-d {shlex.quote(body)}"
    )


def _columns(served: Described) -> list[tuple[str, str, str]]:
    """(column, required or optional, what it takes) for every input column."""
    rows = []
    for name, entry in served.contract.columns.items():
        schema = column_schema(entry, served.policy)
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        what = " or ".join("null" if k == "null" else k for k in kinds)
        if "enum" in schema:
            what += ", one of " + ", ".join(str(v) for v in schema["enum"] if v is not None)
        if "minimum" in schema:
            what += f" in [{schema['minimum']}, {schema['maximum']}]"
        if schema.get("description"):
            what += f" ({schema['description']})"
        rows.append((str(name), column_requirement(entry, served.policy), what))
    return rows


def _lines(served: Described, host: str) -> dict[str, str]:
    model = served.model
    policy = ", ".join(f"{k}: {v}" for k, v in served.policy.model_dump().items())
    return {
        "title": f"{model.name} version {model.version}",
        "what": f"runway serves {model.name} version {model.version} ({model.stage} when "
        f"loaded; run {model.run_id}) with mlflow models serve behind a gateway that checks "
        "each row against the model's data contract first.",
        "curl": curl_line(served, host),
        "formats": f"{JSON_TYPE} (dataframe_records, dataframe_split, instances or inputs), "
        f"{CSV_TYPE} with a header row, {PARQUET_TYPE}",
        "answers": '{"predictions": [...]}; errors as {"error_code", "message", "errors"} '
        "naming the column and row; every response has X-Runway-Model, "
        "X-Runway-Model-Version and X-Request-Id headers",
        "policy": policy,
        "auth": "Authorization: Bearer <token> on /invocations and /metrics"
        if served.auth
        else "none (set RUNWAY_SERVE_TOKENS to require bearer tokens)",
    }


def home_text(served: Described, host: str) -> str:
    """``GET /`` for curl: plain text."""
    about = _lines(served, host)
    columns = _columns(served)
    width = max(len(name) for name, _, _ in columns)
    need = max(len(required) for _, required, _ in columns)
    out = [
        about["title"],
        "",
        about["what"],
        "",
        "score rows:",
        f"  {about['curl']}",
        "",
        f"formats   {about['formats']}",
        f"answers   {about['answers']}",
        f"auth      {about['auth']}",
        f"input     {about['policy']}",
        "",
        "input columns (required: in every request; optional: may be left out, scored as missing):",
        *(f"  {name:<{width}}  {req:<{need}}  {what}" for name, req, what in columns),
        "",
        "other paths:",
        *(f"  {path:<18} {what}" for path, what in OTHER_PATHS),
    ]
    return "\n".join(out) + "\n"


STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d1d1f}code,pre{font:13px ui-monospace,monospace;background:#f3f3f5}"
    "pre{padding:.8rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}"
    "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .7rem;"
    "text-align:left;vertical-align:top}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{cells}</table>"


def home_page(served: Described, host: str) -> str:
    """``GET /`` for a browser."""
    about = _lines(served, host)
    e = html.escape
    body = (
        f"<h1>{e(about['title'])}</h1><p>{e(about['what'])}</p>"
        f"<h2>Score rows</h2><pre>{e(about['curl'])}</pre>"
        + _table(
            ("", ""),
            [
                ("formats", about["formats"]),
                ("answers", about["answers"]),
                ("auth", about["auth"]),
                ("input policy", about["policy"]),
            ],
        )
        + "<h2>Input columns</h2><p>Required: in every request. Optional: may be left out "
        "(scored as missing).</p>"
        + _table(("column", "required", "takes"), _columns(served))
        + "<h2>Other paths</h2>"
        + _table(("path", "what"), list(OTHER_PATHS))
        + "<p><a href='/docs'>API reference</a> · <a href='/openapi.json'>OpenAPI document</a>"
        " · <a href='/version'>version</a></p>"
    )
    return _page(about["title"], body)
