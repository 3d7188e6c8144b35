"""Every column kind through the ONNX version (issue 25, 12): numbers, booleans, timestamps, categories.

The delivery table (tests/helpers.delivery_frame: a float and an integer, a
True/False column, ISO timestamps, a 4-level and a 60-level category, a column
name with a space, gaps) is fitted without MLflow, converted, and scored by
both on the holdout and the edge-case frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from runway.core.columns.contract import infer_contract
from runway.core.onnx.convert import to_onnx
from runway.core.onnx.model import OnnxTwin
from runway.core.onnx.parity import check_parity, edge_frame
from runway.core.training.data import load_dataset, prepare
from runway.core.training.pipeline import build_pipeline
from runway.core.training.spec import spec_from_dict
from runway.errors import LightenRefused
from tests.helpers import delivery_frame, delivery_spec

ALL_PARTS = ["year", "month", "day", "dayofweek", "hour", "minute", "elapsed_days"]


def _fit(tmp_path: Path, **changes: Any) -> tuple[Any, Any, Any]:
    data = tmp_path / "delivery.csv"
    delivery_frame(400, seed=1, boolean_gaps=True).to_csv(data, index=False)
    doc = delivery_spec(data)
    doc.update(changes)
    if "data" in changes:
        doc["data"] = {**changes["data"], "source": str(data)}
    spec = spec_from_dict(doc)
    split = prepare(spec, load_dataset(spec.data))
    pipeline = build_pipeline(spec, **split.columns_by_kind()).fit(split.X_train, split.y_train)
    contract = infer_contract(split.X_train, split.features, split.source_dtypes)
    return pipeline, split, contract


def _twin(pipeline: Any, contract: Any, tmp_path: Path) -> OnnxTwin:
    path = tmp_path / "model.onnx"
    onnx.save_model(to_onnx(pipeline, contract), str(path))
    return OnnxTwin(path)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # Ridge, the default parts (hour, dayofweek, month, elapsed_days)
        {
            "estimator": {"name": "HistGradientBoostingRegressor", "params": {"max_iter": 30}},
            "preprocessing": {
                "datetime": {"parts": ALL_PARTS, "scale": "none"},
                "boolean": {"impute": "none"},
            },
        },
        {
            "task": "classification",
            "data": {"target": "late", "features": "infer", "drop": ["minutes"]},
            "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 15}},
            "metrics": ["roc_auc"],
            "primary_metric": {"name": "roc_auc"},
            "preprocessing": {"categorical": {"encode": "ordinal"}},
        },
    ],
    ids=["ridge", "hgb-all-parts-bool-nan", "forest-classifier"],
)
def test_every_column_kind_converts_and_scores_like_sklearn(changes, tmp_path):
    pipeline, split, contract = _fit(tmp_path, **changes)
    kinds = {c.effective_kind for c in contract.columns.values()}
    assert kinds == {"numeric", "boolean", "datetime", "categorical"}
    twin = _twin(pipeline, contract, tmp_path)
    edge = edge_frame(contract, split.X_holdout)
    frames = {"holdout": split.X_holdout, "edge": edge}
    report = check_parity(pipeline, twin, frames, twin.is_classifier)
    assert report.ok, report.render()
    assert report.frames[1].rows == len(edge) > 30  # no edge row left out, timestamps included


def test_datetime_parts_are_exact_on_calendar_edges(tmp_path):
    changes = {"preprocessing": {"datetime": {"parts": ALL_PARTS, "scale": "none"}}}
    pipeline, split, contract = _fit(tmp_path, **changes)
    twin = _twin(pipeline, contract, tmp_path)
    stamps = pd.Series(
        [
            "1600-02-29T23:59:59",
            "1969-12-31T23:59:59.5",
            "1970-01-01",
            "2000-12-31T23:00:00",
            "2023-03-01T00:00:00+05:30",
            None,
            pd.Timestamp("2100-02-28 12:34:56"),
        ],
        dtype=object,
    )
    rows = pd.concat([split.X_holdout.head(1)] * len(stamps), ignore_index=True)
    rows["ordered_at"] = stamps
    np.testing.assert_allclose(twin.predict(rows), pipeline.predict(rows), rtol=1e-12)


def test_a_block_with_no_twin_is_refused_naming_column_kind_and_step(tmp_path):
    changes = {"preprocessing": {"categorical": {"many_levels": {"encode": "target"}}}}
    pipeline, _, contract = _fit(tmp_path, **changes)
    with pytest.raises(LightenRefused) as refused:
        to_onnx(pipeline, contract)
    message = str(refused.value)
    assert "'courier id'" in message and "categorical" in message
    assert "step 'encode': TargetEncoder has no ONNX conversion" in message


@pytest.mark.parametrize(
    "text",
    ["2024-06-30T23:30:00-02:00", "1969-12-31T23:59:59.5", "2024-05-01", "2024-05-01 13:45"],
)
def test_the_edge_predictor_reads_a_timestamp_as_runway_does(text):
    from runway.core.columns.kinds import timestamp_series
    from runway.core.onnx import edge_predict

    stamps, bad = timestamp_series(pd.Series([text], dtype=object))
    micros = stamps.astype("datetime64[us]").to_numpy().astype("int64").astype("float64")
    assert not bad.any()
    assert edge_predict._timestamp("t", text) == (micros[0] / 1e6, None, None)


def test_the_edge_predictor_reads_booleans_as_runway_does():
    from runway.core.onnx import edge_predict

    for value, expected in ((True, 1.0), ("FALSE", 0.0), ("1", 1.0), (0, 0.0)):
        assert edge_predict._boolean("b", value) == (expected, None, None)
    assert "expected true or false" in str(edge_predict._boolean("b", "yes")[1])
