"""The twin's inputs read per column (issue 31): the same answers from any frame dtype and
from plain columns (the lean route's JSON lists and Parquet arrays) as from runway's frames.

Per-column reads replaced one object conversion of the whole frame (most of a
single row's predict); these tests hold every column kind to the answers the
frame path gives: numbers with gaps, whole numbers, booleans with gaps, ISO and
odd timestamps, categories with gaps and unseen levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from runway.core.onnx.parity import edge_frame
from tests.unit.core.onnx.test_onnx_kinds import _fit, _twin

MODELS = {
    "ridge": {},
    "forest": {  # labels from probabilities
        "task": "classification",
        "data": {"target": "late", "features": "infer", "drop": ["minutes"]},
        "estimator": {"name": "RandomForestClassifier", "params": {"n_estimators": 8}},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    },
}


def _variants(frame: pd.DataFrame) -> dict[str, Any]:
    """The same rows as other pandas dtypes and as plain columns."""
    texts = [c for c in frame.columns if frame[c].dtype == object]
    return {
        "arrow strings": frame.astype({c: "str" for c in ("zone", "courier id")}),
        "categorical": frame.astype({"zone": "category", "courier id": "category"}),
        "nullable": frame.astype({"distance_km": "Float64", "items": "Int64"}),
        "json lists": {
            c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in frame.columns
        },
        "arrays": {c: frame[c].to_numpy() for c in frame.columns},
        "object": frame.astype({c: object for c in texts}),
    }


@pytest.mark.parametrize("kind", list(MODELS))
def test_every_kind_scores_the_same_from_any_dtype_and_from_plain_columns(kind, tmp_path):
    pipeline, split, contract = _fit(tmp_path, **MODELS[kind])
    twin = _twin(pipeline, contract, tmp_path)
    for frame in (split.X_holdout.reset_index(drop=True), edge_frame(contract, split.X_holdout)):
        expected = twin.predict(frame)
        if twin.is_classifier:
            assert expected.tolist() == pipeline.predict(frame).tolist()
        else:
            np.testing.assert_allclose(expected, pipeline.predict(frame), rtol=1e-5, atol=1e-5)
        proba = twin.predict_proba(frame) if twin.is_classifier else None
        for name, variant in _variants(frame).items():
            if isinstance(variant, pd.DataFrame):
                got = twin.predict(variant)
                feeds = twin.feeds(variant)
            else:
                feeds = twin.feeds_from(variant)
                got = twin.scores(feeds)[0]
            assert got.tolist() == expected.tolist(), name
            if proba is not None:
                labels, probabilities = twin.scores(feeds, proba=True)
                assert labels.tolist() == expected.tolist(), name
                np.testing.assert_array_equal(probabilities, proba, err_msg=name)


def test_an_unreadable_value_is_named_by_column_and_row_from_plain_columns(tmp_path):
    pipeline, split, contract = _fit(tmp_path)
    twin = _twin(pipeline, contract, tmp_path)
    columns = {c: split.X_holdout[c].head(3).tolist() for c in split.X_holdout.columns}
    columns["express"] = [True, "maybe", False]
    with pytest.raises(ValueError, match=r"column 'express': .*got 'maybe' \(row 1\)"):
        twin.feeds_from(columns)
    with pytest.raises(KeyError, match="missing input column"):
        twin.feeds_from({"zone": ["north"]})
