"""Pipeline construction: pure scikit-learn, testable without MLflow.

Step names are part of the public contract: ``preprocess`` then ``model``, so
``model__max_depth`` means the same in a spec, a sweep trial, a run's params and
``Pipeline.set_params``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
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
    TargetEncoder,
)

from runway.core.training.catalog import ESTIMATORS
from runway.core.training.spec import (
    BooleanPreprocessing,
    CategoricalPreprocessing,
    DatetimePreprocessing,
    ExperimentSpec,
    NumericPreprocessing,
)
from runway.core.training.transformers import BooleanEncoder, CategoryText, DatetimeParts

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


def _numeric(cfg: NumericPreprocessing | DatetimePreprocessing) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    if cfg.impute != "none":
        steps.append(("impute", SimpleImputer(strategy=cfg.impute)))
    if cfg.scale != "none":
        steps.append(("scale", _SCALERS[cfg.scale]()))
    return steps


def _boolean(cfg: BooleanPreprocessing) -> Pipeline:
    steps: list[tuple[str, Any]] = [("encode", BooleanEncoder())]
    if cfg.impute != "none":
        steps.append(("impute", SimpleImputer(strategy=cfg.impute)))
    return Pipeline(steps)


def _datetime(cfg: DatetimePreprocessing) -> Pipeline:
    return Pipeline([("parts", DatetimeParts(parts=tuple(cfg.parts))), *_numeric(cfg)])


def _categorical(cfg: CategoricalPreprocessing, encode: str, spec: ExperimentSpec) -> Pipeline:
    steps: list[tuple[str, Any]] = [("text", CategoryText())]
    if cfg.impute == "constant":
        steps.append(("impute", SimpleImputer(strategy="constant", fill_value="__missing__")))
    elif cfg.impute == "most_frequent":
        steps.append(("impute", SimpleImputer(strategy="most_frequent")))
    encoder: Any
    if encode == "target":
        # Cross-fitted inside fit_transform; unseen values get the overall target mean.
        target = "continuous" if spec.task == "regression" else "auto"
        encoder = TargetEncoder(target_type=target, random_state=spec.split.seed)
    elif encode == "onehot":
        encoder = OneHotEncoder(
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


def build_pipeline(
    spec: ExperimentSpec,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    boolean: Sequence[str] = (),
    datetime: Sequence[str] = (),
    many_levels: Sequence[str] = (),
) -> Pipeline:
    """Preprocessing for the given columns followed by the spec's estimator.

    One branch per kind: ``num``, ``bool``, ``cat``, ``many`` (the many-level
    categoricals, when ``many_levels.encode`` gives them their own encoding) and
    ``dt``. Branches without columns are left out, so a spec without booleans or
    timestamps builds the pipeline it always did.
    """
    pre = spec.preprocessing
    cat = pre.categorical
    separate = list(many_levels) if cat.many_levels.encode != "same" else []
    plain = [c for c in categorical if c not in separate]
    numeric_steps = _numeric(pre.numeric)
    branches: list[tuple[str, Any, list[str]]] = [
        ("num", Pipeline(numeric_steps) if numeric_steps else "passthrough", list(numeric)),
        ("bool", _boolean(pre.boolean), list(boolean)),
        ("cat", _categorical(cat, cat.encode, spec), plain),
        ("many", _categorical(cat, cat.many_levels.encode, spec), separate),
        ("dt", _datetime(pre.datetime), list(datetime)),
    ]
    transformers = [branch for branch in branches if branch[2]]
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([(PREPROCESS_STEP, preprocess), (MODEL_STEP, build_estimator(spec))])


def inference_ready(pipeline: Pipeline) -> Pipeline:
    """Set every ``n_jobs`` of a fitted pipeline to 1: the model is scored one request at a time.

    Why: a forest fitted with ``n_jobs=-1`` predicts one row several times slower
    (joblib starts a pool per call) and oversubscribes a shared host. Batch scoring sets
    its own value at load (``runway.scoring.model``). Training params stay as logged.
    """
    params = pipeline.get_params(deep=True)
    jobs = {k: 1 for k, v in params.items() if k.endswith("n_jobs") and v not in (None, 1)}
    return pipeline.set_params(**jobs) if jobs else pipeline


def loggable_params(pipeline: Pipeline, keep: Iterable[str] = ()) -> dict[str, Any]:
    """The pipeline's scalar params that say something, under their ``step__param`` names.

    A param still at its class's default (``memory``, ``verbose``, ``copy``...) is
    noise in the runs table (120 columns that never vary) and is left out; one in
    ``keep`` (what the spec set, what a sweep searched) is logged whatever its value.
    Estimator-valued and list-valued params are skipped: their leaves have deeper names.
    """
    scalars = (str, int, float, bool, type(None))
    kept = set(keep)
    params = pipeline.get_params(deep=True)
    return {
        key: value
        for key, value in sorted(params.items())
        if isinstance(value, scalars) and (key in kept or not _is_default(params, pipeline, key))
    }


def _is_default(params: dict[str, Any], pipeline: Pipeline, key: str) -> bool:
    """Whether ``key``'s value is its owner's constructor default (NaN equals NaN)."""
    owner_key, _, name = key.rpartition("__")
    owner = params.get(owner_key) if owner_key else pipeline
    try:
        default = inspect.signature(type(owner)).parameters[name].default
    except (KeyError, TypeError, ValueError):
        return False
    if default is inspect.Parameter.empty:
        return False
    value = params[key]
    nan = isinstance(value, float) and isinstance(default, float) and value != value
    return bool(nan and default != default) or (type(value) is type(default) and value == default)
