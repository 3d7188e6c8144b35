"""The ONNX version at scoring time: onnxruntime, numpy and pandas, nothing else.

This module is the twin's MLflow ``loader_module``: ``mlflow models serve``
(and runway's backends, which run MLflow's own scoring app) call
:func:`_load_pyfunc` on the model's ``data/twin`` folder. It imports neither
scikit-learn nor skl2onnx nor onnx, so a served twin does not pay for them
(import time, memory); the trust checks (:mod:`runway.core.governance.trust`) accept a
twin only when its loader is this module.

The folder holds ``model.onnx`` and ``twin.json`` (:data:`TWIN_FILE`: the
source version, the graph's SHA-256, the parity figures). The loader refuses a
graph whose hash is not the recorded one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ONNX_FILE = "model.onnx"
TWIN_FILE = "twin.json"
DATA_DIR = "twin"  # the folder MLflow copies under data/
META_KEY = "runway.onnx"
SENTINEL = "__missing__"  # how a missing categorical reaches the graph (a string tensor has no NaN)
THREADS_ENV = "RUNWAY_ONNX_THREADS"


class TwinIntegrityError(ValueError):
    """``model.onnx`` is not the graph that was checked when the twin was made."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime session pinned to ``threads`` (one: single rows on a small host)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxTwin:
    """Scores runway's DataFrames with the twin's graph: ``predict`` and ``predict_proba``."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.session = session(path, threads)
        self.meta: dict[str, Any] = json.loads(
            self.session.get_modelmeta().custom_metadata_map[META_KEY]
        )
        self.groups: dict[str, list[str]] = {}
        self.kinds: dict[str, str] = {}
        for column in self.meta["columns"]:
            self.groups.setdefault(column["input"], []).append(column["name"])
            self.kinds[column["input"]] = column["kind"]
        self.columns = [c["name"] for c in self.meta["columns"]]
        self.classes: list[Any] | None = self.meta.get("classes")
        self.is_classifier = self.meta["task"] == "classification"
        self._positions: tuple[tuple[Any, ...], dict[str, np.ndarray]] | None = None

    def _where(self, columns: pd.Index) -> dict[str, np.ndarray]:
        key = tuple(columns)
        if self._positions is None or self._positions[0] != key:
            found = {}
            for name, cols in self.groups.items():
                idx = columns.get_indexer(pd.Index(cols))
                if (idx < 0).any():
                    missing = [c for c, i in zip(cols, idx, strict=True) if i < 0]
                    raise KeyError(f"missing input column(s): {missing}")
                found[name] = idx
            self._positions = (key, found)
        return self._positions[1]

    def feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's inputs from a frame; missing categoricals become the sentinel."""
        positions = self._where(frame.columns)
        names = self._positions[0] if self._positions is not None else ()
        column = getattr(frame, "_get_column_array", None)  # pandas' own, ~10x cheaper than iloc
        groups = {
            name: [(names[i], column(i) if column else frame.iloc[:, i].array) for i in idx]
            for name, idx in positions.items()
        }
        return self._feeds(groups)

    def feeds_from(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The graph's inputs from one array (or list) per input column, by name.

        The lean path (:mod:`runway.store.scoring_app`'s twin route): the gateway has
        checked and typed the rows, so no frame is built; every kind is read as
        :meth:`feeds` reads it, the same values out.
        """
        groups = {}
        for name, cols in self.groups.items():
            missing = [c for c in cols if c not in columns]
            if missing:
                raise KeyError(f"missing input column(s): {missing}")
            groups[name] = [(c, columns[c]) for c in cols]
        return self._feeds(groups)

    def _feeds(self, groups: Mapping[str, list[tuple[Any, Any]]]) -> dict[str, np.ndarray]:
        """Each input's block from its (column name, values) pairs, by the input's kind.

        Why per column, not one object block of the frame: a whole-frame object
        conversion and ``pd.isna`` over it were most of a single row's predict;
        numbers already float stay float, and only text goes through objects.
        """
        sentinel, literal = self.meta["sentinel"], self.meta.get("literal_sentinel")
        out: dict[str, np.ndarray] = {}
        for name, pairs in groups.items():
            kind = self.kinds[name]
            if kind in ("boolean", "datetime"):
                block = np.column_stack([_doubles(c, v, kind) for c, v in pairs])
                out[name] = self._reject_nan(block)
            elif kind == "numeric":
                out[name] = self._reject_nan(_floats([v for _, v in pairs]))
            else:
                out[name] = _texts([v for _, v in pairs], sentinel, literal)
        return out

    def _reject_nan(self, values: np.ndarray) -> np.ndarray:
        if self.meta.get("numeric_nan") == "reject" and np.isnan(values).any():
            raise ValueError(
                "missing numeric value, and this model neither imputes nor accepts NaN"
            )
        return values

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels (classifiers, the classes' own type) or values (regressors, float64)."""
        return self.scores(self.feeds(frame))[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in ``classes`` order."""
        proba = self.scores(self.feeds(frame), labels=False, proba=True)[1]
        assert proba is not None  # scores raises when the model gives none
        return proba

    def scores(
        self, feeds: dict[str, np.ndarray], labels: bool = True, proba: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels or values (empty when not ``labels``) and, when ``proba``, class
        probabilities: from one run of the graph, as :meth:`predict` and
        :meth:`predict_proba` answer them."""
        outputs = self.meta["outputs"]
        if proba and (not self.is_classifier or not outputs.get("probabilities")):
            raise TypeError(f"{self.meta['estimator']} gives no probabilities")
        if not self.is_classifier:
            (value,) = self.session.run([outputs["value"]], feeds)
            return np.asarray(value, dtype=np.float64).ravel(), None
        eps = self.meta.get("label_from_proba")
        from_proba = bool(eps and self.classes) and labels
        names = [outputs["label"]] if labels and not from_proba else []
        if proba or from_proba:
            names.append(outputs["probabilities"])
        got = self.session.run(names, feeds)
        probabilities = np.asarray(got[-1], dtype=np.float64) if proba or from_proba else None
        if not labels:
            return np.empty(0), probabilities
        if from_proba:  # forests: ties go to the first class, as in sklearn
            assert probabilities is not None and self.classes
            top = probabilities.max(axis=1, keepdims=True) - eps
            first_top = np.argmax(probabilities >= top, axis=1)
            found = np.asarray(self.classes, dtype=object)[first_top]
            found = found if isinstance(self.classes[0], str) else found.astype(np.int64)
            return found, probabilities if proba else None
        found = np.asarray(got[0]).ravel()
        if self.classes and all(isinstance(c, str) for c in self.classes):
            found = found.astype(object)
        return found, probabilities


class TwinPyfunc:
    """What MLflow's pyfunc wraps: ``predict(frame)`` as the source version's pyfunc answers."""

    def __init__(self, twin: OnnxTwin, record: dict[str, Any]) -> None:
        self.twin = twin
        self.record = record

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predictions for a DataFrame (MLflow has enforced the signature already)."""
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        return self.twin.predict(frame)

    @property
    def classes_(self) -> list[Any] | None:
        """A classifier's classes, in ``predict_proba``'s column order (None for a regressor)."""
        return self.twin.classes if self.twin.is_classifier else None

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, as the source version's ``predict_proba`` (the gateway's
        ``?proba=true``)."""
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        return self.twin.predict_proba(frame)


def load_twin(folder: Path, threads: int | None = None) -> TwinPyfunc:
    """The twin in ``folder`` (``model.onnx`` + ``twin.json``), its hash checked first."""
    folder = Path(folder)
    record = json.loads((folder / TWIN_FILE).read_text())
    actual = sha256_file(folder / ONNX_FILE)
    if actual != record.get("onnx_sha256"):
        raise TwinIntegrityError(
            f"{folder / ONNX_FILE}: SHA-256 {actual} is not the recorded "
            f"{record.get('onnx_sha256')}; refusing to load it"
        )
    count = threads if threads is not None else int(os.environ.get(THREADS_ENV, "1") or 1)
    return TwinPyfunc(OnnxTwin(folder / ONNX_FILE, threads=count), record)


def _array(values: Any, dtype: Any = None) -> np.ndarray:
    """A column's values as a 1-D numpy array (a Series, an array, or a list from JSON)."""
    if isinstance(values, np.ndarray | list):
        return np.asarray(values, dtype=dtype)
    return np.asarray(values.to_numpy(dtype=dtype))  # a Series or pandas' own array


def _floats(columns: list[Any]) -> np.ndarray:
    """Numeric columns as one float64 block, NaN where missing (texts of numbers read as
    numbers): numbers stay numbers, only other columns go through objects."""
    arrays = [_array(v) for v in columns]
    if all(a.dtype.kind in "fiub" for a in arrays):
        return np.column_stack(arrays).astype(np.float64)
    block = np.column_stack([a.astype(object) for a in arrays])
    return np.where(pd.isna(block), np.nan, block).astype(np.float64)


def _texts(columns: list[Any], sentinel: str, literal: str | None) -> np.ndarray:
    """Categorical columns as one text block; a missing value becomes the sentinel, a
    literal sentinel its stand-in (the graph's encoder reads both apart)."""
    block = np.column_stack([_array(v, object) for v in columns])
    missing = pd.isna(block)
    if literal is not None:
        block = np.where(block == sentinel, literal, block)
    return np.where(missing, sentinel, block).astype(str)


def _doubles(column: Any, values: Any, kind: str) -> np.ndarray:
    """Booleans as 1.0/0.0, timestamps as epoch seconds (UTC); NaN where missing.

    The same readings as runway's BooleanEncoder and DatetimeParts (one module
    decides the spellings); an unreadable value raises ``ValueError`` naming it.
    """
    from runway.core.columns import kinds as k

    if isinstance(values, np.ndarray) and values.dtype == np.bool_ and kind == "boolean":
        return values.astype(np.float64)  # already booleans: nothing to read
    series = pd.Series(values, copy=False)
    if kind == "boolean":
        if series.dtype == np.bool_:
            return series.to_numpy(dtype=np.float64)
        floats, bad = k.boolean_floats(series)
        expected = k.BOOLEAN_EXPECTED
    else:
        stamps, bad = k.timestamp_series(series)
        micros = stamps.astype("datetime64[us]").to_numpy().astype("int64").astype("float64")
        floats = np.where(stamps.isna().to_numpy(), np.nan, micros / 1e6)
        expected = k.DATETIME_EXPECTED
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"column {column!r}: {expected}, got {series.iloc[row]!r} (row {row})")
    return floats


def _load_pyfunc(data_path: str) -> TwinPyfunc:
    """MLflow's ``loader_module`` entry point (``python_function.data`` is the twin folder)."""
    return load_twin(Path(data_path))
