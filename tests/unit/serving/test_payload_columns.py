"""A column-wise request (``dataframe_split``, ``inputs``) is taken apart once (#31).

The parser keeps the values by column beside the records; the many-row check and the
canonical form read those columns instead of taking the records apart again. The verdicts,
the body a backend scores and the rows the log keeps are those made from the records.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import pytest

from runway.core.columns.contract import check_frame, check_records, infer_contract
from runway.core.columns.input_policy import InputPolicy
from runway.serving import payload
from runway.serving.canonical import canonical
from runway.serving.payload import JSON_TYPE

TRAIN = pd.DataFrame(
    {
        "income": [1200.5, 3400.0, None, 999.9],
        "visits": pd.Series([1, 5, 3, 2], dtype="int64"),
        "plan": ["basic", "pro", "basic", None],
        "member": [True, False, None, False],
    }
)
FEATURES = {"income": "numeric", "visits": "numeric", "plan": "categorical", "member": "boolean"}
CONTRACT = infer_contract(TRAIN, FEATURES)
TYPES = {"income": "double", "visits": "double", "plan": "string", "member": "boolean"}
POOLS = {
    "income": [1500.0, 3, None, 2.5, "lots", float("inf")],
    "visits": [4, 4.0, 7, 1.5, None, True],
    "plan": ["pro", "basic", None, "gold", 3],
    "member": [True, False, None, "TRUE", "maybe"],
}


def _split(seed: int, n: int, bad: float, drop: str | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [c for c in POOLS if c != drop] + ["extra"] * (seed % 2)
    rows = [[rng.choice(POOLS[c] if rng.random() < bad else POOLS[c][:3]) if c in POOLS else 1
             for c in names] for _ in range(n)]  # fmt: skip
    return {"columns": names, "data": rows}


def _parse(doc: dict[str, Any]) -> payload.Payload:
    return payload.parse(json.dumps(doc).encode(), JSON_TYPE, CONTRACT)


def test_column_wise_formats_keep_their_columns_and_records_do_not():
    split = _split(0, 5, 0.0)
    parsed = _parse({"dataframe_split": split})
    assert parsed.columns == {c: [row[i] for row in split["data"]]
                              for i, c in enumerate(split["columns"])}  # fmt: skip
    assert parsed.records == [dict(zip(split["columns"], r, strict=True)) for r in split["data"]]
    inputs = _parse({"inputs": {"income": [1.0, None], "plan": ["pro", "basic"]}})
    assert inputs.columns == {"income": [1.0, None], "plan": ["pro", "basic"]}
    assert inputs.records == [{"income": 1.0, "plan": "pro"}, {"income": None, "plan": "basic"}]
    records = _parse({"dataframe_records": [{"income": 1.0}]})
    assert records.columns is None


def test_a_ragged_split_is_still_refused_with_the_row_named():
    with pytest.raises(payload.BadRequest, match=r"dataframe_split.data\[2\]: expected 2 values"):
        _parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4], [5]]}})


class _Untouchable(Mapping[str, Any]):
    """A record the check must not read key by key (its columns are known)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self._record = record

    def __getitem__(self, key: str) -> Any:
        raise AssertionError("a record was taken apart again")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a record was taken apart again")

    def __len__(self) -> int:
        return len(self._record)


@pytest.mark.parametrize("drop", [None, "plan", "visits"])  # optional, required
@pytest.mark.parametrize("bad", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_the_columns_give_the_verdicts_and_the_body_of_the_records(seed, bad, drop):
    policy = InputPolicy(unknown_columns="pass")
    parsed = _parse({"dataframe_split": _split(seed, 80, bad, drop)})
    records = parsed.records
    assert records is not None and parsed.columns is not None
    verdict = check_records(records, CONTRACT, policy)
    assert check_records(records, CONTRACT, policy, parsed.columns) == verdict
    if verdict != ([], {}):
        return
    from_records = canonical(records, CONTRACT, TYPES)
    from_columns = canonical(records, CONTRACT, TYPES, parsed.columns)
    assert from_columns.rows == from_records.rows
    assert from_columns.body == from_records.body
    # and the body is what the frame path (CSV, Parquet requests) sends for the same rows
    valid = check_frame(pd.DataFrame(records, dtype=object), CONTRACT, policy).valid
    pd.testing.assert_frame_equal(
        pd.read_parquet(io.BytesIO(from_columns.body)),
        pd.read_parquet(io.BytesIO(canonical(valid, CONTRACT, TYPES).body)),
    )


def test_many_column_wise_rows_are_not_taken_apart_again():
    parsed = _parse({"dataframe_split": _split(1, 100, 0.0)})
    assert parsed.records is not None and parsed.columns is not None
    untouchable: list[Mapping[str, Any]] = [_Untouchable(dict(r)) for r in parsed.records]
    policy = InputPolicy(unknown_columns="pass")
    assert check_records(untouchable, CONTRACT, policy, parsed.columns) == ([], {})
    checked = canonical(untouchable, CONTRACT, TYPES, parsed.columns)
    assert len(checked.rows) == 100 and checked.body
