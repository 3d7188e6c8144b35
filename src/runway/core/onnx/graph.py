"""The preprocessing half of an ONNX version: runway's ColumnTransformer as plain ONNX ops.

skl2onnx converts the preprocessing wrong or not at all on runway's pipelines
(numbers in ``tests/unit/core/onnx/test_onnx_upstream.py`` and the README), so it is
emitted here instead, and only the estimator goes through skl2onnx
(:mod:`runway.core.onnx.convert`):

- Numeric columns are computed in **float64, in scikit-learn's order of
  operations** (``Where(IsNaN)`` imputation, ``(x - mean) / scale``,
  ``x * scale + min``), so the feature matrix is bit-identical to
  ``pipeline[:-1].transform``. With skl2onnx's float32 imputer and scaler,
  values on a tree's split threshold cross it and labels flip.
- Missing categoricals cannot be NaN in a string tensor: the runtime feeds them
  as :data:`SENTINEL` (the string runway's constant imputer fills in) and the
  graph imputes on it. skl2onnx's string imputer refuses ``missing_values=nan``.
- Encoders are emitted from a **probe** of the fitted encoder: every known
  category, NaN and an unseen value go through ``encoder.transform``, and the
  answers become ``LabelEncoder`` tables. ``handle_unknown``,
  ``infrequent_if_exist``/``min_frequency``, ``unknown_value`` and
  ``encoded_missing_value`` then behave exactly as scikit-learn's, whatever it
  does inside.

Categorical ``impute: none`` with missing values in training (the encoder
learnt NaN as a category) is refused: scikit-learn and a string graph would
agree only while every client spells missing the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from runway.core.onnx.model import SENTINEL
from runway.errors import LightenRefused

__all__ = ["SENTINEL", "Graph", "categorical_block", "numeric_block", "steps_of"]
_UNSEEN = "\x00runway-unseen\x00"  # a probe value no training category can equal


class Graph:
    """A small graph builder: unique ``pre_`` names, initializers, nodes."""

    def __init__(self, prefix: str = "pre_") -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        """A fresh name (the estimator's graph never uses the prefix)."""
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value: Any, hint: str = "c", dtype: Any = None) -> str:
        """An initializer holding ``value``; strings become a STRING tensor."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype.kind in "OUS":
            data: Any = [str(v).encode("utf-8") for v in arr.ravel()]
            tensor = helper.make_tensor(self.name(hint), TensorProto.STRING, arr.shape, data)
        else:
            tensor = numpy_helper.from_array(arr, self.name(hint))
        self.inits.append(tensor)
        return tensor.name

    def op(
        self, op_type: str, inputs: list[str], hint: str = "", domain: str = "", **attrs: Any
    ) -> str:
        """Append one node; return its (single) output's name."""
        out = self.name(hint or op_type.lower())
        node = helper.make_node(
            op_type, inputs, [out], name=self.name(op_type), domain=domain, **attrs
        )
        self.nodes.append(node)
        return out


def steps_of(transformer: Any) -> list[tuple[str, Any]]:
    """The steps of one ColumnTransformer entry ("passthrough" has none)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        if transformer == "passthrough":
            return []
        raise LightenRefused(f"transformer {transformer!r} has no ONNX conversion")
    if isinstance(transformer, Pipeline):
        return list(transformer.steps)
    # a fitted ColumnTransformer stores "passthrough" as FunctionTransformer()
    if isinstance(transformer, FunctionTransformer) and transformer.func is None:
        return []
    return [("step", transformer)]


def is_missing(value: Any) -> bool:
    """None or a float NaN (what scikit-learn's imputers count as missing)."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _row(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(1, -1)


# --- numeric columns ---------------------------------------------------------------------


def numeric_block(g: Graph, x: str, steps: list[tuple[str, Any]], width: int) -> tuple[str, int]:
    """float64 [N, k] -> float64 [N, k'], scikit-learn's operations in its order."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    for sname, step in steps:
        if isinstance(step, SimpleImputer):
            x, width = _numeric_impute(g, x, step, width)
        elif isinstance(step, StandardScaler):
            if step.with_mean and step.mean_ is not None:
                x = g.op("Sub", [x, g.const(_row(step.mean_), "mean")])
            if step.with_std and step.scale_ is not None:
                x = g.op("Div", [x, g.const(_row(step.scale_), "scale")])
        elif isinstance(step, RobustScaler):
            if step.with_centering and step.center_ is not None:
                x = g.op("Sub", [x, g.const(_row(step.center_), "center")])
            if step.with_scaling and step.scale_ is not None:
                x = g.op("Div", [x, g.const(_row(step.scale_), "scale")])
        elif isinstance(step, MinMaxScaler):
            x = g.op("Mul", [x, g.const(_row(step.scale_), "scale")])
            x = g.op("Add", [x, g.const(_row(step.min_), "min")])
            if step.clip:
                low, high = step.feature_range
                x = g.op("Clip", [x, g.const(np.float64(low)), g.const(np.float64(high))])
        else:
            raise LightenRefused(f"step {sname!r}: {type(step).__name__} has no ONNX conversion")
    return x, width


def _numeric_impute(g: Graph, x: str, step: Any, width: int) -> tuple[str, int]:
    if not is_missing(step.missing_values):
        raise LightenRefused("a numeric SimpleImputer must impute NaN (missing_values=np.nan)")
    if step.add_indicator:
        raise LightenRefused("SimpleImputer(add_indicator=True) has no ONNX conversion")
    stats = np.asarray(step.statistics_, dtype=np.float64)
    x = g.op("Where", [g.op("IsNaN", [x]), g.const(_row(stats), "impute"), x], "imputed")
    keep = np.flatnonzero(~np.isnan(stats))
    if len(keep) != len(stats) and not getattr(step, "keep_empty_features", False):
        # scikit-learn drops the columns that were all-missing in training
        x = g.op("Gather", [x, g.const(keep.astype(np.int64), "keep")], axis=1)
        width = len(keep)
    return x, width


# --- categorical columns -----------------------------------------------------------------


def categorical_block(
    g: Graph, s: str, steps: list[tuple[str, Any]], cols: list[str]
) -> tuple[list[str], int, str | None]:
    """string [N, m] -> float64 blocks.

    Returns (block outputs, total width, literal): ``literal`` is what the
    runtime feeds instead of an input that *is* the sentinel string, so it stays
    an unseen value as in scikit-learn (None when the sentinel and missing mean
    the same: constant imputation to the sentinel itself).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    encoder: Any = None
    strategy: str | None = None
    fills: list[str] = []
    for sname, step in steps:
        if type(step).__name__ == "CategoryText":
            continue  # text, missing as NaN: what the runtime feeds already (sentinel aside)
        if isinstance(step, SimpleImputer):
            s, strategy, fills = _categorical_impute(g, s, step)
        elif isinstance(step, (OneHotEncoder, OrdinalEncoder)):
            encoder = step
        else:
            raise LightenRefused(f"step {sname!r}: {type(step).__name__} has no ONNX conversion")
    if encoder is None:
        raise LightenRefused("categorical columns must end in OneHotEncoder or OrdinalEncoder")
    if isinstance(encoder, OneHotEncoder) and encoder.drop_idx_ is not None:
        raise LightenRefused("OneHotEncoder(drop=...) has no ONNX conversion")
    blocks: list[str] = []
    total = 0
    for j, cats in enumerate(encoder.categories_):
        _check_categories(cols[j], list(cats), strategy)
        out, width = _encode_column(g, s, encoder, j, strategy, total)
        blocks.append(out)
        total += width
    literal = None
    if not (strategy == "constant" and all(v == SENTINEL for v in fills)):
        known = {str(v) for c in encoder.categories_ for v in c if not is_missing(v)}
        literal = SENTINEL + " (literal)"
        while literal in known:
            literal += "'"
    return blocks, total, literal


def _categorical_impute(g: Graph, s: str, step: Any) -> tuple[str, str, list[str]]:
    if step.add_indicator:
        raise LightenRefused("SimpleImputer(add_indicator=True) has no ONNX conversion")
    if not is_missing(step.missing_values):
        raise LightenRefused("a categorical SimpleImputer must impute NaN (missing_values=np.nan)")
    stats = list(np.asarray(step.statistics_, dtype=object))
    if any(is_missing(v) for v in stats):
        raise LightenRefused("a categorical column was all-missing in training")
    fills = [str(v) for v in stats]
    # string Equal needs opset 19; a LabelEncoder does it from ai.onnx.ml 2
    hit = g.op(
        "LabelEncoder",
        [s],
        domain="ai.onnx.ml",
        keys_strings=[SENTINEL],
        values_int64s=[1],
        default_int64=0,
    )
    mask = g.op("Cast", [hit], to=TensorProto.BOOL)
    fill = g.const(np.array([fills], dtype=object), "fill")
    return g.op("Where", [mask, fill, s], "imputed"), str(step.strategy), fills


def _check_categories(column: str, known: list[Any], strategy: str | None) -> None:
    if any(is_missing(v) for v in known):
        raise LightenRefused(
            f"column {column!r}: the encoder learnt 'missing' as a category (categorical "
            "impute: none, with missing values in training); an ONNX version would score a "
            "missing value only if every client spelled it the same way. Retrain with "
            "preprocessing.categorical.impute: constant (or most_frequent)"
        )
    if SENTINEL in {str(v) for v in known} and strategy not in (None, "constant"):
        raise LightenRefused(
            f"column {column!r}: the literal {SENTINEL!r} is a training category; "
            "missing and that value would be confused"
        )


def probe(encoder: Any, j: int, values: list[Any]) -> np.ndarray:
    """``encoder.transform`` of rows where column ``j`` takes each value (the others a known one)."""
    cats = encoder.categories_
    base = [c[0] for c in cats]
    rows = [[v if k == j else base[k] for k in range(len(cats))] for v in values]
    names = getattr(encoder, "feature_names_in_", None)
    data: Any = (
        pd.DataFrame(rows, columns=list(names), dtype=object)
        if names is not None
        else np.array(rows, dtype=object)
    )
    out = encoder.transform(data)
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float64)


def _encode_column(
    g: Graph, s: str, encoder: Any, j: int, strategy: str | None, offset: int
) -> tuple[str, int]:
    """Column ``j`` through a LabelEncoder table read off the fitted encoder."""
    from sklearn.preprocessing import OneHotEncoder

    values = [v for v in encoder.categories_[j] if not is_missing(v)]
    out = probe(encoder, j, [*values, np.nan, _UNSEEN])
    keys = [str(v) for v in values]
    col = g.op("Gather", [s, g.const(np.array([j], dtype=np.int64), "j")], axis=1)
    if isinstance(encoder, OneHotEncoder):
        width = _onehot_width(encoder, j)
        idx = [_hot_index(r) for r in out[:, offset : offset + width]]
        codes = idx[:-2]
        if strategy is None:  # the sentinel reaches the encoder: it means NaN
            keys, codes = [*keys, SENTINEL], [*codes, idx[-2]]
        code = g.op(
            "LabelEncoder",
            [col],
            domain="ai.onnx.ml",
            keys_strings=keys,
            values_int64s=codes,
            default_int64=idx[-1],
        )
        arange = g.const(np.arange(width, dtype=np.int64).reshape(1, -1), "arange")
        return g.op("Cast", [g.op("Equal", [code, arange])], to=TensorProto.DOUBLE), width
    column = out[:, offset]
    floats = [float(v) for v in column[:-2]]
    if strategy is None:
        keys, floats = [*keys, SENTINEL], [*floats, float(column[-2])]
    code = g.op(
        "LabelEncoder",
        [col],
        domain="ai.onnx.ml",
        keys_strings=keys,
        values_floats=floats,
        default_float=float(column[-1]),
    )
    return g.op("Cast", [code], to=TensorProto.DOUBLE), 1


def _hot_index(row: np.ndarray) -> int:
    hot = np.flatnonzero(row)
    if len(hot) == 0:
        return -1
    if len(hot) != 1 or row[hot[0]] != 1.0:
        raise LightenRefused("the one-hot encoder's output is not one-hot")
    return int(hot[0])


def _onehot_width(encoder: Any, j: int) -> int:
    cats = encoder.categories_[j]
    infrequent = None
    if getattr(encoder, "_infrequent_enabled", False):
        infrequent = encoder.infrequent_categories_[j]
    return len(cats) if infrequent is None else len(cats) - len(infrequent) + 1
