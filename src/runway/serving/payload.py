"""Read a scoring request body the way ``mlflow models serve`` does, and say what is wrong.

The gateway checks every request against the data contract before the model
sees it, so it must first read the rows out of whatever format MLflow accepts:
JSON (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``),
CSV, or Parquet. A body that cannot be read becomes a :class:`BadRequest` with
a status and a message naming the key, row or column, never a stack trace.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

JSON_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
PARQUET_TYPE = "application/vnd.apache.parquet"
CONTENT_TYPES = (JSON_TYPE, CSV_TYPE, PARQUET_TYPE)


class BadRequest(Exception):
    """A request the gateway answers itself, with ``status`` and a short JSON error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        """The JSON error: MLflow's ``error_code``/``message`` shape, plus row details."""
        doc: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.errors:
            doc["errors"] = self.errors
        return doc


@dataclass
class Payload:
    """The rows of one request: as records (JSON) or as a frame (CSV, Parquet)."""

    records: list[Mapping[str, Any]] | None = None
    frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.data())

    def data(self) -> list[Mapping[str, Any]] | pd.DataFrame:
        """The rows, in whichever form they were read."""
        if self.records is not None:
            return self.records
        if self.frame is None:
            raise ValueError("a payload holds records or a frame")
        return self.frame


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, checked: 415 when absent, unknown or not UTF-8."""
    if not content_type:
        raise BadRequest(
            415,
            f"missing Content-Type header; expected one of {', '.join(CONTENT_TYPES)}",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    kind, *params = (part.strip() for part in content_type.split(";"))
    kind = kind.lower()
    if kind not in CONTENT_TYPES:
        raise BadRequest(
            415,
            f"unsupported Content-Type {kind!r}; expected one of {', '.join(CONTENT_TYPES)}",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise BadRequest(
                415, f"unsupported charset {value.strip()!r}; send UTF-8", "UNSUPPORTED_MEDIA_TYPE"
            )
    return kind


def parse(body: bytes, kind: str, contract_columns: Mapping[str, Any]) -> Payload:
    """The rows in ``body`` (of media type ``kind``); raises :class:`BadRequest`."""
    if not body.strip():
        raise BadRequest(400, "empty request body; send the rows to score")
    if kind == JSON_TYPE:
        payload = Payload(records=_json_records(body))
    elif kind == CSV_TYPE:
        payload = Payload(frame=_csv_frame(body, contract_columns))
    else:
        payload = Payload(frame=_parquet_frame(body))
    if len(payload) == 0:
        raise BadRequest(400, "no rows to score")
    return payload


def _json_records(body: bytes) -> list[Mapping[str, Any]]:
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    expected = f"one of {', '.join(JSON_KEYS)}"
    if not isinstance(doc, dict):
        raise BadRequest(400, f"expected a JSON object with {expected}; got {_kind(doc)}")
    keys = [k for k in JSON_KEYS if k in doc]
    if len(keys) != 1:
        got = ", ".join(map(repr, doc)) or "an empty object"
        raise BadRequest(400, f"expected exactly {expected}; got {got}")
    key = keys[0]
    unexpected = [k for k in doc if k not in (key, "params")]
    if unexpected:
        raise BadRequest(400, f"unexpected key {unexpected[0]!r} next to {key!r}")
    value = doc[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "inputs" and isinstance(value, dict):
        return _columnar(value)
    return _record_list(value, key)


def _split(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, dict) or "data" not in value:
        raise BadRequest(400, 'dataframe_split: expected {"columns": [...], "data": [[...], ...]}')
    columns, data = value.get("columns"), value["data"]
    if not isinstance(data, list):
        raise BadRequest(400, f"dataframe_split.data: expected a list of rows; got {_kind(data)}")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequest(400, "dataframe_split.columns: expected a list of column names")
    records: list[Mapping[str, Any]] = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise BadRequest(
                400,
                f"dataframe_split.data[{i}]: expected {len(columns)} values (one per column); "
                f"got {got}",
                errors=[{"row": i, "message": "wrong number of values"}],
            )
        records.append(dict(zip(columns, row, strict=True)))
    return records


def _columnar(value: dict[str, Any]) -> list[Mapping[str, Any]]:
    lengths = {len(v) if isinstance(v, list) else None for v in value.values()}
    if None in lengths or len(lengths) > 1:
        raise BadRequest(
            400,
            "inputs: expected {column: [values...]} with lists of equal length, or a list of rows",
        )
    n = next((length for length in lengths if length is not None), 0)
    return [{name: column[i] for name, column in value.items()} for i in range(n)]


def _record_list(value: Any, key: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise BadRequest(400, f"{key}: expected a list of rows; got {_kind(value)}")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise BadRequest(
                400,
                f"{key}[{i}]: expected an object mapping column names to values; got {_kind(row)}",
                errors=[{"row": i, "message": "not an object"}],
            )
    return list(value)


def _csv_frame(body: bytes, columns: Mapping[str, Any]) -> pd.DataFrame:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text") from None
    text_columns = {n: "string" for n, e in columns.items() if e["kind"] == "categorical"}
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=text_columns)
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadRequest(400, f"malformed CSV: {str(exc).splitlines()[0]}") from None
    # Back to Python objects so text is text and numbers are numbers, as in JSON.
    return frame.astype(
        {n: object for n in frame.columns if n in text_columns or frame[n].dtype == "string"}
    )


def _parquet_frame(body: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise BadRequest(400, f"malformed Parquet: {str(exc).splitlines()[0][:200]}") from None


def _kind(value: Any) -> str:
    names = {list: "a list", dict: "an object", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")
