"""Many JSON rows are checked column by column (#31): the same verdicts as row by row.

The gateway spent 14-17% of a 100-row request in the per-value check; from
``VECTOR_ROWS`` rows, :func:`check_records` runs the batch path's vectorised checks.
Each generated request is compared with the per-record check of each of its rows
(one row is always checked value by value): same rows, same columns, same words.
"""

from __future__ import annotations

import random
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from runway.core.columns import checks
from runway.core.columns import contract as contract_module
from runway.core.columns.contract import VECTOR_ROWS, check_records, infer_contract
from runway.core.columns.input_policy import InputPolicy

TRAIN = pd.DataFrame(
    {
        "income": [1200.5, 3400.0, np.nan, 999.9],
        "visits": pd.Series([1, 5, 3, 2], dtype="int32"),
        "plan": ["basic", "pro", "basic", None],
        "member": [True, False, True, False],
        "joined": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
        "code": ["7", "8", "9", "7"],
    }
)
FEATURES = {
    "income": "numeric",
    "visits": "numeric",
    "plan": "categorical",
    "member": "boolean",
    "joined": "datetime",
    "code": "categorical",
}
GOOD = {
    "income": 1.0,
    "visits": 1,
    "plan": "pro",
    "member": True,
    "joined": "2024-05-01",
    "code": "7",
}
ABSENT = object()  # the key is left out of the record
VALUES = {  # good and bad values of every kind, and the odd ones JSON can carry
    "income": [1500.0, 3, None, float("nan"), "lots", "12.5", True, float("inf"), [1], {}, ABSENT],
    "visits": [4, 4.0, 1.7, 3_000_000_000, -3_000_000_000, "4", False, None, 2**70, ABSENT],
    "plan": ["pro", "basic", "platinum", 3, 3.5, None, False, ["pro"], {"a": 1}, "", ABSENT],
    "member": [True, False, "yes", "true", 1, 0, 2, "maybe", None, 1.5, [True], ABSENT],
    "joined": ["2024-05-01", "2024-05-01T10:00:00+02:00", "not a date", 17, None, True, ABSENT],
    "code": ["7", 7, 7.0, "10", 10, None, True, ABSENT],
}
POLICIES = [
    InputPolicy(),
    InputPolicy(unknown_columns="pass", unseen_categories="pass", missing_values="reject"),
]


def _requests(seed: int, rows: int, bad_rate: float = 1.0) -> list[dict]:
    """Records of values drawn from VALUES; below ``bad_rate``, from their first two (good) only."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        record = {
            name: rng.choice(pool if rng.random() < bad_rate else pool[:2])
            for name, pool in VALUES.items()
        }
        out.append({k: v for k, v in record.items() if v is not ABSENT})
    return out


@pytest.mark.parametrize("policy", POLICIES, ids=["default", "lenient-missing-rejected"])
@pytest.mark.parametrize("bad_rate", [1.0, 0.01, 0.0])
@pytest.mark.parametrize("seed", range(4))
def test_many_rows_get_the_verdicts_of_one_row_at_a_time(policy, seed, bad_rate):
    contract = infer_contract(TRAIN, FEATURES)
    records = _requests(seed, VECTOR_ROWS * 4, bad_rate)
    one_by_one = {}
    for row, record in enumerate(records):  # beside a full good row: every column is present
        problems, rejected = check_records([GOOD, record], contract, policy)
        assert problems == []
        if rejected:
            one_by_one[row] = rejected[1]

    assert check_records(records, contract, policy) == ([], one_by_one)


def test_each_kind_of_bad_value_is_covered():
    """The generated requests reach every kind's rejections (the comparison means something)."""
    contract = infer_contract(TRAIN, FEATURES)
    reasons = set()
    for seed in range(6):
        for record in _requests(seed, VECTOR_ROWS * 4):
            for found in check_records([GOOD, record], contract)[1].values():
                reasons.update(r.split(":")[0] for r in found)
    assert reasons == {f"column {name!r}" for name in FEATURES}


def test_many_rows_are_not_checked_value_by_value(monkeypatch):
    """From VECTOR_ROWS rows the scalar check is not called at all (it was 14-17% of a request)."""

    def scalar(*_args: object) -> None:
        raise AssertionError("checked value by value")

    monkeypatch.setattr(contract_module, "value_problem", scalar)
    monkeypatch.setattr(checks, "value_problem", scalar)
    contract = infer_contract(TRAIN, FEATURES)
    good = {**GOOD, "joined": datetime(2024, 5, 1)}
    rows = [good] * 100 + [{**good, "visits": 2.5, "joined": date(2024, 5, 2)}]
    assert check_records(rows, contract) == (
        [],
        {100: ["column 'visits': expected an integer, got 2.5"]},
    )
