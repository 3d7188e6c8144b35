"""Hypothesis strategies for scoring requests: every format MLflow takes, and everything around it.

A request is (headers, body). Bodies cover all four JSON keys (``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs`` as columns and as rows), CSV
and Parquet, built from the model's real columns and then bent: wrong types,
missing and extra columns, unicode, huge and tiny numbers (as JSON numbers and
as raw digit strings up to 6,000 digits), nesting up to 5,000 deep, ``params``,
duplicate and unknown keys, truncated and binary bodies. Headers vary the
content type's spelling and parameters, and sometimes repeat Host,
Authorization or Content-Type.
"""

from __future__ import annotations

import decimal
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import strategies as st

NUMERIC = ["age", "tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["card", "bank-transfer", "electronic-check"],
    "region": ["north", "south", "east", "west"],
}
COLUMNS = [*NUMERIC, *CATEGORICAL]
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
PARQUET_TYPE = "application/vnd.apache.parquet"

Request = tuple[list[tuple[str, str]], bytes]

# --- values ---------------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "NaN",
            "null",
            "1e400",
            "-0",
            "\u0661\u0662",
            "\U0001d7d9\U0001d7da",
            "\u202e",
            "a\x00b",
        ]
    ),
    st.sampled_from([v for vs in CATEGORICAL.values() for v in vs]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**20, 1e308, 5e-324, -0.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


# Real rows of the churn data (missing values included): mutations start from these.
VALID_ROWS: list[dict[str, Any]] = json.loads(
    pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "churn.csv")[COLUMNS]
    .head(200)
    .to_json(orient="records")
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 real rows, then 0-3 mutations: a value of another type, a dropped or an unknown column.

    Few draws per payload (generation is most of a fuzz test's time), and about
    half the payloads are valid, so the model behind the gateway is reached too.
    """
    out = [
        dict(draw(st.sampled_from(VALID_ROWS))) for _ in range(draw(st.sampled_from([1, 1, 2, 3])))
    ]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        row = out[draw(st.integers(0, len(out) - 1))]
        how = draw(st.integers(0, 9))
        column = draw(st.sampled_from(COLUMNS))
        if how <= 5:
            row[column] = draw(scalars)
        elif how == 6:
            row[column] = draw(json_values)
        elif how == 7:
            row.pop(column, None)
        else:
            row[draw(st.text(max_size=8))] = draw(scalars)
    return out


# --- JSON bodies ------------------------------------------------------------------------


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def json_body(draw: st.DrawFn) -> bytes:
    """One of MLflow's JSON shapes, built from bent rows, sometimes broken further."""
    records = draw(rows())
    columns = list(dict.fromkeys(k for r in records for k in r)) or COLUMNS
    shape = draw(
        st.sampled_from(["split", "records", "instances", "columns", "rows"] * 3 + ["other"])
    )
    if shape == "split":
        data = [[r.get(c) for c in columns] for r in records]
        if draw(st.integers(0, 9)) == 0:
            data[0] = data[0][: draw(st.integers(0, len(data[0])))]  # a short row
        doc: Any = {"dataframe_split": {"columns": columns, "data": data}}
        if draw(st.integers(0, 9)) == 0:
            doc["dataframe_split"]["index"] = draw(json_values)
    elif shape in ("records", "instances"):
        doc = {"dataframe_records" if shape == "records" else "instances": records}
    elif shape == "columns":
        doc = {"inputs": {c: [r.get(c) for r in records] for c in columns}}
    elif shape == "rows":
        doc = {"inputs": records}
    else:
        doc = draw(json_values)  # any JSON at all
    if isinstance(doc, dict) and draw(st.integers(0, 7)) == 0:
        doc[draw(st.sampled_from(["params", "dataframe_records", "extra", ""]))] = draw(json_values)
    body = _dumps(doc)
    return draw(_bend(body))


@st.composite
def _bend(draw: st.DrawFn, body: bytes) -> bytes:
    """Usually the body as is; else with a huge number, deep nesting or a cut spliced in."""
    how = draw(st.integers(0, 11))
    if how <= 7 or not body:
        return body
    at = draw(st.integers(0, len(body)))
    if how == 8:  # a number too big for any float, or past Python's 4,300-digit limit
        digits = draw(st.sampled_from([20, 309, 401, 4300, 4301, 6000]))
        number = draw(st.sampled_from(["", "-"])) + "9" * digits
        return body.replace(b"30", number.encode(), 1) if b"30" in body else number.encode()
    if how == 9:  # nesting up to 5,000 deep, where a value goes
        depth = draw(st.sampled_from([10, 100, 990, 1000, 2000, 5000]))
        deep = b"[" * depth + b"1" + b"]" * depth
        return body.replace(b"null", deep, 1) if b"null" in body else deep
    if how == 10:
        return body[:at]  # truncated
    return body[:at] + draw(st.binary(max_size=16)) + body[at:]  # garbage spliced in


# --- CSV and Parquet ---------------------------------------------------------------------


@st.composite
def csv_body(draw: st.DrawFn) -> bytes:
    """Rows as CSV: the columns in any order, sometimes one repeated or unknown; cells bent."""
    records = draw(rows())
    header = list(dict.fromkeys(k for r in records for k in r))
    how = draw(st.integers(0, 9))
    if how == 0:
        header = draw(st.permutations(header))
    elif how == 1:
        header = [*header, draw(st.sampled_from(header or ["x"]))]  # a repeated column
    lines = [",".join(_csv_cell(c) for c in header)]
    for record in records:
        cells = [_csv_cell(record.get(column)) for column in header]
        if draw(st.integers(0, 14)) == 0 and cells:
            cells[draw(st.integers(0, len(cells) - 1))] = "9" * draw(
                st.sampled_from([21, 309, 401, 4301])
            )
        lines.append(",".join(cells))
    body = "\n".join(lines).encode("utf-8", "surrogatepass")
    return draw(_bend(body))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


@st.composite
def parquet_body(draw: st.DrawFn) -> bytes:
    """Rows as Parquet, a column sometimes recast (ints, text, bools, decimals), or a cut file."""
    frame = pd.DataFrame(draw(rows()))
    if draw(st.integers(0, 2)) == 0 and len(frame.columns):
        column = draw(st.sampled_from(list(frame.columns)))
        kind = draw(st.sampled_from(["text", "int", "bool", "decimal", "nested"]))
        values = list(frame[column])
        frame[column] = {
            "text": lambda: [str(v) for v in values],
            "int": lambda: [draw(st.integers(-(2**63), 2**63 - 1)) for _ in values],
            "bool": lambda: [bool(v) for v in values],
            "decimal": lambda: [decimal.Decimal("1e30")] * len(values),
            "nested": lambda: [[v] for v in values],
        }[kind]()
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except Exception:  # a column pyarrow cannot store: send what it wrote so far, or garbage
        return buffer.getvalue() or draw(st.binary(max_size=64))
    body = buffer.getvalue()
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]  # a truncated file
    return body


# --- headers and the whole request --------------------------------------------------------


@st.composite
def content_type(draw: st.DrawFn, kind: str) -> str | None:
    how = draw(st.integers(0, 9))
    if how <= 4:
        return kind
    if how == 5:
        return kind.upper()
    if how == 6:
        charset = draw(st.sampled_from(["utf-8", '"utf-8"', "UTF8", "latin-1", "", "utf-16"]))
        return f"{kind}; charset={charset}"
    if how == 7:
        return f"{kind}; {draw(st.sampled_from(['foo=bar', 'q=1', ';', 'x']))}"
    if how == 8:
        return draw(st.sampled_from([None, "", "text/plain", "application/xml", "*/*", "\u00e9"]))
    return draw(st.sampled_from([JSON_TYPE, CSV_TYPE, PARQUET_TYPE]))


@st.composite
def requests_(draw: st.DrawFn, host: str) -> Request:
    """(headers, body) for POST /invocations."""
    kind = draw(st.sampled_from([JSON_TYPE] * 6 + [CSV_TYPE] * 2 + [PARQUET_TYPE] * 2))
    strategy = {JSON_TYPE: json_body(), CSV_TYPE: csv_body(), PARQUET_TYPE: parquet_body()}[kind]
    body = (
        draw(st.one_of(strategy, st.binary(max_size=64)))
        if draw(st.integers(0, 14)) == 0
        else draw(strategy)
    )
    headers = [("Host", host)]
    ctype = draw(content_type(kind))
    if ctype is not None:
        headers.append(("Content-Type", ctype))
    repeat = draw(st.integers(0, 29))
    if repeat == 0:
        headers.append(("Host", draw(st.sampled_from([host, "evil.example"]))))
    elif repeat == 1:
        headers.append(("Content-Type", draw(st.sampled_from([JSON_TYPE, CSV_TYPE]))))
    elif repeat == 2:
        headers += [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    if draw(st.integers(0, 29)) == 0:
        printable = st.characters(min_codepoint=32, max_codepoint=255)
        headers.append(("X-Request-Id", draw(st.text(printable, max_size=200))))
    return headers, body
