"""What a request must send, per column, the same on ``/``, ``/openapi.json`` and the gate report (issue 25, 16)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import DataContract
from runway.core.governance.gates import ModelFacts, _columns
from runway.serving.docs import Described, home_page, home_text
from runway.serving.openapi import document
from runway.store.served import ResolvedModel

OPTIONAL = "optional (may be left out)"
CONTRACT = DataContract.model_validate(
    {
        "version": 2,
        "columns": {
            "tenure": {"kind": "numeric", "dtype": "float64", "required": True},
            "charges": {"kind": "numeric", "dtype": "float64", "required": False},
            "plan": {"kind": "categorical", "required": False, "categories": ["a", "b"]},
        },
    }
)


MODEL = ResolvedModel("churn", "3", "Production", "run1")


def _served(policy: InputPolicy | None = None) -> Described:
    return Described(MODEL, CONTRACT, policy or InputPolicy(), b"{}", False)


def _line(text: str, column: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(column + " "))


def test_the_home_page_says_which_columns_may_be_left_out():
    text = home_text(_served(), "localhost:8000")
    assert "all required" not in text
    assert "required" in _line(text, "tenure") and OPTIONAL not in _line(text, "tenure")
    assert OPTIONAL in _line(text, "charges") and OPTIONAL in _line(text, "plan")
    page = home_page(_served(), "localhost:8000")
    assert "all required" not in page and f"<td>{OPTIONAL}</td>" in page


@pytest.mark.parametrize(
    ("columns", "valid"),
    [
        (["tenure"], True),  # the optional columns left out: the server takes it
        (["plan", "tenure"], True),  # any order
        (["tenure", "charges", "plan"], True),
        (["charges", "plan"], False),  # a required column missing
        (["tenure", "tenure"], False),
    ],
)
def test_openapi_dataframe_split_requires_what_the_server_requires(columns, valid):
    doc: Any = document(MODEL, CONTRACT, InputPolicy(), auth=False)
    schemas = doc["components"]["schemas"]
    body = {"dataframe_split": {"columns": columns, "data": [[1.0] * len(columns)]}}
    validator = jsonschema.Draft202012Validator(
        {**schemas["Request"], "components": doc["components"]}
    )
    assert validator.is_valid(body) is valid
    assert sorted(schemas["Row"]["required"]) == ["tenure"]
    assert schemas["Row"]["properties"]["charges"]["description"].startswith(OPTIONAL)


def test_a_policy_refusing_missing_values_makes_every_column_required():
    doc: Any = document(MODEL, CONTRACT, InputPolicy(missing_values="reject"), auth=False)
    assert sorted(doc["components"]["schemas"]["Row"]["required"]) == ["charges", "plan", "tenure"]
    text = home_text(_served(InputPolicy(missing_values="reject")), "localhost:8000")
    assert OPTIONAL not in text and "refuses missing values" in _line(text, "plan")


def test_the_gate_report_names_the_optional_columns_in_the_same_words():
    facts = ModelFacts(
        "3",
        "None",
        inputs={"tenure": "double", "charges": "double", "plan": "string"},
        required=("tenure",),
    )
    assert _columns(facts) == f"3 columns; {OPTIONAL}: charges, plan"
    inputs = {"tenure": "double", "plan": "string"}
    everything = ModelFacts("3", "None", inputs=inputs, required=("tenure", "plan"))
    assert _columns(everything) == "2 columns, all required"


@pytest.mark.parametrize(
    "body", ["", "\n", "tenure\n", "tenure,plan\r\n", "tenure\n\n", "tenure\n1.5\n", " tenure\n2"]
)
def test_the_openapi_csv_body_is_valid_exactly_when_the_server_takes_it(body):
    """#30-7: an empty CSV body was valid per the document but answered 400: now both
    say a header and at least one row (as JSON's ``data`` needs minItems 1)."""
    from runway.serving.payload import CSV_TYPE, BadRequest, parse

    doc: Any = document(MODEL, CONTRACT, InputPolicy(), auth=False)
    schema = doc["paths"]["/invocations"]["post"]["requestBody"]["content"][CSV_TYPE]["schema"]
    valid = jsonschema.Draft202012Validator(schema).is_valid(body)
    try:
        taken = len(parse(body.encode(), CSV_TYPE, CONTRACT)) > 0
    except BadRequest as refused:
        assert refused.status == 400 and "rows to score" in refused.message, refused.message
        taken = False
    assert valid is taken
