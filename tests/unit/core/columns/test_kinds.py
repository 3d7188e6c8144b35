"""Column kinds: which spellings mean what, runway's transformers, and one verdict per value."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from runway.core.columns.contract import (
    DataContract,
    canonical_records,
    check_frame,
    check_records,
    infer_contract,
    signature_columns,
    unverified,
)
from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.kinds import (
    INVALID,
    boolean_series,
    boolean_value,
    looks_like_timestamps,
    timestamp_series,
    timestamp_value,
)
from runway.core.threads import thread_env, threads_for
from runway.core.training.data import infer_kind
from runway.core.training.transformers import BooleanEncoder, CategoryText, DatetimeParts
from runway.serving.canonical import LAZY_ROWS, Canonical, canonical
from runway.serving.payload import JSON_TYPE, PARQUET_TYPE

TRANSFORMERS = [DatetimeParts(), BooleanEncoder(), CategoryText()]
OWN_TYPES = {
    "runway.core.training.transformers.DatetimeParts",
    "runway.core.training.transformers.BooleanEncoder",
    "runway.core.training.transformers.CategoryText",
}


# --- spellings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), (np.bool_(False), False), ("true", True), ("True", True), ("TRUE", True),
        ("1", True), (1, True), (1.0, True), ("false", False), ("FALSE", False), ("0", False),
        (0, False), (None, None), (np.nan, None), (pd.NA, None),
        ("yes", INVALID), ("t", INVALID), (2, INVALID), ("", INVALID), ("1.0", INVALID),
        (0.5, INVALID), ([True], INVALID),
    ],
)  # fmt: skip
def test_booleans_take_the_usual_spellings_and_nothing_else(value, expected):
    assert boolean_value(value) is expected or boolean_value(value) == expected
    values, bad = boolean_series(pd.Series([value], dtype=object))
    assert bool(bad[0]) is (expected is INVALID)
    if expected is not INVALID:
        assert values[0] is expected or values[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", "2024-05-01T00:00:00"),
        ("2024-05-01T13:45:00", "2024-05-01T13:45:00"),
        ("2024-05-01 13:45", "2024-05-01T13:45:00"),
        ("2024-05-01T13:45:00Z", "2024-05-01T13:45:00"),
        ("2024-05-01T15:45:00+02:00", "2024-05-01T13:45:00"),
        (pd.Timestamp("2024-05-01 13:45", tz="Europe/Paris"), "2024-05-01T11:45:00"),
        (dt.datetime(2024, 5, 1, 13, 45), "2024-05-01T13:45:00"),
        (np.datetime64("2024-05-01T13:45:00.123456789"), "2024-05-01T13:45:00.123456"),
        ("2024-13-45", None),
        ("05/01/2024", None),
        ("soon", None),
        (1714571100, None),  # seconds or milliseconds? refused, not guessed
    ],
)
def test_timestamps_are_iso_8601_or_real_timestamps_read_as_utc(value, expected):
    scalar = timestamp_value(value)
    stamps, bad = timestamp_series(pd.Series([value], dtype=object))
    if expected is None:
        assert scalar is INVALID and bad[0]
        return
    assert not bad[0] and scalar.isoformat() == expected
    assert stamps[0] == scalar and str(stamps.dtype) == "datetime64[us]"


def test_infer_recognises_booleans_and_iso_timestamps_but_not_codes():
    assert infer_kind(pd.Series([True, False])) == "boolean"
    assert infer_kind(pd.Series([True, None, False], dtype=object)) == "boolean"
    assert infer_kind(pd.Series(["2024-01-05 10:00:00", None, "2024-02-01"])) == "datetime"
    assert infer_kind(pd.Series(pd.to_datetime(["2024-01-05"]))) == "datetime"
    assert infer_kind(pd.Series([1, 2])) == "numeric"
    for codes in (["2024", "2025"], ["20240501", "20240502"], ["yes", "no"], ["2024-01-05", "x"]):
        assert infer_kind(pd.Series(codes)) == "categorical", codes
    assert not looks_like_timestamps(pd.Series([None, None], dtype=object))


# --- runway's transformers --------------------------------------------------------------------


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_transformers_follow_scikit_learns_conventions(transformer):
    with pytest.raises(NotFittedError):
        transformer.transform(pd.DataFrame({"a": [1]}))
    twin = clone(transformer)
    assert twin.get_params() == transformer.get_params()
    frame = {
        "DatetimeParts": pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-03"])}),
        "BooleanEncoder": pd.DataFrame({"b": [True, False]}),
        "CategoryText": pd.DataFrame({"c": ["a", "b"]}),
    }[type(transformer).__name__]
    assert twin.fit(frame) is twin
    learned = [k for k in vars(twin) if k not in twin.get_params()]
    assert learned and all(k.endswith("_") for k in learned)
    assert len(twin.get_feature_names_out()) == twin.transform(frame).shape[1]


def test_datetime_parts_are_derived_from_the_raw_timestamp():
    train = pd.DataFrame({"t": pd.to_datetime(["2024-03-01 08:00", "2024-03-04 18:30"])})
    parts = DatetimeParts().fit(train)
    rows = pd.DataFrame(
        {"t": ["2024-03-05T19:30:00+01:00", None, pd.Timestamp("2024-03-05 18:30")]}, dtype=object
    )
    out = parts.transform(rows)
    assert list(parts.get_feature_names_out()) == [
        "t_hour", "t_dayofweek", "t_month", "t_elapsed_days"
    ]  # fmt: skip
    np.testing.assert_array_equal(out[0], [18.0, 1.0, 3.0, 4 + 10.5 / 24])
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[0], out[2])  # the same instant, written two ways
    with pytest.raises(ValueError, match=r"column 't': expected an ISO 8601 timestamp, got 'x'"):
        parts.transform(pd.DataFrame({"t": ["x"]}))


def test_missing_booleans_and_categories_look_alike_whatever_holds_them():
    booleans = BooleanEncoder().fit(pd.DataFrame({"b": [True, False]}))
    out = booleans.transform(pd.DataFrame({"b": [None, np.nan, pd.NA, "TRUE", 0]}, dtype=object))
    assert np.isnan(out[:3, 0]).all() and out[3:, 0].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"column 'b': expected true or false .*'yes' \(row 1"):
        booleans.transform(pd.DataFrame({"b": [True, "yes"]}, dtype=object))
    text = CategoryText().fit(pd.DataFrame({"c": ["7", "a"]}))
    out = text.transform(pd.DataFrame({"c": [7, None, pd.NA, np.int64(7)]}, dtype=object))
    assert out[0, 0] == "7" and out[3, 0] == "7"
    assert all(isinstance(v, float) and np.isnan(v) for v in out[1:3, 0])


def test_skops_saves_them_and_loads_them_back_when_their_exact_types_are_trusted():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame(
        {
            "t": pd.to_datetime(["2024-01-01 09:00", "2024-02-01 17:00", "2024-03-01 12:00"]),
            "b": pd.Series([True, None, False], dtype=object),
            "c": ["a", "b", "a"],
        }
    )
    columns = ColumnTransformer(
        [
            ("dt", DatetimeParts(), ["t"]),
            ("bool", BooleanEncoder(), ["b"]),
            ("cat", make_pipeline(CategoryText(), OneHotEncoder()), ["c"]),
        ]
    )
    model = make_pipeline(columns, SimpleImputer(), LinearRegression()).fit(X, [1.0, 2.0, 3.0])
    dumped = skops.io.dumps(model)
    untrusted = set(skops.io.get_untrusted_types(data=dumped))
    assert untrusted >= OWN_TYPES
    loaded = skops.io.loads(dumped, trusted=sorted(untrusted))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --- one verdict per value, whichever form the rows came in ----------------------------------

TRAIN = pd.DataFrame(
    {
        "n": pd.Series([1, 2, 3, 4], dtype="int64").astype("float64"),
        "b": pd.Series([True, False, None, True], dtype=object),
        "t": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]).astype(
            "datetime64[us]"
        ),
        "c": pd.Series(["a", "b", "a", None], dtype=object),
    }
)
KINDS = {"n": "numeric", "b": "boolean", "t": "datetime", "c": "categorical"}
CONTRACT = infer_contract(TRAIN, KINDS, {"n": "int64"})

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=True, width=32),
    st.sampled_from(
        [
            "a",
            "b",
            "zz",
            "true",
            "FALSE",
            "1",
            "0",
            "yes",
            "2024-01-03",
            "2024-01-03T10:00:00+02:00",
            "2024-13-45",
            "7",
            "",
            "a\x00",
            "\x00",
            "é ü",
            "None",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({k: VALUES for k in KINDS}), min_size=1, max_size=5))
def test_records_and_frames_get_the_same_verdicts_and_the_same_values(records):
    problems, rejected = check_records(records, CONTRACT)
    frame = pd.DataFrame(records, dtype=object)
    result = check_frame(frame, CONTRACT)
    assert problems == result.problems == []
    assert rejected == result.rejected
    valid = [r for i, r in enumerate(records) if i not in rejected]
    if not valid:
        return
    values = canonical_records(valid, CONTRACT)
    for name in KINDS:
        as_frame = result.valid[name].tolist()
        for mine, theirs in zip(values[name], as_frame, strict=True):
            assert (mine is None and pd.isna(theirs)) or mine == theirs, (name, mine, theirs)


def test_an_optional_column_may_be_left_out_and_a_required_one_may_not():
    assert [c for c, _, required in signature_columns(CONTRACT) if not required] == ["b", "t", "c"]
    rows = [{"n": 2}]
    assert check_records(rows, CONTRACT) == ([], {})
    result = check_frame(pd.DataFrame(rows), CONTRACT)
    assert result.ok and result.valid["b"].tolist() == [None]
    strict = InputPolicy(missing_values="reject")
    assert check_records(rows, CONTRACT, strict)[1][0][0] == "column 'b': missing value"
    assert check_frame(pd.DataFrame(rows), CONTRACT, strict).rejected[0][0] == (
        "column 'b': missing value"
    )
    problems, _ = check_records([{"b": True}], CONTRACT)
    assert problems == ["column 'n': required, missing from the input"]


def test_a_contract_that_lists_only_some_levels_says_what_cannot_be_checked():
    old = DataContract.model_validate(
        {
            "version": 1,
            "columns": {
                "code": {
                    "kind": "categorical",
                    "dtype": "object",
                    "categories": ["a", "b"],
                    "categories_truncated": True,
                },
                "flag": {"kind": "categorical", "dtype": "object", "source_dtype": "bool"},
            },
        }
    )
    assert unverified(old) == [
        "column 'code': the contract lists only 2 levels, so values never seen in training are "
        "not rejected for this column (retrain to record every level)"
    ]
    assert unverified(old, InputPolicy(unseen_categories="pass")) == []
    # a boolean of a contract written before booleans had a kind takes every spelling
    assert check_records([{"code": "zz", "flag": "TRUE"}], old) == ([], {})


# --- what a backend is sent ------------------------------------------------------------------


def test_the_backend_gets_the_checked_values_typed_as_the_signature():
    records = [
        {"n": 3, "b": "TRUE", "t": "2024-01-03T10:00:00+02:00", "c": "a"},
        {"n": None, "b": None, "t": None, "c": None},
    ]
    sent = canonical(records, CONTRACT, {"n": "double", "b": "boolean", "t": "datetime"})
    frame = pd.read_parquet(io.BytesIO(sent.body))
    assert list(frame.columns) == ["n", "b", "t", "c"]
    assert frame["n"].dtype == "float64" and frame["t"].dtype == "datetime64[ns]"
    assert frame["b"].tolist() == [True, None]  # missing stays missing, not False
    assert frame["t"][0] == pd.Timestamp("2024-01-03 08:00") and pd.isna(frame["t"][1])
    assert frame["c"][0] == "a" and pd.isna(frame["c"][1])
    from_frame = canonical(check_frame(pd.DataFrame(records), CONTRACT).valid, CONTRACT, {})
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(from_frame.body)), frame)


# --- threads -----------------------------------------------------------------------------------


def test_threads_default_to_one_per_request_and_the_cores_shared_out(monkeypatch):
    monkeypatch.setattr("runway.core.threads.cores", lambda: 8)
    monkeypatch.setattr("os.getloadavg", lambda: (1.5, 1.0, 1.0))  # a quiet host: 6 idle cores
    assert threads_for("serve", None) == 1 and threads_for("gate", None) == 1
    assert threads_for("spark", None) == 1
    assert threads_for("batch", None) == 8
    assert threads_for("sweep", None, workers=3) == 2 and threads_for("train", None) == 6
    assert threads_for("batch", 3) == 3 and threads_for("serve", 2) == 2
    assert thread_env(2)["OMP_NUM_THREADS"] == "2" and thread_env(2)["OPENBLAS_NUM_THREADS"] == "2"


def test_mlflows_own_readers_keep_the_canonical_body_but_turn_a_json_null_boolean_false():
    """Why the gateway does not forward the client's JSON: MLflow would score this row as False."""
    from mlflow.pyfunc.scoring_server import infer_and_parse_data, parse_parquet_input
    from mlflow.types import ColSpec, Schema

    records = [{"n": 1, "b": None, "t": "2024-01-03T10:00:00", "c": "a"}]
    schema = Schema(
        [ColSpec(kind, name, required=req) for name, kind, req in signature_columns(CONTRACT)]
    )
    as_json = infer_and_parse_data({"dataframe_records": records}, schema)
    assert as_json["b"].tolist() == [False]  # MLflow's JSON reader: a missing boolean is False
    sent = canonical(records, CONTRACT, {})
    as_parquet = parse_parquet_input(io.BytesIO(sent.body))
    assert as_parquet["b"].tolist() == [None]
    assert as_parquet["t"][0] == pd.Timestamp("2024-01-03 10:00")


def test_a_json_null_category_reaches_the_imputer_as_missing_like_nan():
    """MLflow's JSON reader gives a null category as None, which scikit-learn's imputer
    does not count as missing (it would be an unseen level): runway's pipeline imputes
    None, NaN and pd.NA alike, so a served row scores as it does in batch and in-process."""
    from mlflow.pyfunc.scoring_server import infer_and_parse_data
    from mlflow.types import ColSpec, Schema

    from runway.core.training.pipeline import build_pipeline
    from runway.core.training.spec import spec_from_dict

    rng = np.random.default_rng(0)
    n = 300
    plan = rng.choice(["basic", "pro", "max"], n).astype(object)
    plan[rng.random(n) < 0.3] = np.nan  # the missing level carries signal
    y = pd.isna(plan) | (rng.random(n) < 0.2)
    X = pd.DataFrame({"x": rng.normal(size=n), "plan": plan})
    spec = spec_from_dict(
        {
            "experiment": "e",
            "task": "classification",
            "data": {"source": "unused.csv", "target": "y"},
            "estimator": {"name": "LogisticRegression"},
            "metrics": ["accuracy"],
            "primary_metric": {"name": "accuracy"},
        }
    )
    model = build_pipeline(spec, ["x"], ["plan"]).fit(X, y)
    row = pd.DataFrame({"x": [0.1], "plan": [np.nan]}, dtype=object).astype({"x": float})
    expected = model.predict_proba(row)
    schema = Schema([ColSpec("double", "x"), ColSpec("string", "plan", required=False)])
    served = infer_and_parse_data({"dataframe_records": [{"x": 0.1, "plan": None}]}, schema)
    assert served["plan"].tolist() == [None]  # what a backend hands the model
    for missing in (None, pd.NA):
        same = row.astype({"plan": object})
        same.loc[0, "plan"] = missing
        np.testing.assert_array_equal(model.predict_proba(same), expected)
    np.testing.assert_array_equal(model.predict_proba(served), expected)


def test_an_integer_no_float_holds_rejects_its_row_in_a_csv_not_the_file():
    from runway.core.columns.contract import parse_csv_numbers

    contract = infer_contract(
        pd.DataFrame({"n": [1, 2], "x": [0.5, 1.5]}), {"n": "numeric", "x": "numeric"}
    )
    huge = "9" * 400
    text = f"n,x\n{huge},0.5\n2,far\n3,-{huge}\n4,1.0\n"
    frame = parse_csv_numbers(pd.read_csv(io.StringIO(text)), contract)
    result = check_frame(frame, contract, InputPolicy())
    assert result.rejected == {
        0: ["column 'n': expected a finite number"],
        1: ["column 'x': expected a number, got text 'far'"],
        2: ["column 'x': expected a finite number"],
    }
    assert len(result.valid) == 1


NO_TIME = CONTRACT.model_copy(
    update={"columns": {k: v for k, v in CONTRACT.columns.items() if k != "t"}}
)


def _as_the_model_gets_it(sent: Canonical, schema: Any) -> dict[str, list[Any]] | str:
    """What MLflow's scoring server hands the model for a body the gateway sent: each column's
    values with their types (missing as None), or the error it answers with."""
    from mlflow.exceptions import MlflowException
    from mlflow.models.utils import _enforce_schema
    from mlflow.pyfunc.scoring_server import infer_and_parse_data, parse_parquet_input

    try:
        if sent.content_type == JSON_TYPE:
            frame = infer_and_parse_data(json.loads(sent.body), schema)
        else:
            frame = parse_parquet_input(io.BytesIO(sent.body))
        frame = _enforce_schema(frame, schema)
    except MlflowException as exc:
        return str(exc).split(".")[0]
    return {
        str(name): [None if pd.isna(v) else (type(v), v) for v in frame[name]] for name in frame
    }


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({k: VALUES for k in NO_TIME.columns}), min_size=1, max_size=5),
    st.sampled_from(["double", "long"]),
)
@example([{"n": 1, "b": True, "c": "a\x00"}], "double")  # numpy would drop the NUL
@example([{"n": 1, "b": True, "c": None}, {"n": 2, "b": False, "c": "None"}], "long")
def test_a_few_rows_sent_as_json_reach_the_model_as_the_parquet_body_would(records, numeric):
    """The gateway sends a few JSON rows as JSON only when MLflow's JSON reading cannot change
    them: the model must get the frame it gets from the Parquet body of the same rows."""
    from mlflow.types import ColSpec, Schema

    lenient = InputPolicy(unseen_categories="pass")  # so any text reaches the body
    valid = [
        r for i, r in enumerate(records) if i not in check_records(records, NO_TIME, lenient)[1]
    ]
    assume(valid and (numeric == "double" or all(_whole(r.get("n")) for r in valid)))
    # (a fraction in a whole-number column is refused while building the Parquet body)
    types = {"n": numeric}
    schema = Schema(
        [ColSpec(types.get(n, k), n, required=r) for n, k, r in signature_columns(NO_TIME)]
    )
    sent = canonical(valid, NO_TIME, types)
    parquet = canonical(
        check_frame(pd.DataFrame(valid, dtype=object), NO_TIME, lenient).valid, NO_TIME, types
    )
    assert parquet.content_type == PARQUET_TYPE  # a frame always goes as Parquet
    assert _as_the_model_gets_it(sent, schema) == _as_the_model_gets_it(parquet, schema)


def _whole(value: Any) -> bool:
    try:
        return value is None or float(value).is_integer()
    except (TypeError, ValueError):
        return True  # not a number: the contract check rejects it or reads it as missing


def test_which_rows_go_as_json_and_which_as_parquet():
    clean = [{"n": 2, "b": True, "c": "a"}]
    assert canonical(clean, NO_TIME, {"n": "long"}).content_type == JSON_TYPE
    assert json.loads(canonical(clean, NO_TIME, {"n": "long"}).body) == {
        "inputs": {"n": [2], "b": [True], "c": ["a"]}
    }
    assert canonical([{"n": None, "b": True, "c": "a"}], NO_TIME, {}).content_type == JSON_TYPE
    # a missing boolean would be read as False, a missing category as the text 'None'; numpy
    # drops a text's trailing NULs
    assert canonical([{"n": 2, "b": True, "c": "a\x00"}], NO_TIME, {}).content_type == (
        PARQUET_TYPE
    )
    assert canonical([{"n": 2, "b": None, "c": "a"}], NO_TIME, {}).content_type == PARQUET_TYPE
    assert canonical([{"n": 2, "b": True, "c": None}], NO_TIME, {}).content_type == PARQUET_TYPE
    assert canonical([{"n": float("inf"), "b": True, "c": "a"}], NO_TIME, {}).content_type == (
        PARQUET_TYPE
    )
    # timestamps would be re-parsed from text; many rows read faster from Parquet
    assert canonical(clean, CONTRACT, {}).content_type == PARQUET_TYPE
    assert canonical(clean * (LAZY_ROWS + 1), NO_TIME, {}).content_type == PARQUET_TYPE
