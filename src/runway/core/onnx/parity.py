"""Does the twin score like the version? Checked on the holdout and on edge cases.

Parity means, on every row of every frame: the same class label, and
probabilities (classifiers) or values (regressors) within
``|twin - sklearn| <= TOLERANCE * max(1, |sklearn|)`` (absolute below 1,
relative above). The edge-case frame is made from the contract: all missing,
each numeric column alone missing, at its training minimum and maximum and at
+-1e12, each categorical alone missing or unseen, and the literal missing
sentinel, each boolean alone missing, true and false in several spellings,
each timestamp alone missing, at its training bounds and on calendar edges
(before 1970, leap days, century years, with UTC offsets). A report names the estimator and the worst rows, whether it passes
or not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.schema import ColumnContract, DataContract
from runway.core.onnx.model import SENTINEL

TOLERANCE = 1e-5
EXTREME = 1e12
WORST_SHOWN = 5


@dataclass
class FrameParity:
    """One frame's comparison."""

    name: str
    rows: int
    label_flips: int = 0
    out_of_tolerance: int = 0
    max_abs_diff: float = 0.0
    worst: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No flipped label, no value out of tolerance."""
        return self.label_flips == 0 and self.out_of_tolerance == 0


@dataclass
class ParityReport:
    """The verdict of a twin against its source, frame by frame."""

    estimator: str
    task: str
    tolerance: float
    frames: list[FrameParity]

    @property
    def ok(self) -> bool:
        """Every frame within tolerance."""
        return all(f.ok for f in self.frames)

    @property
    def rows_checked(self) -> int:
        """Rows compared, all frames together."""
        return sum(f.rows for f in self.frames)

    @property
    def max_abs_diff(self) -> float:
        """The largest difference over every frame."""
        return max((f.max_abs_diff for f in self.frames), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``parity.json`` artifact)."""
        return {
            "estimator": self.estimator,
            "task": self.task,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "max_abs_diff": self.max_abs_diff,
            "frames": [vars(f) | {"ok": f.ok} for f in self.frames],
        }

    def render(self) -> str:
        """A table and, when a frame fails, its worst rows."""
        what = "probability" if self.task == "classification" else "value"
        lines = [
            f"ONNX version parity for {self.estimator}: labels identical, {what} within "
            f"{self.tolerance:g} x max(1, |value|)",
            f"  {'frame':<10} {'rows':>6} {'flips':>6} {'off':>6} {'max |diff|':>12}",
        ]
        for f in self.frames:
            lines.append(
                f"  {f.name:<10} {f.rows:>6} {f.label_flips:>6} {f.out_of_tolerance:>6} "
                f"{f.max_abs_diff:>12.3g}  {'ok' if f.ok else 'FAIL'}"
            )
        for f in self.frames:
            if f.ok:
                continue
            lines.append(f"  worst rows of {f.name}:")
            for w in f.worst:
                row = ", ".join(f"{k}={v!r}" for k, v in list(w["row"].items())[:8])
                lines.append(
                    f"    row {w['index']}: sklearn {w['sklearn']!r}, onnx {w['onnx']!r}, "
                    f"|diff| {w['diff']:.3g}  [{row}]"
                )
        return "\n".join(lines)


# timestamps where calendar arithmetic goes wrong first: before 1970, leap days,
# century years, the last microsecond of a day and of a year
EDGE_TIMESTAMPS = (
    "1969-12-31T23:59:59.999999",
    "1900-02-28T23:59:59",
    "1900-03-01T00:00:00",
    "2000-02-29T12:30:00",
    "2100-03-01T00:00:00",
    "2024-12-31T23:59:59.999999+00:00",
    "2024-06-30T23:30:00-02:00",
)
EDGE_BOOLEANS = (True, False, "TRUE", "false", 1, 0)


def edge_frame(
    contract: DataContract, base: pd.DataFrame, literal_sentinel: bool = True
) -> pd.DataFrame:
    """Edge cases built on ``base``'s first row, one deviation per row (and an all-missing row)."""
    columns = contract.columns
    template = base.iloc[[0]].reset_index(drop=True)
    rows: list[pd.DataFrame] = []

    def variant(**values: Any) -> None:
        row = template.copy()
        for name, value in values.items():
            row[name] = pd.Series([value], dtype=object if _is_cat(columns[name]) else "float64")
        rows.append(row)

    variant(**{name: np.nan for name in columns})
    for name, entry in columns.items():
        variant(**{name: np.nan})
        for value in _edge_values(entry, literal_sentinel):
            variant(**{name: value})
    variant(**{n: EXTREME for n, e in columns.items() if not _is_cat(e)})
    variant(**{n: -EXTREME for n, e in columns.items() if not _is_cat(e)})
    frame = pd.concat(rows, ignore_index=True)
    for name, entry in columns.items():
        frame[name] = frame[name].astype(object if _is_cat(entry) else "float64")
    return frame


def _edge_values(entry: ColumnContract, literal_sentinel: bool) -> list[Any]:
    """The values one column takes in turn (besides missing), by its kind."""
    kind = entry.effective_kind
    if kind == "boolean":
        return list(EDGE_BOOLEANS)
    if kind == "datetime":
        return [v for v in (entry.min, entry.max) if v is not None] + list(EDGE_TIMESTAMPS)
    if kind == "categorical":
        return ["UNSEEN-runway", *([SENTINEL] if literal_sentinel else [])]
    return [float(v) for v in (entry.min, entry.max, EXTREME, -EXTREME, 0.0) if v is not None]


def _is_cat(entry: ColumnContract) -> bool:
    """Held as objects (text, booleans, timestamps), not float64."""
    return entry.effective_kind != "numeric"


Scorer = Callable[[pd.DataFrame], np.ndarray]


def compare(
    name: str,
    frame: pd.DataFrame,
    reference: tuple[np.ndarray, np.ndarray | None],
    twin: tuple[np.ndarray, np.ndarray | None],
    tolerance: float = TOLERANCE,
) -> FrameParity:
    """Labels/values and probabilities of both on ``frame``; the worst rows kept."""
    ref_out, ref_proba = reference
    twin_out, twin_proba = twin
    result = FrameParity(name, len(frame))
    if ref_proba is not None and twin_proba is not None:  # a classifier
        flips = np.asarray([str(a) != str(b) for a, b in zip(ref_out, twin_out, strict=True)])
        diff = (
            np.abs(ref_proba - twin_proba).max(axis=1) if ref_proba.size else np.zeros(len(frame))
        )
        bound = np.full(len(frame), tolerance)
        result.label_flips = int(flips.sum())
        shown_ref, shown_twin = ref_out, twin_out
    else:
        ref_v = np.asarray(ref_out, dtype=np.float64)
        twin_v = np.asarray(twin_out, dtype=np.float64)
        diff = np.abs(ref_v - twin_v)
        diff = np.where(np.isnan(ref_v) & np.isnan(twin_v), 0.0, diff)
        bound = tolerance * np.maximum(1.0, np.abs(ref_v))
        flips = np.zeros(len(frame), dtype=bool)
        shown_ref, shown_twin = ref_v, twin_v
    diff = np.where(np.isnan(diff), np.inf, diff)
    off = diff > bound
    result.out_of_tolerance = int((off & ~flips).sum())
    result.max_abs_diff = float(diff.max()) if len(diff) else 0.0
    badness = np.where(flips, np.inf, diff)
    for i in np.argsort(-badness, kind="stable")[:WORST_SHOWN]:
        if not (flips[i] or off[i]):
            break
        result.worst.append(
            {
                "index": int(i),
                "sklearn": _plain(shown_ref[i]),
                "onnx": _plain(shown_twin[i]),
                "diff": float(diff[i]),
                "row": {str(k): _plain(v) for k, v in frame.iloc[int(i)].items()},
            }
        )
    return result


def _plain(value: Any) -> Any:
    """JSON-ready scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def outputs(
    model: Any, frame: pd.DataFrame, classifier: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, probabilities or None) of anything with scikit-learn's methods."""
    predicted = np.asarray(model.predict(frame))
    if classifier and hasattr(model, "predict_proba"):
        try:
            return predicted, np.asarray(model.predict_proba(frame), dtype=np.float64)
        except (AttributeError, TypeError):  # SVC without probability=True
            return predicted, None
    return predicted, None


def check_parity(
    pipeline: Any,
    twin: Any,
    frames: Mapping[str, pd.DataFrame],
    classifier: bool,
    tolerance: float = TOLERANCE,
) -> ParityReport:
    """Score every frame with both; rows scikit-learn itself cannot score are left out."""
    results = []
    for name, frame in frames.items():
        usable = _scorable(pipeline, frame)
        reference = outputs(pipeline, usable, classifier)
        mine = outputs(twin, usable, classifier)
        if (reference[1] is None) != (mine[1] is None):
            reference, mine = (reference[0], None), (mine[0], None)
        if reference[1] is None and classifier:
            reference = (reference[0], np.zeros((len(usable), 0)))
            mine = (mine[0], np.zeros((len(usable), 0)))
        results.append(compare(name, usable, reference, mine, tolerance))
    estimator = type(pipeline.steps[-1][1]).__name__
    task = "classification" if classifier else "regression"
    return ParityReport(estimator, task, tolerance, results)


def _scorable(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``, without its rows holding NaN when scikit-learn refuses NaN (it raises)."""
    try:
        pipeline.predict(frame)
        return frame
    except ValueError:
        return frame[~frame.isna().any(axis=1)].reset_index(drop=True)
