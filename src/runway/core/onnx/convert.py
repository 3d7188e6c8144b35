"""A fitted runway pipeline -> one ONNX graph that scores like scikit-learn.

    model = to_onnx(pipeline, contract)        # onnx.ModelProto, checked

The preprocessing is emitted by :mod:`runway.core.onnx.graph` (float64, in
scikit-learn's order); only the estimator goes through skl2onnx, on a
``[N, F]`` input named ``features``, and the two graphs are stitched. Every
workaround for a converter bug lives here or there, each with a test in
``tests/unit/core/onnx/test_onnx_upstream.py`` that fails once upstream fixes it:

- **Estimator input dtype** (:data:`ESTIMATOR_DTYPE`, chosen by measurement):
  RandomForest/ExtraTrees/DecisionTree/GradientBoosting get a ``Cast(float32)``
  right before the trees, as scikit-learn casts X itself (skl2onnx's float
  thresholds emulate ``(float)x <= threshold`` exactly); double into those trees
  is an invalid model or flips labels. HistGradientBoosting compares float64 X
  with float64 thresholds, so it gets double input and a node upgraded to
  ai.onnx.ml v3 ``*_as_tensor`` double attributes. Linear models, KNN and SVC
  stay double; SVR is float (onnxruntime has no double SVMRegressor kernel).
- **HistGradientBoosting does not convert** with onnx >= 1.2x (``Expected an
  int, got a boolean``: its bool ``missing_go_to_left`` goes into an INTS
  attribute): coerced while converting (:func:`patched_skl2onnx`).
- **NaN reaching scikit-learn trees** (numeric ``impute: none``): skl2onnx
  writes ``nodes_missing_value_tracks_true = 0`` everywhere; rewritten from each
  tree's learnt ``missing_go_to_left``.
- **Input names**: skl2onnx renames columns (``"mean radius"`` ->
  ``mean_radius``); the twin has one packed input per block of the
  ColumnTransformer, named after it (``num``, ``bool``, ``dt`` float64 ``[N, k]``:
  numbers, booleans as 1/0, timestamps as epoch seconds; ``cat``, ``many``
  string ``[N, m]``) and the column order and kinds live in the metadata.

Everything a runtime needs (column order and kinds, the missing sentinel,
classes, outputs) is JSON in ``metadata_props["runway.onnx"]``; the runtimes
(:mod:`runway.core.onnx.model`, the edge predictor) need nothing else.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runway.core.columns.schema import DataContract
from runway.core.onnx.graph import SENTINEL, Graph, categorical_block, numeric_block, steps_of
from runway.core.onnx.parts import boolean_steps, datetime_block
from runway.errors import LightenRefused

META_KEY = "runway.onnx"
META_VERSION = 1
OPSET = 17  # main domain: every onnxruntime from 1.13 on
ML_OPSET = 3  # ai.onnx.ml: v3 TreeEnsemble* take double thresholds
IR_VERSION = 8  # loadable by onnxruntime >= 1.10

ESTIMATOR_DTYPE = {
    **dict.fromkeys(
        (
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "GradientBoostingClassifier",
            "GradientBoostingRegressor",
            "SVR",
        ),
        "float",
    ),
    **dict.fromkeys(
        (
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
            "LogisticRegression",
            "LinearRegression",
            "Ridge",
            "Lasso",
            "ElasticNet",
            "KNeighborsClassifier",
            "KNeighborsRegressor",
            "SVC",
        ),
        "double",
    ),
}
# Forests and trees average votes: scikit-learn sums in float64 and an exact tie (10
# of 20 trees) goes to the first class, while onnxruntime's float32 sums break it
# either way. Their twins take the label from the probabilities, a tie being
# anything within TIE_EPS of the top (float32 sums of <= 1,000 trees err < 1e-6).
LABEL_FROM_PROBA = frozenset(
    {"RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier"}
)
TIE_EPS = 1e-6
# Estimators that score NaN themselves; the others raise in scikit-learn, so the
# runtime refuses NaN when no numeric imputer precedes them.
NAN_TOLERANT = frozenset(
    {
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }
)


# the first step of a block says its kind (runway's pipeline.py builds them this way)
FIRST_STEP_KIND = {
    "BooleanEncoder": "boolean",
    "DatetimeParts": "datetime",
    "CategoryText": "categorical",
    "OneHotEncoder": "categorical",
    "OrdinalEncoder": "categorical",
    "TargetEncoder": "categorical",
}


def column_plan(pipeline: Any) -> list[tuple[str, str, Any, list[str]]]:
    """(block name, kind, transformer, columns) per block of runway's ``preprocess``."""
    from sklearn.compose import ColumnTransformer

    if len(pipeline.steps) != 2 or not isinstance(pipeline.steps[0][1], ColumnTransformer):
        raise LightenRefused("expected runway's Pipeline: preprocess (ColumnTransformer), model")
    plan = []
    for name, transformer, cols in pipeline.steps[0][1].transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if name == "remainder" and len(cols):
            raise LightenRefused("ColumnTransformer(remainder=...) must be 'drop'")
        steps = steps_of(transformer)
        encodes = any(FIRST_STEP_KIND.get(type(s).__name__) == "categorical" for _, s in steps)
        first = FIRST_STEP_KIND.get(type(steps[0][1]).__name__) if steps else None
        kind = first or ("categorical" if encodes else "numeric")
        plan.append((str(name), kind, transformer, list(map(str, cols))))
    return plan


def to_onnx(pipeline: Any, contract: DataContract | None = None) -> onnx.ModelProto:
    """Convert a fitted runway pipeline; raises :class:`LightenRefused` for what has no twin."""
    estimator = pipeline.steps[-1][1]
    name = type(estimator).__name__
    if name not in ESTIMATOR_DTYPE:
        raise LightenRefused(f"estimator {name} is not on runway's ONNX list")
    dtype = ESTIMATOR_DTYPE[name]
    g = Graph()
    inputs, columns, blocks, width, imputes, literal = _preprocessing(g, pipeline)
    features = blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, axis=1)
    if dtype == "double":
        g.nodes.append(helper.make_node("Identity", [features], ["features"], name="pre_out"))
    else:  # what scikit-learn's trees do to X themselves
        cast = helper.make_node(
            "Cast", [features], ["features"], name="pre_f32", to=TensorProto.FLOAT
        )
        g.nodes.append(cast)
    est_model = convert_estimator(estimator, width, dtype)
    if name.startswith("HistGradientBoosting"):
        upgrade_hgb_double(est_model, estimator)
    elif name in NAN_TOLERANT:
        route_missing_like_sklearn(est_model, estimator)
    model = _stitch(g, inputs, est_model)
    classes = _classes(estimator)
    outputs = [o.name for o in est_model.graph.output]
    meta = {
        "version": META_VERSION,
        "sentinel": SENTINEL,
        "literal_sentinel": literal,
        "task": "classification" if classes is not None else "regression",
        "estimator": name,
        "estimator_dtype": dtype,
        "classes": classes,
        "outputs": {"label": outputs[0], "probabilities": outputs[1] if len(outputs) > 1 else None}
        if classes is not None
        else {"value": outputs[0]},
        "label_from_proba": TIE_EPS if name in LABEL_FROM_PROBA else None,
        "numeric_nan": "impute" if imputes else "model" if name in NAN_TOLERANT else "reject",
        "columns": columns,
        "contract": contract.to_json_dict() if contract is not None else None,
    }
    helper.set_model_props(model, {META_KEY: json.dumps(meta)})
    onnx.checker.check_model(model, full_check=True)
    return model


def _preprocessing(
    g: Graph, pipeline: Any
) -> tuple[list[Any], list[dict[str, Any]], list[str], int, bool, str | None]:
    """Inputs, column metadata, feature blocks, width, NaN imputed everywhere, literal sentinel."""
    inputs: list[Any] = []
    columns: list[dict[str, Any]] = []
    blocks: list[str] = []
    width = 0
    imputes, literal = True, None
    for name, kind, transformer, cols in column_plan(pipeline):
        iname = name  # one input per block: its columns in the block's order
        elem = TensorProto.STRING if kind == "categorical" else TensorProto.DOUBLE
        inputs.append(helper.make_tensor_value_info(iname, elem, [None, len(cols)]))
        columns += [
            {"name": c, "kind": kind, "input": iname, "index": i} for i, c in enumerate(cols)
        ]
        try:
            outs, w, block_imputes, block_literal = _block(g, iname, kind, transformer, cols)
        except LightenRefused as exc:
            shown = ", ".join(map(repr, cols))
            raise LightenRefused(f"column(s) {shown} ({kind}, block {name!r}): {exc}") from exc
        imputes = imputes and block_imputes
        literal = max(literal or "", block_literal or "", key=len) or None
        blocks += outs
        width += w
    if not blocks:
        raise LightenRefused("the pipeline reads no columns")
    return inputs, columns, blocks, width, imputes, literal


def _block(
    g: Graph, x: str, kind: str, transformer: Any, cols: list[str]
) -> tuple[list[str], int, bool, str | None]:
    """One block's outputs, width, whether its NaN is imputed, and its literal sentinel."""
    steps = steps_of(transformer)
    if kind == "categorical":
        outs, width, literal = categorical_block(g, x, steps, cols)
        return outs, width, True, literal
    width = len(cols)
    if kind == "boolean":
        steps = boolean_steps(steps)
    elif kind == "datetime":
        x, width, steps = datetime_block(g, x, steps, width)
    out, width = numeric_block(g, x, steps, width)
    imputes = any(type(s).__name__ == "SimpleImputer" for _, s in steps)
    return [out], width, imputes, None


def _classes(estimator: Any) -> list[Any] | None:
    if not hasattr(estimator, "classes_"):
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in estimator.classes_]


def _stitch(g: Graph, inputs: list[Any], est_model: onnx.ModelProto) -> onnx.ModelProto:
    """Our nodes feed ``features``; the estimator's graph reads it (names cannot collide)."""
    eg = est_model.graph
    graph = helper.make_graph(
        [*g.nodes, *eg.node],
        "runway_pipeline",
        inputs,
        list(eg.output),
        initializer=[*g.inits, *eg.initializer],
    )
    opsets = {"": OPSET, "ai.onnx.ml": ML_OPSET}
    for o in est_model.opset_import:
        opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        producer_name="runway",
    )
    model.ir_version = IR_VERSION
    return model


# --- the estimator, through skl2onnx -----------------------------------------------------


@contextlib.contextmanager
def patched_skl2onnx() -> Iterator[None]:
    """Coerce HGB's bool ``missing_go_to_left`` to int while converting (restored after)."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(
                kwargs["nodes_missing_value_tracks_true"]
            )
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def convert_estimator(
    estimator: Any, n_features: int, dtype: str, patch: bool = True
) -> onnx.ModelProto:
    """skl2onnx on the estimator alone, input ``features`` ``[N, n_features]``, no ZipMap."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor = DoubleTensorType if dtype == "double" else FloatTensorType
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    with patched_skl2onnx() if patch else contextlib.nullcontext():
        try:
            return convert_sklearn(
                estimator,
                initial_types=[("features", tensor([None, n_features]))],
                options=options,
                target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
            )
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
            name = type(estimator).__name__
            why = exc.__cause__ or exc.__context__ or exc
            first = (str(why).splitlines() or [type(why).__name__])[0][:300]
            raise LightenRefused(f"{name}: skl2onnx cannot convert it: {first}") from exc


def _tree_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    kinds = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
    return [n for n in model.graph.node if n.op_type in kinds]


def _set_attr(node: onnx.NodeProto, name: str, value: Any) -> None:
    for i, attribute in enumerate(node.attribute):
        if attribute.name == name:
            del node.attribute[i]
            break
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))


def _get_attr(node: onnx.NodeProto, name: str) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def route_missing_like_sklearn(model: onnx.ModelProto, estimator: Any) -> None:
    """``nodes_missing_value_tracks_true`` from each tree's learnt ``missing_go_to_left``."""
    nodes = _tree_nodes(model)
    if len(nodes) != 1 or type(estimator).__name__.startswith("GradientBoosting"):
        return  # GradientBoosting refuses NaN in scikit-learn: nothing to emulate
    members = np.ravel(estimator.estimators_) if hasattr(estimator, "estimators_") else [estimator]
    flags: list[int] = []
    for member in members:
        tree = member.tree_
        learnt = getattr(tree, "missing_go_to_left", None)
        if learnt is None:
            return
        leaf = tree.children_left == -1
        flags += [int(bool(m) and not lf) for m, lf in zip(learnt, leaf, strict=True)]
    current = _get_attr(nodes[0], "nodes_missing_value_tracks_true")
    if current is None or len(current) != len(flags):
        raise LightenRefused("skl2onnx's tree node order is not the one runway expects")
    _set_attr(nodes[0], "nodes_missing_value_tracks_true", flags)


def upgrade_hgb_double(model: onnx.ModelProto, estimator: Any) -> None:
    """HGB's float32 thresholds and leaves replaced by scikit-learn's float64 ones (v3 tensors)."""
    (node,) = _tree_nodes(model)
    thresholds: list[float] = []
    leaves: list[float] = []
    for per_iteration in estimator._predictors:
        for tree in per_iteration:
            for n in tree.nodes:
                thresholds.append(0.0 if n["is_leaf"] else float(n["num_threshold"]))
                if n["is_leaf"]:
                    leaves.append(float(n["value"]))
    old = np.asarray(_get_attr(node, "nodes_values"), dtype=np.float32)
    weights = "class_weights" if node.op_type == "TreeEnsembleClassifier" else "target_weights"
    old_leaves = np.asarray(_get_attr(node, weights), dtype=np.float32)
    if not (
        len(old) == len(thresholds)
        and np.array_equal(old, np.asarray(thresholds, dtype=np.float32))
        and len(old_leaves) == len(leaves)
        and np.allclose(old_leaves, np.asarray(leaves, dtype=np.float32))
    ):
        raise LightenRefused("skl2onnx's HistGradientBoosting node order is not the one expected")
    base = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
    for name, values in (("nodes_values", thresholds), (weights, leaves), ("base_values", base)):
        _set_attr(node, name, None)
        tensor = numpy_helper.from_array(np.asarray(values, dtype=np.float64), name)
        _set_attr(node, name + "_as_tensor", tensor)
    # TreeEnsemble* always output float32 scores; skl2onnx declared the double it was fed
    out = 1 if node.op_type == "TreeEnsembleClassifier" else 0
    declared = node.output[out]
    node.output[out] = declared + "_f32"
    model.graph.node.append(
        helper.make_node(
            "Cast", [declared + "_f32"], [declared], name="hgb_f64", to=TensorProto.DOUBLE
        )
    )


def metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The ``runway.onnx`` metadata of a converted model."""
    props = {p.key: p.value for p in model.metadata_props}
    doc: dict[str, Any] = json.loads(props[META_KEY])
    return doc
