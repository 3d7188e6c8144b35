"""Rows are checked against the training contract: each bad value named, never coerced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runway.core.columns.contract import check_frame, check_records, infer_contract
from runway.core.columns.input_policy import InputPolicy

TRAIN = pd.DataFrame(
    {
        "income": [1200.5, 3400.0, np.nan, 999.9],
        "visits": pd.Series([1, 5, 3, 2], dtype="int32"),
        "plan": ["basic", "pro", "basic", None],
    }
)
FEATURES = {"income": "numeric", "visits": "numeric", "plan": "categorical"}


@pytest.fixture(scope="module")
def contract():
    return infer_contract(TRAIN, FEATURES)


def row(**changes):
    good = {"income": 1500.0, "visits": 4, "plan": "pro"}
    return pd.DataFrame([{**good, **changes}])


def test_good_rows_pass_and_keep_training_dtypes(contract):
    frame = pd.DataFrame(
        [
            {"income": 10, "visits": 2, "plan": "basic"},  # an int in a float column is fine
            {"income": None, "visits": 7, "plan": None},  # missing values are imputed
        ]
    )
    result = check_frame(frame, contract)
    assert result.ok
    assert result.valid["income"].dtype == "float64"
    assert result.valid["plan"].tolist()[0] == "basic" and pd.isna(result.valid["plan"][1])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"visits": 1.7}, "column 'visits': expected an integer, got 1.7"),
        ({"visits": 3_000_000_000}, "column 'visits': 3000000000 is out of range for int32"),
        ({"income": "lots"}, "column 'income': expected a number, got text 'lots'"),
        ({"income": True}, "column 'income': expected a number, got a boolean"),
        ({"income": float("inf")}, "column 'income': expected a finite number"),
        ({"plan": "platinum"}, "column 'plan': category 'platinum' never seen in training"),
        ({"plan": ["pro"]}, "column 'plan': expected a category (text), got list"),
    ],
)
def test_each_bad_value_is_named(contract, changes, message):
    result = check_frame(row(**changes), contract)
    assert not result.ok and result.valid.empty
    assert message in result.first_error()
    assert result.first_error().startswith("row 0: ")


def test_missing_and_unknown_columns_reject_the_frame(contract):
    missing = check_frame(row().drop(columns=["visits"]), contract)
    assert missing.problems == ["column 'visits': required, missing from the input"]
    unknown = check_frame(row(extra=1), contract)
    assert unknown.problems[0].startswith("column 'extra': unknown")
    ignored = check_frame(row(extra=1), contract, InputPolicy(unknown_columns="pass"))
    assert ignored.ok and list(ignored.valid.columns) == ["income", "visits", "plan"]


def test_unseen_categories_may_pass_by_policy(contract):
    result = check_frame(row(plan="platinum"), contract, InputPolicy(unseen_categories="pass"))
    assert result.ok


def test_missing_values_may_be_rejected_by_policy(contract):
    result = check_frame(row(income=None), contract, InputPolicy(missing_values="reject"))
    assert result.first_error() == "row 0: column 'income': missing value"


def test_bad_rows_are_set_aside_and_the_rest_kept(contract):
    frame = pd.concat([row(), row(visits=2.5), row(), row(plan="gold", income="x")])
    result = check_frame(frame, contract)
    assert list(result.rejected) == [1, 3]
    assert len(result.rejected[3]) == 2  # every reason of a row, not just the first
    assert len(result.valid) == 2 and list(result.valid.index) == [0, 2]
    assert len(result.valid) + len(result.rejected) == len(frame)


AGREEMENT_CASES = [
    {},
    {"income": 10},
    {"income": None},
    {"income": float("nan")},
    {"visits": 1.7},
    {"visits": 4.0},
    {"visits": 3_000_000_000},
    {"visits": -3_000_000_000},
    {"income": "lots"},
    {"income": "12.5"},
    {"income": True},
    {"income": float("inf")},
    {"income": [1]},
    {"plan": "platinum"},
    {"plan": ["pro"]},
    {"plan": 3},
    {"plan": None},
    {"plan": False},
]


@pytest.mark.parametrize(
    "policy",
    [
        InputPolicy(),
        InputPolicy(unknown_columns="pass", unseen_categories="pass", missing_values="reject"),
    ],
)
@pytest.mark.parametrize("changes", AGREEMENT_CASES, ids=repr)
def test_record_checks_agree_with_frame_checks(contract, changes, policy):
    """Serving checks rows one value at a time, batch column-wise: same verdict, same words."""
    record = {"income": 1500.0, "visits": 4, "plan": "pro", **changes}
    problems, rejected = check_records([record], contract, policy)
    result = check_frame(pd.DataFrame([record]), contract, policy)
    assert problems == result.problems
    assert rejected == result.rejected


def test_record_checks_name_a_column_missing_from_one_row(contract):
    rows = [{"income": 1.0, "visits": 1, "plan": "pro"}, {"income": 1.0, "plan": "pro"}]
    problems, rejected = check_records(rows, contract)
    assert problems == []
    assert rejected == {1: ["column 'visits': required, missing from the row"]}
