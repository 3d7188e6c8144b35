from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor

from runway.core.training.catalog import ESTIMATORS
from runway.core.training.pipeline import build_pipeline, loggable_params
from runway.core.training.spec import load_spec
from tests.helpers import write_spec


def _spec(tmp_path, **changes):
    return load_spec(write_spec(tmp_path / "s.yaml", **changes))


def test_every_allowed_estimator_imports_and_matches_its_task():
    for entry in ESTIMATORS.values():
        est = entry.load()()
        check = is_classifier if entry.task == "classification" else is_regressor
        assert check(est), entry.name


def test_step_param_names_and_seed(tmp_path):
    spec = _spec(tmp_path, estimator={"name": "RandomForestClassifier", "params": {"max_depth": 3}})
    pipe = build_pipeline(spec, ["x"], ["c"])
    params = loggable_params(pipe)
    assert params["model__max_depth"] == 3
    assert params["model__random_state"] == spec.split.seed
    assert params["preprocess__num__impute__strategy"] == "median"
    assert params["preprocess__cat__encode__handle_unknown"] == "ignore"
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in params.values())
    pipe.set_params(model__max_depth=5)
    assert pipe.named_steps["model"].max_depth == 5


def test_pipeline_imputes_and_tolerates_unseen_categories(tmp_path):
    spec = _spec(tmp_path)
    X = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0] * 5, "c": ["a", "b", np.nan, "a"] * 5})
    y = pd.Series([0, 1, 0, 1] * 5)
    pipe = build_pipeline(spec, ["x"], ["c"]).fit(X, y)
    new = pd.DataFrame({"x": [np.nan], "c": ["never-seen"]})
    assert pipe.predict(new).shape == (1,)


def test_no_preprocessing_choices(tmp_path):
    spec = _spec(
        tmp_path,
        preprocessing={
            "numeric": {"impute": "none", "scale": "none"},
            "categorical": {"encode": "ordinal", "impute": "none"},
        },
    )
    pipe = build_pipeline(spec, ["x"], ["c"])
    params = loggable_params(pipe)
    assert params["preprocess__num"] == "passthrough"
    assert params["preprocess__cat__encode__unknown_value"] == -1


def test_params_that_never_vary_are_not_logged_but_what_the_spec_set_is(tmp_path):
    spec = _spec(tmp_path, estimator={"name": "RandomForestClassifier", "params": {"max_depth": 3}})
    pipe = build_pipeline(spec, ["x"], ["c"])
    for noise in ("memory", "verbose", "preprocess__num__scale__copy", "model__verbose"):
        assert noise not in loggable_params(pipe)
    params = loggable_params(pipe, keep=["model__n_estimators"])
    assert params["model__n_estimators"] == 100  # a default, but asked for (swept)
    assert params["model__max_depth"] == 3
    assert len(params) < 20, sorted(params)  # the runs table's columns, not 120
