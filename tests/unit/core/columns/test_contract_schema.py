"""The data contract and reference profile as typed, versioned models.

The files under ``data/`` are what runway wrote before the models existed:
``*_v2.json`` by today's code before this change (``tests/unit/core/columns/data``, generated
from a fixed frame), ``*_v1.json`` in the first format (no ``source_dtype`` nor
``required``, a boolean recorded as categorical), and a contract with no version
at all. Each reads, checks rows as before, and dumps back to the same JSON.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from runway.core.columns.contract import check_records, infer_contract, signature_columns
from runway.core.columns.profile import ReferenceProfile, infer_profile, prediction_profile
from runway.core.columns.schema import (
    CONTRACT_VERSION,
    ColumnContract,
    DataContract,
    TargetInfo,
    contract_json_schema,
)
from runway.core.onnx import edge_predict

DATA = Path(__file__).parent / "data"
CONTRACTS = ["contract_v1.json", "contract_v2.json", "contract_noversion.json"]
PROFILES = ["reference_profile_v1.json", "reference_profile_v2.json", "reference_profile_v3.json"]


def _doc(name: str) -> dict[str, object]:
    return dict(json.loads((DATA / name).read_text()))


def _frame() -> tuple[pd.DataFrame, dict[str, typing.Any]]:
    """The frame ``contract_v2.json`` and ``reference_profile_v2.json`` (and ``_v3``) were made from."""
    frame = pd.DataFrame(
        {
            "tenure": pd.Series([1, 5, 12, 24, 3, 7, 30, 2], dtype="int64"),
            "charges": [10.5, np.nan, 30.25, 44.0, 12.0, 18.5, 70.0, 9.75],
            "plan": ["basic", "pro", "pro", None, "basic", "team", "pro", "basic"],
            "express": pd.Series([True, False, True, True, False, None, True, False], dtype=object),
            "ordered": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-05",
                    None,
                    "2024-02-01",
                    "2024-02-03",
                    "2024-03-01",
                    "2024-03-04",
                    "2024-03-09",
                ]
            ),
        }
    )
    kinds = {
        "tenure": "numeric",
        "charges": "numeric",
        "plan": "categorical",
        "express": "boolean",
        "ordered": "datetime",
    }
    return frame, kinds


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_contract_version_reads_and_dumps_back_the_same_json(name):
    doc = _doc(name)
    contract = DataContract.from_json((DATA / name).read_text())
    assert contract.to_json_dict() == doc
    assert json.loads(contract.to_json()) == doc
    assert list(contract.to_json_dict()) == list(doc)  # the same order too
    assert contract.version == doc.get("version", 1)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_version_reads_and_dumps_back_the_same_json(name):
    doc = _doc(name)
    profile = ReferenceProfile.from_json((DATA / name).read_text())
    assert profile.to_json_dict() == doc
    assert json.dumps(profile.to_json_dict(), indent=2) == json.dumps(doc, indent=2)


def test_today_writes_exactly_what_was_written_before_the_models():
    frame, kinds = _frame()
    target = TargetInfo(classes=["no", "yes"], class_names=["no", "yes"], positive_class="yes")
    contract = infer_contract(frame, kinds, {"tenure": "int32"}, target)
    assert contract.version == CONTRACT_VERSION
    written = json.dumps(contract.to_json_dict(), indent=2)
    assert written == json.dumps(_doc("contract_v2.json"), indent=2)
    X = frame[["tenure"]].astype(float)
    fitted = LogisticRegression().fit(X, np.array([0, 1, 1, 1, 0, 0, 1, 0]))
    profile = infer_profile(frame, kinds, prediction_profile(fitted, X))
    expected = _doc("reference_profile_v3.json")  # v2 and a datetime's part frequencies
    assert json.dumps(profile.to_json_dict()) == json.dumps(expected)


def test_a_first_format_contract_checks_rows_as_it_always_did():
    old = DataContract.from_json((DATA / "contract_v1.json").read_text())
    express = old.columns["express"]
    assert express.kind == "categorical" and express.effective_kind == "boolean"
    assert old.columns["plan"].optional and not old.columns["tenure"].optional
    assert old.columns["tenure"].training_dtype == "int64"
    assert signature_columns(old) == [
        ("tenure", "double", True),
        ("plan", "string", False),
        ("express", "boolean", True),
    ]
    ok = {"tenure": 3, "plan": "pro", "express": "TRUE"}
    assert check_records([ok], old) == ([], {})
    _, rejected = check_records([{**ok, "tenure": 2.5, "plan": "gold"}], old)
    assert rejected[0] == [
        "column 'tenure': expected an integer, got 2.5",
        "column 'plan': category 'gold' never seen in training; expected one of 'basic', 'pro'",
    ]
    assert DataContract.from_json((DATA / "contract_noversion.json").read_text()).version == 1


def test_the_models_are_frozen_and_ignore_what_a_newer_writer_adds():
    doc = {"columns": {"x": {"kind": "numeric", "someday": 1}}, "someday": True}
    contract = DataContract.model_validate(doc)
    with pytest.raises(Exception, match="frozen"):
        contract.columns["x"].kind = "categorical"  # type: ignore[misc]
    assert contract.to_json_dict() == {"columns": {"x": {"kind": "numeric"}}}


@pytest.mark.parametrize("name", CONTRACTS)
def test_the_generated_json_schema_validates_every_contract_version(name):
    schema = contract_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_doc(name), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"columns": {"x": {"kind": "text"}}}, schema)


def test_the_edge_bundle_reads_only_fields_the_schema_defines():
    """predict.py cannot import pydantic: its TypedDicts name the fields it reads, and every
    one is a field of the model (and of the JSON Schema written beside it)."""
    schema = contract_json_schema()
    column = schema["$defs"]["ColumnContract"]["properties"]
    edge_fields = typing.get_type_hints(edge_predict.ColumnEntry)
    assert set(edge_fields) <= set(ColumnContract.model_fields) == set(column)
    assert set(typing.get_type_hints(edge_predict.Contract)) <= set(schema["properties"])
    source = Path(edge_predict.__file__).read_text()
    for field in ColumnContract.model_fields:
        if f'"{field}"' in source:
            assert field in edge_fields, f"predict.py reads {field!r} outside ColumnEntry"
