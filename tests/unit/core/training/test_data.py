from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from runway.core.columns.contract import infer_contract
from runway.core.columns.profile import infer_profile
from runway.core.training.data import frame_digest, load_dataset, prepare
from runway.core.training.spec import load_spec
from runway.errors import DataError
from tests.conftest import EXPERIMENTS, REPO
from tests.helpers import write_spec


def _csv_spec(tmp_path, frame: pd.DataFrame, **data):
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    return load_spec(
        write_spec(
            tmp_path / "s.yaml",
            data={"source": str(csv), "target": "y", **data},
            metrics=["accuracy"],
            primary_metric={"name": "accuracy"},
        )
    )


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "n": rng.integers(0, 10, n),
            "c": rng.choice(["a", "b", "c"], n),
            "y": np.tile([0, 1], n // 2),
        }
    )


def _data_error(spec) -> str:
    with pytest.raises(DataError) as info:
        prepare(spec, load_dataset(spec.data))
    return str(info.value)


def test_missing_data_file(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", data={"source": "nowhere.csv", "target": "y"}))
    with pytest.raises(DataError, match=r"nowhere.csv: data file not found"):
        load_dataset(spec.data)


def test_target_absent(tmp_path):
    spec = _csv_spec(tmp_path, _frame().rename(columns={"y": "label"}))
    assert "target column 'y' not found; columns are: x, n, c, label" in _data_error(spec)


def test_numeric_column_holding_text_names_column_and_row(tmp_path):
    frame = _frame()
    frame["x"] = frame["x"].astype(object)
    frame.loc[7, "x"] = "seven"
    spec = _csv_spec(tmp_path, frame, features={"x": "numeric", "c": "categorical"})
    assert "column 'x' is numeric but row 7 holds 'seven' (1 non-numeric value(s))" in _data_error(
        spec
    )


def test_empty_dataset(tmp_path):
    spec = _csv_spec(tmp_path, _frame().iloc[0:0])
    assert "dataset is empty (0 rows, 4 columns)" in _data_error(spec)
    (tmp_path / "rows.csv").write_text("")
    assert "dataset is empty (0 rows, 0 columns)" in _data_error(spec)


def test_class_with_one_sample(tmp_path):
    frame = _frame()
    frame.loc[3, "y"] = 2
    spec = _csv_spec(tmp_path, frame)
    assert "target 'y' class 2 has 1 sample" in _data_error(spec)


def test_single_class_and_binary_metric_on_multiclass(tmp_path):
    frame = _frame().assign(y=1)
    assert "has a single class" in _data_error(_csv_spec(tmp_path, frame))
    spec = load_spec(
        write_spec(tmp_path / "w.yaml", data={"source": "sklearn:wine", "target": "target"})
    )
    assert "has 3 classes but metrics ['roc_auc'] need exactly two" in _data_error(spec)


def test_declared_feature_missing_and_unknown_drop(tmp_path):
    spec = _csv_spec(tmp_path, _frame(), features={"x": "numeric", "zz": "categorical"})
    assert "feature column(s) ['zz'] not found" in _data_error(spec)
    spec = _csv_spec(tmp_path, _frame(), drop=["id"])
    assert "data.drop names unknown column(s) ['id']" in _data_error(spec)


def test_inferred_kinds_drop_and_dtypes(tmp_path):
    spec = _csv_spec(tmp_path, _frame(), drop=["n"])
    split = prepare(spec, load_dataset(spec.data))
    assert split.features == {"x": "numeric", "c": "categorical"}
    assert split.X_train["x"].dtype == "float64"
    assert split.X_train["c"].dtype == object
    assert split.source_dtypes["x"] == str(_frame()["x"].dtype)  # as read, before the cast


def test_rows_without_target_are_dropped(tmp_path):
    frame = _frame().astype({"y": float})
    frame.loc[[0, 1], "y"] = np.nan
    spec = _csv_spec(tmp_path, frame)
    split = prepare(spec, load_dataset(spec.data))
    assert len(split.X_train) + len(split.X_holdout) == len(frame) - 2


def test_split_is_deterministic_by_seed_and_stratified():
    spec = load_spec(EXPERIMENTS / "breast_cancer.yaml")
    dataset = load_dataset(spec.data)
    a, b = prepare(spec, dataset), prepare(spec, dataset)
    assert a.X_holdout.index.equals(b.X_holdout.index)
    other = prepare(
        spec.model_copy(update={"split": spec.split.model_copy(update={"seed": 0})}), dataset
    )
    assert not a.X_holdout.index.equals(other.X_holdout.index)
    overall = dataset.frame["target"].mean()
    assert abs(a.y_holdout.mean() - overall) < 0.02
    assert len(a.X_holdout) == pytest.approx(0.2 * len(dataset.frame), abs=1)


def test_contract_and_profile_describe_the_training_data(tmp_path):
    frame = pd.DataFrame(
        {"x": [1.0, 2.0, np.nan, 4.0], "n": [1, 2, 3, 5], "c": ["a", None, "b", "a"]}
    )
    features = {"x": "numeric", "n": "numeric", "c": "categorical"}
    contract = infer_contract(frame, features)
    cols = contract.columns
    assert cols["x"].to_json_dict() == {
        "kind": "numeric",
        "dtype": "float64",
        "source_dtype": "float64",
        "missing_rate": 0.25,
        "nullable": True,
        "required": False,
        "min": 1.0,
        "max": 4.0,
        "integer": True,
    }
    assert cols["n"].nullable is False
    assert cols["n"].source_dtype == "int64"
    as_read = infer_contract(frame.astype({"n": "float64"}), features, {"n": "int32"})
    assert as_read.columns["n"].dtype == "float64"
    assert as_read.columns["n"].source_dtype == "int32"  # the model sees float64
    assert cols["c"].categories == ["a", "b"]
    assert cols["c"].missing_rate == 0.25
    profile = infer_profile(frame, features).features
    assert profile["x"].count == 3
    assert sum(profile["n"].bin_fractions or []) == pytest.approx(1.0)
    assert (profile["n"].bin_edges or [])[0] == 1.0 and (profile["n"].bin_edges or [])[-1] == 5.0
    assert profile["c"].frequencies == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 3)}


def test_digest_changes_with_content():
    frame = _frame()
    assert frame_digest(frame) == frame_digest(frame.copy())
    changed = frame.copy()
    changed.loc[0, "x"] += 1
    assert frame_digest(changed) != frame_digest(frame)


def test_churn_csv_is_reproduced_by_its_script(tmp_path):
    out = tmp_path / "churn.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_churn_data.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == (REPO / "data" / "churn.csv").read_bytes()
    frame = pd.read_csv(out)
    assert frame.isna().any().sum() >= 2
    assert frame.select_dtypes("number").shape[1] >= 3
    assert frame.select_dtypes(exclude="number").shape[1] >= 3


def test_a_positive_class_without_another_name_is_shown_once():
    """Issue 29, item 7: "positive class 1 (1)" said the label twice."""
    from runway.core.training.data import Target

    assert Target(classes=(0, 1), names={}, positive=1).shown(1) == "1"
    named = Target(classes=(0, 1), names={0: "stayed", 1: "churned"}, positive=1)
    assert named.shown(1) == "1 (churned)"
