"""Read a scoring request body the way ``mlflow models serve`` does, and say what is wrong.

The gateway checks every request against the data contract before the model
sees it, so it must first read the rows out of whatever format MLflow accepts:
JSON (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``),
CSV, or Parquet. A body that cannot be read becomes a :class:`BadRequest` with
a status and a message naming the key, row or column, never a stack trace.
Rows that pass the check go to the backend as
:func:`runway.serving.canonical.canonical` makes them.
"""

from __future__ import annotations

import difflib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from runway.core.columns.contract import (
    ColumnContract,
    DataContract,
    parse_csv_numbers,
    text_columns,
)
from runway.errors import ServeError
from runway.store.served import EXAMPLE_FILE, ResolvedModel

JSON_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MAX_INT_DIGITS = 300  # a longer integer overflows a float (or is the 4,300-digit DoS guard)
_INT_LIMIT = 10**MAX_INT_DIGITS
MAX_MESSAGE = 500  # characters of an error message; values in it are cut shorter
MAX_ERRORS = 20
SHOWN_VALUE = 60
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
        """The JSON error: MLflow's ``error_code``/``message`` shape, plus row details.

        Bounded whatever the request held: a message is cut at ``MAX_MESSAGE``
        characters and at most ``MAX_ERRORS`` row details are listed, so a 4 MB
        value cannot come back as a bigger error.
        """
        doc: dict[str, Any] = {"error_code": self.code, "message": _cut(self.message)}
        if self.errors:
            doc["errors"] = [
                {k: _cut(v) if isinstance(v, str) else v for k, v in e.items()}
                for e in self.errors[:MAX_ERRORS]
            ]
        return doc


def clip(value: Any, limit: int = SHOWN_VALUE) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (values come from clients)."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else text[:limit] + "…"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "… (cut)"


@dataclass
class Payload:
    """The rows of one request: as records (JSON) or as a frame (CSV, Parquet)."""

    records: list[Mapping[str, Any]] | None = None
    frame: pd.DataFrame | None = None
    # a column-wise format's values by column (dataframe_split, inputs): the records' values,
    # kept so a many-row check need not take the records apart again
    columns: dict[str, list[Any]] | None = None

    def __len__(self) -> int:
        return len(self.data())

    def data(self) -> list[Mapping[str, Any]] | pd.DataFrame:
        """The rows, in whichever form they were read."""
        if self.records is not None:
            return self.records
        if self.frame is None:
            raise ValueError("a payload holds records or a frame")
        return self.frame


# What each path answers to; anything else is 405 with an Allow header (docs.PATHS: docs.py).
METHODS = {"/invocations": ("POST",), "/health": ("GET", "HEAD"), "/ping": ("GET", "HEAD")}
METHODS |= {"/ready": ("GET", "HEAD"), "/metrics": ("GET", "HEAD")}


def check_method(known: str, method: str, extra: list[tuple[bytes, bytes]]) -> None:
    """405 (and the Allow header in ``extra``) for a method ``known``'s path does not answer."""
    allowed = METHODS.get(known)
    if allowed is not None and method not in allowed:
        extra.append((b"allow", ", ".join(allowed).encode()))
        raise BadRequest(405, f"use {' or '.join(allowed)} for {known}", "METHOD_NOT_ALLOWED")


def media_type(content_type: str | None, encoding: str = "") -> str:
    """The media type of a Content-Type header, checked: 415 when absent, unknown or not UTF-8,
    or when the body is encoded (gzip, br, ...): the gateway reads bodies as sent."""
    if encoding.strip().lower() not in ("", "identity"):
        raise BadRequest(
            415,
            f"unsupported Content-Encoding {clip(encoding.strip())}; send the body uncompressed",
            "UNSUPPORTED_MEDIA_TYPE",
        )
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
            f"unsupported Content-Type {clip(kind)}; expected one of {', '.join(CONTENT_TYPES)}",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    for param in params:  # other parameters are ignored (RFC 9110); the backend gets `kind`
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise BadRequest(
                415,
                f"unsupported charset {clip(value.strip())}; send UTF-8",
                "UNSUPPORTED_MEDIA_TYPE",
            )
    return kind


def parse(body: bytes, kind: str, contract: DataContract) -> Payload:
    """The rows in ``body`` (of media type ``kind``); raises :class:`BadRequest`."""
    if not body.strip():
        raise BadRequest(400, "empty request body; send the rows to score")
    if kind == JSON_TYPE:
        records, columns = _json_records(body)
        payload = Payload(records=records, columns=columns)
    elif kind == CSV_TYPE:
        payload = Payload(frame=_csv_frame(body, contract))
    else:
        payload = Payload(frame=_parquet_frame(body))
    if len(payload) == 0:
        raise BadRequest(400, "no rows to score")
    return payload


def _bounded_int(text: str) -> int:
    """JSON integers, refused beyond ``MAX_INT_DIGITS`` (no float holds them; C-speed otherwise)."""
    if len(text) > MAX_INT_DIGITS + 1:
        raise BadRequest(
            400,
            f"number {text[:12]}… has {len(text.lstrip('-'))} digits; "
            f"integers are limited to {MAX_INT_DIGITS} digits",
            "NUMBER_TOO_LARGE",
        )
    return int(text)


def _json_records(body: bytes) -> tuple[list[Mapping[str, Any]], dict[str, list[Any]] | None]:
    try:
        doc = json.loads(body, parse_int=_bounded_int)
    except UnicodeDecodeError:  # a ValueError: before it
        raise BadRequest(400, "request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:  # a ValueError: before it
        raise BadRequest(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadRequest(400, "JSON nested too deeply (over ~1000 levels)", "TOO_DEEP") from None
    expected = f"one of {', '.join(JSON_KEYS)}"
    if not isinstance(doc, dict):
        raise BadRequest(400, f"expected a JSON object with {expected}; got {_kind(doc)}")
    keys = [k for k in JSON_KEYS if k in doc]
    if len(keys) != 1:
        got = clip(", ".join(map(repr, doc)) or "an empty object")
        near = [m for k in doc for m in difflib.get_close_matches(str(k), JSON_KEYS, 1, 0.8)]
        hint = f" (did you mean {near[0]!r}?)" if near and not keys else ""
        raise BadRequest(400, f"expected exactly {expected}; got {got}{hint}")
    key = keys[0]
    unexpected = [k for k in doc if k not in (key, "params")]
    if unexpected:
        raise BadRequest(400, f"unexpected key {clip(unexpected[0])} next to {key!r}")
    if doc.get("params", {}) != {}:  # runway's models take none; MLflow would warn and drop them
        raise BadRequest(400, "params: this model takes no parameters; send only the rows")
    value = doc[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "inputs" and isinstance(value, dict):
        records = _columnar(value)
        return records, {str(name): list(column) for name, column in value.items()}
    return _record_list(value, key), None


def _split(value: Any) -> tuple[list[Mapping[str, Any]], dict[str, list[Any]]]:
    if not isinstance(value, dict) or "data" not in value:
        raise BadRequest(400, 'dataframe_split: expected {"columns": [...], "data": [[...], ...]}')
    columns, data = value.get("columns"), value["data"]
    if not isinstance(data, list):
        raise BadRequest(400, f"dataframe_split.data: expected a list of rows; got {_kind(data)}")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequest(400, "dataframe_split.columns: expected a list of column names")
    width = len(columns)
    if not all(type(row) is list and len(row) == width for row in data):
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
                raise BadRequest(
                    400,
                    f"dataframe_split.data[{i}]: expected {width} values (one per column); "
                    f"got {got}",
                    errors=[{"row": i, "message": "wrong number of values"}],
                )
    records: list[Mapping[str, Any]] = [dict(zip(columns, row, strict=True)) for row in data]
    by_column = dict(zip(columns, map(list, zip(*data, strict=True)), strict=True)) if data else {}
    return records, by_column


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


def _csv_frame(body: bytes, contract: DataContract) -> pd.DataFrame:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text") from None
    as_text = dict.fromkeys(text_columns(contract), "string")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=as_text)
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadRequest(400, f"malformed CSV: {str(exc).splitlines()[0]}") from None
    # Back to Python objects so text is text and numbers are numbers, as in JSON;
    # a number column with one bad cell is parsed cell by cell (only that row is blamed).
    frame = frame.astype(
        {n: object for n in frame.columns if n in as_text or frame[n].dtype == "string"}
    )
    _check_big_numbers(frame, contract.columns)  # before any float conversion of them
    return parse_csv_numbers(frame, contract)


def _check_big_numbers(frame: pd.DataFrame | None, columns: Mapping[str, ColumnContract]) -> None:
    """400 for a CSV integer over ``MAX_INT_DIGITS`` digits in a numeric column.

    pandas keeps such values as Python ints in an object column (and a float
    conversion would overflow); only those rare object columns are scanned.
    """
    if frame is None:
        return
    for name in frame.columns:
        entry = columns.get(name) if isinstance(name, str) else None
        if entry is None or entry.kind != "numeric" or frame[name].dtype != object:
            continue
        big = frame[name].map(lambda v: isinstance(v, int) and abs(v) >= _INT_LIMIT).to_numpy(bool)
        if big.any():
            row = int(big.argmax())
            raise BadRequest(
                400,
                f"row {row}: column {name!r}: a number over {MAX_INT_DIGITS} digits; "
                f"integers are limited to {MAX_INT_DIGITS} digits",
                "NUMBER_TOO_LARGE",
                [{"row": row, "message": "number too large"}],
            )


def rejection(rejected: Mapping[int, list[str]], rows: int, listed: int) -> BadRequest:
    """The 422 for rows the contract rejected: the first named, up to ``listed`` rows listed."""
    first = min(rejected)
    errors = [
        {"row": row, "message": reason}
        for row, reasons in list(rejected.items())[:listed]
        for reason in reasons
    ]
    more = f" ({len(rejected)} of {rows} rows rejected)" if len(rejected) > 1 else ""
    return BadRequest(422, f"row {first}: {rejected[first][0]}{more}", "INVALID_INPUT", errors)


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


# Headers that must not appear twice: with two, which one wins depends on who reads them.
SINGLE_HEADERS = frozenset(
    {b"host", b"authorization", b"content-type", b"content-length", b"transfer-encoding"}
)


def check_duplicates(raw: list[tuple[bytes, bytes]]) -> None:
    """400 when a header that must be single appears twice (only called when some header does)."""
    seen: set[bytes] = set()
    for name, _ in raw:
        if name in seen and name in SINGLE_HEADERS:
            raise BadRequest(
                400, f"duplicate {name.decode('latin-1')} header; send it once", "DUPLICATE_HEADER"
            )
        seen.add(name)


def input_example(model: ResolvedModel, local: Path, contract: DataContract) -> tuple[bytes, int]:
    """The model's logged serving example (what warm-up scores) and its row count."""
    path = local / EXAMPLE_FILE
    if not path.is_file():
        raise ServeError(
            f"{model.name} v{model.version} was logged without an input example ({EXAMPLE_FILE}); "
            "runway needs one to check a backend before sending it traffic"
        )
    example = path.read_bytes()
    rows = parse(example, JSON_TYPE, contract)
    return json.dumps(json.loads(example), separators=(",", ":")).encode(), len(rows)


def one_row(example: bytes) -> str:
    """The input example cut to its first row: a curl line one can read."""
    doc = json.loads(example)
    split = doc.get("dataframe_split") if isinstance(doc, dict) else None
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        split["data"] = split["data"][:1]
        split.pop("index", None)
    return json.dumps(doc, separators=(",", ":"))
