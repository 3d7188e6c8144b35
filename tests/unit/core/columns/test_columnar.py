"""Many JSON rows with gaps are checked and made canonical column by column (#31).

A 100-row request with a missing value in a column went through pandas' vectorised check
for that column (about half the gateway's CPU for the request); a missing value that the
policy lets through now passes with the plain check, and the canonical values come out of
one comprehension a column. The verdicts and the values stay those of row-by-row checking.
"""

from __future__ import annotations

import random
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from runway.core.columns import columnar
from runway.core.columns.checks import as_text
from runway.core.columns.columnar import VECTOR_ROWS, canonical_columns
from runway.core.columns.contract import check_records, infer_contract
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.kinds import boolean_value, is_missing, timestamp_value

TRAIN = pd.DataFrame(
    {
        "income": [1200.5, 3400.0, np.nan, 999.9],
        "visits": pd.Series([1, 5, 3, 2], dtype="int32"),
        "plan": ["basic", "pro", "basic", None],
        "member": [True, False, None, False],
        "joined": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-04-01"]),
    }
)
FEATURES = {
    "income": "numeric",
    "visits": "numeric",
    "plan": "categorical",
    "member": "boolean",
    "joined": "datetime",
}
GOOD = {  # values every kind accepts, gaps among them
    "income": [1500.0, 3, None, float("nan"), 2.5],
    "visits": [4, 4.0, None, 7],
    "plan": ["pro", "basic", None],
    "member": [True, False, None, "TRUE", 1],
    "joined": ["2024-05-01", "2024-05-01T10:00:00+02:00", None, datetime(2024, 1, 2)],
}


def _rows(seed: int, n: int, plain: bool = False) -> list[dict]:
    rng = random.Random(seed)
    pools = {k: [v for v in pool if not plain or v is None or type(v) in (float, int, str, bool)]
             for k, pool in GOOD.items()}  # fmt: skip
    if plain:
        pools["member"] = [True, False, None]
        pools["joined"] = [None]
    return [{name: rng.choice(pool) for name, pool in pools.items()} for _ in range(n)]


def _one_by_one(value, kind):
    """The canonical form of one value, as the row-by-row path has always made it."""
    if is_missing(value):
        return None
    if kind == "numeric":
        return float(value)
    if kind == "boolean":
        return boolean_value(value)
    if kind == "datetime":
        return timestamp_value(value)
    return as_text(value)


def test_gaps_in_many_rows_pass_without_pandas(monkeypatch):
    """Missing values in optional columns keep a 100-row request on the plain check."""
    contract = infer_contract(TRAIN, FEATURES)
    records = _rows(0, 100, plain=True)
    assert any(r["income"] is None for r in records) and any(r["plan"] is None for r in records)

    def series(*_args, **_kwargs):
        raise AssertionError("a column with gaps went through pandas")

    monkeypatch.setattr(pd, "Series", series)
    assert check_records(records, contract) == ([], {})


def test_gaps_are_still_refused_where_the_policy_rejects_missing_values():
    contract = infer_contract(TRAIN, FEATURES)
    records = [{"income": 1.0, "visits": 2, "plan": "pro", "member": True, "joined": None}] * 40
    records = [*records, {**records[0], "income": None, "plan": None}]
    strict = InputPolicy(missing_values="reject")
    _, rejected = check_records(records, contract, strict)
    assert rejected[40] == [
        "column 'income': missing value",
        "column 'plan': missing value",
        "column 'joined': missing value",
    ]
    assert rejected[0] == ["column 'joined': missing value"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [1, VECTOR_ROWS, 100])
def test_canonical_columns_hold_the_values_row_by_row_checking_made(seed, n):
    contract = infer_contract(TRAIN, FEATURES)
    records = _rows(seed, n)
    assert check_records(records, contract) == ([], {})
    columns = canonical_columns(records, contract)
    assert len(columns) == n and list(columns.values) == list(FEATURES)
    for name, kind in FEATURES.items():
        expected = [_one_by_one(r[name], kind) for r in records]
        got = columns.values[name]
        assert [type(v) for v in got] == [type(v) for v in expected], name
        assert got == expected, name
    assert columns.records() == [
        {name: _one_by_one(r[name], kind) for name, kind in FEATURES.items()} for r in records
    ]


def test_plain_columns_are_made_canonical_without_a_call_per_value(monkeypatch):
    contract = infer_contract(TRAIN, FEATURES)
    records = _rows(1, 100, plain=True)

    def per_value(_value):
        raise AssertionError("made canonical value by value")

    monkeypatch.setattr(columnar, "is_missing", per_value)
    columns = canonical_columns(records, contract)
    expected = [None if r["income"] != r["income"] or r["income"] is None else float(r["income"])
                for r in records]  # fmt: skip
    assert columns.values["income"] == expected
    assert columns.values["plan"] == [r["plan"] for r in records]
    assert columns.values["joined"] == [None] * 100
