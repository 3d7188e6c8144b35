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
SMALL = 64  # rows: below this one object conversion of the frame beats per-column reads


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
        sentinel, literal = self.meta["sentinel"], self.meta.get("literal_sentinel")
        positions = self._where(frame.columns)
        whole = frame.to_numpy(dtype=object) if len(frame) <= SMALL else None
        out: dict[str, np.ndarray] = {}
        for name, idx in positions.items():
            kind = self.kinds[name]
            if kind in ("boolean", "datetime"):
                out[name] = self._reject_nan(_doubles(frame, idx, kind))
                continue
            block = (
                whole[:, idx]
                if whole is not None
                else np.column_stack([frame.iloc[:, i].to_numpy(dtype=object) for i in idx])
            )
            missing = pd.isna(block)
            if kind == "numeric":
                out[name] = self._reject_nan(np.where(missing, np.nan, block).astype(np.float64))
                continue
            if literal is not None:
                block = np.where(block == sentinel, literal, block)
            out[name] = np.where(missing, sentinel, block).astype(str)
        return out

    def _reject_nan(self, values: np.ndarray) -> np.ndarray:
        if self.meta.get("numeric_nan") == "reject" and np.isnan(values).any():
            raise ValueError(
                "missing numeric value, and this model neither imputes nor accepts NaN"
            )
        return values

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels (classifiers, the classes' own type) or values (regressors, float64)."""
        outputs = self.meta["outputs"]
        if self.is_classifier:
            eps = self.meta.get("label_from_proba")
            if eps and self.classes:  # forests: ties go to the first class, as in sklearn
                proba = self.predict_proba(frame)
                first_top = np.argmax(proba >= proba.max(axis=1, keepdims=True) - eps, axis=1)
                labels = np.asarray(self.classes, dtype=object)[first_top]
                return labels if isinstance(self.classes[0], str) else labels.astype(np.int64)
            (label,) = self.session.run([outputs["label"]], self.feeds(frame))
            labels = np.asarray(label).ravel()
            if self.classes and all(isinstance(c, str) for c in self.classes):
                return labels.astype(object)
            return labels
        (value,) = self.session.run([outputs["value"]], self.feeds(frame))
        return np.asarray(value, dtype=np.float64).ravel()

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in ``classes`` order."""
        if not self.is_classifier or not self.meta["outputs"].get("probabilities"):
            raise TypeError(f"{self.meta['estimator']} gives no probabilities")
        (proba,) = self.session.run([self.meta["outputs"]["probabilities"]], self.feeds(frame))
        return np.asarray(proba, dtype=np.float64)


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


def _doubles(frame: pd.DataFrame, idx: np.ndarray, kind: str) -> np.ndarray:
    """Booleans as 1.0/0.0, timestamps as epoch seconds (UTC); NaN where missing.

    The same readings as runway's BooleanEncoder and DatetimeParts (one module
    decides the spellings); an unreadable value raises ``ValueError`` naming it.
    """
    from runway.core.columns import kinds as k

    out = np.empty((len(frame), len(idx)), dtype=np.float64)
    for j, i in enumerate(idx):
        series = frame.iloc[:, i].reset_index(drop=True)
        if kind == "boolean":
            values, bad = k.boolean_floats(series)
            expected = k.BOOLEAN_EXPECTED
        else:
            stamps, bad = k.timestamp_series(series)
            micros = stamps.astype("datetime64[us]").to_numpy().astype("int64").astype("float64")
            values = np.where(stamps.isna().to_numpy(), np.nan, micros / 1e6)
            expected = k.DATETIME_EXPECTED
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {frame.columns[i]!r}: {expected}, got {series.iloc[row]!r} (row {row})"
            )
        out[:, j] = values
    return out


def _load_pyfunc(data_path: str) -> TwinPyfunc:
    """MLflow's ``loader_module`` entry point (``python_function.data`` is the twin folder)."""
    return load_twin(Path(data_path))
