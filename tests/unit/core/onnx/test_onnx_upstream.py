"""The converter bugs runway works around, reproduced on stock skl2onnx.

Each test asserts the bug is still there. When one fails after an upgrade,
upstream fixed it: the workaround named in its docstring can go (and this test
with it). The workarounds live in runway.core.onnx.convert and onnx_graph.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from runway.core.onnx.convert import convert_estimator


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_string_imputer_refuses_nan_missing_values():
    """Workaround: onnx_graph imputes categoricals on the SENTINEL string itself."""
    pipe = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    ).fit(pd.DataFrame({"c": ["a", "b", np.nan]}, dtype=object))
    with pytest.raises(NotImplementedError, match="missing values are string"):
        convert_sklearn(pipe, initial_types=[("c", StringTensorType([None, 1]))])


def test_hist_gradient_boosting_does_not_convert_without_the_patch():
    """Workaround: onnx_convert.patched_skl2onnx (bool -> int for missing_go_to_left)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, X[:, 0] > 0)
    with pytest.raises(Exception, match="Expected an int, got a boolean"):
        convert_estimator(model, 3, "double", patch=False)
    assert convert_estimator(model, 3, "double", patch=True) is not None


def test_float32_preprocessing_changes_tree_predictions():
    """Workaround: onnx_graph computes the scaler in float64, trees get Cast(float32) after it."""
    rng = np.random.default_rng(1)
    X = rng.normal(50, 20, size=(400, 2))
    y = X[:, 0] * 3 + rng.normal(size=400)
    pipe = Pipeline([("scale", StandardScaler()), ("model", DecisionTreeRegressor())]).fit(X, y)
    # raw values that land exactly on each split threshold after scaling
    tree = pipe.named_steps["model"].tree_
    feature, threshold = tree.feature[tree.feature >= 0], tree.threshold[tree.feature >= 0]
    scaler = pipe.named_steps["scale"]
    rows = np.tile(scaler.mean_, (len(feature), 1))
    rows[np.arange(len(feature)), feature] = (
        threshold * scaler.scale_[feature] + scaler.mean_[feature]
    )
    stock = to_onnx(pipe, rows[:1].astype(np.float32))
    (got,) = _run(stock, {"X": rows.astype(np.float32)})
    assert np.abs(got.ravel() - pipe.predict(rows)).max() > 1.0


def test_tree_missing_value_routing_is_not_converted():
    """Workaround: onnx_convert.route_missing_like_sklearn (learnt missing_go_to_left)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2))
    X[rng.random(300) < 0.3, 0] = np.nan
    y = np.isnan(X[:, 0]) | (X[:, 1] > 1)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    stock = convert_sklearn(
        model,
        initial_types=[("X", FloatTensorType([None, 2]))],
        options={id(model): {"zipmap": False}},
    )
    (node,) = [n for n in stock.graph.node if n.op_type == "TreeEnsembleClassifier"]
    tracks = next(a for a in node.attribute if a.name == "nodes_missing_value_tracks_true")
    assert not any(tracks.ints)
    assert any(t.missing_go_to_left.any() for t in (e.tree_ for e in model.estimators_))


def test_skl2onnx_renames_input_columns():
    """Workaround: the twin has two packed inputs; column names live in its metadata."""
    frame = pd.DataFrame({"mean radius": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    pipe = Pipeline([("scale", StandardScaler())]).fit(frame[["mean radius"]])
    model = to_onnx(pipe, frame[["mean radius"]].astype(np.float32))
    assert [i.name for i in model.graph.input] == ["mean_radius"]
