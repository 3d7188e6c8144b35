"""Delayed labels, joined to logged predictions by key, for the live metric.

A labels file (CSV or Parquet) holds one row per labelled prediction: its key
and its true value. The key is the log's ``key``: for batch rows the
``--key-column`` value(s) the batch was scored with (several joined by ``|``),
for served rows the request id (``:<row>`` appended for multi-row requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.drift import LabelIndex
from runway.errors import MonitorError
from runway.monitoring.window import Scorer
from runway.store.predlog import INPUT_PREFIX, PREDICTION, PROBA_PREFIX, REJECTED


@dataclass
class Labels:
    """The true values by key, and the logged predictions they were joined to."""

    source: str
    truth: dict[str, Any]
    classes: list[str] = field(default_factory=list)  # classifier: proba column order
    y_true: list[Any] = field(default_factory=list)
    y_pred: list[Any] = field(default_factory=list)
    raw_truth: list[Any] = field(default_factory=list)  # the file's values (training rows)
    scores: list[np.ndarray] = field(default_factory=list)
    inputs: list[pd.DataFrame] = field(default_factory=list)  # the joined rows' features
    matcher: LabelIndex | None = None  # classifier: true and predicted values to class labels

    def index_labels(self, classes: Sequence[Any]) -> None:
        """Compare labels as the contract's classes: a logged ``1.0`` and a file's ``"1"`` are ``1``."""
        self.matcher = LabelIndex([str(c) for c in classes], list(classes))

    @property
    def joined(self) -> int:
        """Labelled rows matched to a scored log row."""
        return len(self.y_true)

    def add(self, batch: pd.DataFrame, features: Sequence[str], scorer: Scorer | None) -> None:
        """Join one batch of log rows (window and version already filtered)."""
        if "key" not in batch:
            return
        if "status" in batch:
            batch = batch.loc[(batch["status"] != REJECTED).to_numpy()]
        keys = batch["key"].astype("string")
        hit = keys.isin(self.truth.keys()).to_numpy()
        if not hit.any():
            return
        rows = batch.loc[hit]
        truth, predicted = [self.truth[k] for k in keys[hit]], list(rows[PREDICTION])
        self.raw_truth += truth
        if self.matcher is not None:
            truth = [self.matcher.label(v) for v in truth]
            predicted = [self.matcher.label(v) for v in predicted]
        self.y_true += truth
        self.y_pred += predicted
        present = [f for f in features if f"{INPUT_PREFIX}{f}" in rows]
        self.inputs.append(
            pd.DataFrame({f: rows[f"{INPUT_PREFIX}{f}"].to_numpy() for f in present})
        )
        if self.classes:
            self.scores.append(_scores(rows, self.classes, features, scorer))

    def training_rows(self, target: str) -> pd.DataFrame:
        """The joined rows as training data: their features and the label as ``target``."""
        if not self.inputs:
            return pd.DataFrame()
        rows = pd.concat(self.inputs, ignore_index=True)
        rows[target] = pd.Series(self.raw_truth).to_numpy()
        return rows

    def probabilities(self) -> np.ndarray | None:
        """The joined rows' class probabilities (None for regressors or when unknown)."""
        if not self.scores:
            return None
        values = np.vstack(self.scores)
        return None if np.isnan(values).any() else values


def _scores(
    rows: pd.DataFrame, classes: list[str], features: Sequence[str], scorer: Scorer | None
) -> np.ndarray:
    logged = [f"{PROBA_PREFIX}{c}" for c in classes]
    if all(c in rows for c in logged):
        values = rows[logged].to_numpy(dtype="float64", copy=True)  # pandas 3: may be read-only
    else:
        values = np.full((len(rows), len(classes)), np.nan)
    missing = np.isnan(values).any(axis=1)
    if missing.any() and scorer is not None:
        frame = pd.DataFrame(
            {f: rows.loc[missing, f"{INPUT_PREFIX}{f}"] for f in features}
        ).reset_index(drop=True)
        values[missing] = scorer(frame)
    return values


def load_labels(
    path: str | Path, key_columns: Sequence[str], label_column: str | None, target: str
) -> Labels:
    """Read a labels file: ``key`` (or ``key_columns``) and the label (``label_column``,
    else the spec's target, else ``label``)."""
    path = Path(path)
    if not path.is_file():
        raise MonitorError(f"{path}: labels file not found")
    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix.lower() in {".parquet", ".pq"}
            else pd.read_csv(path, dtype=str, keep_default_na=True)
        )
    except Exception as exc:  # the reader's own error names what is wrong with the file
        raise MonitorError(f"{path}: cannot read labels: {exc}") from exc
    columns = [str(c) for c in frame.columns]
    label = label_column or next((c for c in (target, "label") if c in columns), None)
    if label is None or label not in columns:
        raise MonitorError(
            f"{path}: no label column {label_column or target!r} (or 'label'); columns are "
            f"{', '.join(columns[:12])}; name it with --label-column"
        )
    keys = list(key_columns) or (["key"] if "key" in columns else [])
    absent = [k for k in keys if k not in columns]
    if not keys or absent:
        raise MonitorError(
            f"{path}: no key column {absent[0] if absent else 'key'!r}; give the column(s) the "
            "predictions were keyed by with --key-column (batch --key-column values, or the "
            "request id of served rows)"
        )
    frame = frame.dropna(subset=[label])
    key = (
        frame[keys].astype(str).agg("|".join, axis=1)
        if len(keys) > 1
        else frame[keys[0]].astype(str)
    )
    return Labels(str(path), dict(zip(key, frame[label], strict=True)))
