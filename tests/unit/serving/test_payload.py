"""Request bodies are read the way `mlflow models serve` reads them, or refused with a reason."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from runway.core.columns.schema import DataContract
from runway.serving.payload import BadRequest, media_type, parse

COLUMNS = DataContract.model_validate(
    {"columns": {"x": {"kind": "numeric"}, "plan": {"kind": "categorical"}}}
)
ROWS = [{"x": 1.5, "plan": "pro"}, {"x": 2, "plan": "basic"}]


def _json(doc) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "body",
    [
        _json({"dataframe_records": ROWS}),
        _json(
            {"dataframe_split": {"columns": ["x", "plan"], "data": [[1.5, "pro"], [2, "basic"]]}}
        ),
        _json(
            {
                "dataframe_split": {
                    "index": [7, 8],
                    "columns": ["x", "plan"],
                    "data": [[1.5, "pro"], [2, "basic"]],
                }
            }
        ),
        _json({"instances": ROWS}),
        _json({"inputs": ROWS}),
        _json({"inputs": {"x": [1.5, 2], "plan": ["pro", "basic"]}}),
        _json({"inputs": ROWS, "params": {}}),
    ],
)
def test_every_json_format_gives_the_same_records(body):
    assert parse(body, "application/json", COLUMNS).records == ROWS


def test_csv_keeps_text_as_text_and_numbers_as_numbers():
    frame = parse(b"x,plan\n1.5,pro\n2,007\n", "text/csv", COLUMNS).frame
    assert frame["plan"].tolist() == ["pro", "007"]  # a category that looks like a number
    assert frame["x"].tolist() == [1.5, 2.0]


def test_parquet_is_read():
    buffer = io.BytesIO()
    pd.DataFrame(ROWS).to_parquet(buffer)
    assert len(parse(buffer.getvalue(), "application/vnd.apache.parquet", COLUMNS)) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"   ", "empty request body"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (_json({"inputs": {"x": [1, 2], "plan": ["a"]}}), "lists of equal length"),
        (_json({"dataframe_split": {"columns": "x", "data": []}}), "list of column names"),
        (_json({"dataframe_split": [1]}), "dataframe_split: expected"),
        (_json({"instances": {"x": 1}}), "instances: expected a list of rows; got an object"),
        (_json({"dataframe_records": ROWS, "extra": 1}), "unexpected key 'extra'"),
        (_json("text"), "got a string"),
    ],
)
def test_unreadable_json_is_a_400_naming_the_problem(body, message):
    with pytest.raises(BadRequest) as bad:
        parse(body, "application/json", COLUMNS)
    assert bad.value.status == 400
    assert message in bad.value.message


def test_bad_parquet_and_csv_are_400s():
    with pytest.raises(BadRequest, match="malformed Parquet"):
        parse(b"not parquet", "application/vnd.apache.parquet", COLUMNS)
    with pytest.raises(BadRequest, match="malformed CSV"):
        parse(b'x,plan\n"unterminated', "text/csv", COLUMNS)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=UTF-8", "application/json"),
        ("text/csv", "text/csv"),
    ],
)
def test_media_types_accepted(header, expected):
    assert media_type(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Content-Type"),
        ("text/plain", "unsupported Content-Type"),
        ("application/json; charset=latin-1", "charset"),
    ],
)
def test_media_types_refused_with_415(header, message):
    with pytest.raises(BadRequest) as bad:
        media_type(header)
    assert bad.value.status == 415 and message in bad.value.message


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "application/json", "JSON nested too deeply"),
        (
            b'{"dataframe_split": {"columns": ["x"], "data": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            "application/json",
            "JSON nested too deeply",
        ),
        (b'{"dataframe_records": [{"x": ' + b"9" * 401 + b"}]}", "application/json", "401 digits"),
        (
            b'{"dataframe_records": [{"x": -' + b"9" * 5000 + b"}]}",
            "application/json",
            "5000 digits",
        ),
        (b"x,plan\n" + b"9" * 401 + b",pro\n", "text/csv", "a number over 300 digits"),
        (_json({"inputs": ROWS, "params": {"k": 1}}), "application/json", "takes no parameters"),
    ],
    ids=["deep", "deep-in-split", "401-digits", "5000-digits", "csv-401-digits", "params"],
)
def test_nesting_number_size_and_params_are_bounded_with_a_400(body, kind, message):
    with pytest.raises(BadRequest) as refused:
        parse(body, kind, COLUMNS)
    assert refused.value.status == 400 and message in refused.value.message


def test_integers_up_to_the_limit_still_parse():
    rows = parse(
        b'{"dataframe_records": [{"x": ' + b"9" * 300 + b', "plan": "pro"}]}',
        "application/json",
        COLUMNS,
    )
    assert rows.data()[0]["x"] == int("9" * 300)


@pytest.mark.parametrize(
    "header",
    ["APPLICATION/JSON", 'application/json; charset="utf-8"', "application/json; foo=bar"],
)
def test_content_type_spellings_reduce_to_the_plain_media_type(header):
    assert media_type(header) == "application/json"


def test_messages_echo_client_values_briefly():
    with pytest.raises(BadRequest) as refused:
        parse(_json({"dataframe_records": ROWS, "k" * 100_000: 1}), "application/json", COLUMNS)
    assert len(refused.value.message) < 200


def test_a_misspelt_json_key_gets_a_did_you_mean():
    """Issue 29, item 7: `dataframe_record` is a typo of `dataframe_records`."""
    with pytest.raises(BadRequest) as bad:
        parse(_json({"dataframe_record": ROWS}), "application/json", COLUMNS)
    assert bad.value.status == 400
    assert bad.value.message.endswith("(did you mean 'dataframe_records'?)")
