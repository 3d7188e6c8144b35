"""Pipeline construction: pure scikit-learn, testable without MLflow.

Step names are part of the public contract: ``preprocess`` then ``model``, so
``model__max_depth`` means the same in a spec, a sweep trial, a run's params and
``Pipeline.set_params``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from runway.core.catalog import ESTIMATORS
from runway.core.spec import CategoricalPreprocessing, ExperimentSpec, NumericPreprocessing

PREPROCESS_STEP = "preprocess"
MODEL_STEP = "model"
_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


def build_estimator(spec: ExperimentSpec) -> BaseEstimator:
    """The spec's estimator, with its params and the split seed where it takes one."""
    cls = ESTIMATORS[spec.estimator.name].load()
    params = dict(spec.estimator.params)
    if "random_state" in cls().get_params() and "random_state" not in params:
        params["random_state"] = spec.split.seed
    return cls(**params)


def _numeric(cfg: NumericPreprocessing) -> Pipeline | str:
    steps: list[tuple[str, Any]] = []
    if cfg.impute != "none":
        steps.append(("impute", SimpleImputer(strategy=cfg.impute)))
    if cfg.scale != "none":
        steps.append(("scale", _SCALERS[cfg.scale]()))
    return Pipeline(steps) if steps else "passthrough"


def _categorical(cfg: CategoricalPreprocessing) -> Pipeline:
    steps: list[tuple[str, Any]] = []
    if cfg.impute == "constant":
        steps.append(("impute", SimpleImputer(strategy="constant", fill_value="__missing__")))
    elif cfg.impute == "most_frequent":
        steps.append(("impute", SimpleImputer(strategy="most_frequent")))
    if cfg.encode == "onehot":
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist" if cfg.min_frequency else "ignore",
            min_frequency=cfg.min_frequency,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
        )
    steps.append(("encode", encoder))
    return Pipeline(steps)


def build_pipeline(spec: ExperimentSpec, numeric: list[str], categorical: list[str]) -> Pipeline:
    """Preprocessing for the given columns followed by the spec's estimator."""
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("num", _numeric(spec.preprocessing.numeric), numeric))
    if categorical:
        transformers.append(("cat", _categorical(spec.preprocessing.categorical), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([(PREPROCESS_STEP, preprocess), (MODEL_STEP, build_estimator(spec))])


def loggable_params(pipeline: Pipeline) -> dict[str, Any]:
    """Every scalar parameter of the pipeline under its ``step__param`` name.

    Estimator-valued and list-valued params (steps, transformers) are skipped:
    their scalar leaves are already listed under deeper names.
    """
    scalars = (str, int, float, bool, type(None))
    return {
        key: value
        for key, value in sorted(pipeline.get_params(deep=True).items())
        if isinstance(value, scalars)
    }
