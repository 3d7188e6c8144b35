"""A sweep's parallel-coordinate plot that a person can read: pure matplotlib, no Optuna.

Optuna's own plot draws every parameter of every estimator on one set of axes:
conditional parameters show as "None" for trials without them, and labels such
as ``RandomForestClassifier:model__n_estimators`` are cut to the same first
twenty characters. Here each estimator choice gets its own panel with only its
parameters, labelled by their short names, and the objective on the last axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_CATEGORY_TICKS = 8


@dataclass(frozen=True)
class TrialPoint:
    """One completed trial: its parameters (``step__param`` names) and objective value."""

    params: Mapping[str, Any]
    value: float


@dataclass
class Panel:
    """The trials of one estimator choice, and which parameters are log-scaled."""

    estimator: str
    trials: list[TrialPoint] = field(default_factory=list)
    log_params: set[str] = field(default_factory=set)


def short_name(param: str) -> str:
    """``model__C`` -> ``C``; ``preprocess__num__impute__strategy`` -> ``impute strategy (num)``."""
    parts = param.split("__")
    if parts[0] in ("model", "preprocess"):
        parts = parts[1:]
    if len(parts) <= 1:
        return parts[0] if parts else param
    head = f" ({' '.join(parts[:-2])})" if len(parts) > 2 else ""
    return f"{parts[-2]} {parts[-1]}{head}"


def _axis(values: Sequence[Any], log: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] for one axis, and the tick labels to write beside it."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        levels = sorted({str(v) for v in values})
        step = 1 / (len(levels) - 1) if len(levels) > 1 else 0.0
        where = {level: (i * step if len(levels) > 1 else 0.5) for i, level in enumerate(levels)}
        shown = levels if len(levels) <= MAX_CATEGORY_TICKS else levels[:: len(levels) // 4]
        return np.array([where[str(v)] for v in values]), [(where[s], s) for s in shown]
    raw = np.asarray(values, dtype=float)
    scaled = np.log10(raw) if log and (raw > 0).all() else raw
    lo, hi = float(scaled.min()), float(scaled.max())
    span = hi - lo
    positions = (scaled - lo) / span if span else np.full(len(raw), 0.5)
    ticks = [(0.0, _number(float(raw.min()))), (1.0, _number(float(raw.max())))]
    return positions, (ticks if span else [(0.5, _number(float(raw[0])))])


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def parallel_coordinates(panels: Sequence[Panel], metric: str, maximize: bool) -> Any:
    """One row of axes per estimator: a line per trial across its parameters and ``metric``.

    Lines are coloured by the objective (brighter is better whichever the
    direction); the best trial of each panel is drawn thicker. Returns the
    matplotlib figure, or None when no panel has a trial.
    """
    import matplotlib.pyplot as plt

    drawn = [p for p in panels if p.trials]
    if not drawn:
        return None
    columns = max(len({k for t in p.trials for k in t.params}) for p in drawn) + 1
    fig, axes = plt.subplots(
        len(drawn),
        1,
        figsize=(max(6.0, 1.9 * columns + 2), 3.8 * len(drawn)),
        squeeze=False,
        layout="constrained",
    )
    values = [t.value for p in drawn for t in p.trials]
    vmin, vmax = min(values), max(values)
    cmap = plt.get_cmap("viridis" if maximize else "viridis_r")
    norm = plt.Normalize(vmin, vmax if vmax > vmin else vmin + 1e-12)
    for ax, panel in zip(axes[:, 0], drawn, strict=True):
        _panel(ax, panel, metric, maximize, cmap, norm)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[:, 0], label=metric)
    return fig


def _panel(ax: Any, panel: Panel, metric: str, maximize: bool, cmap: Any, norm: Any) -> None:
    names = sorted({k for t in panel.trials for k in t.params})
    labels = [short_name(n) for n in names] + [metric]
    columns = [[t.params.get(n) for t in panel.trials] for n in names]
    columns.append([t.value for t in panel.trials])
    logs = [n in panel.log_params for n in names] + [False]
    placed = [_axis(col, log) for col, log in zip(columns, logs, strict=True)]
    ys = np.column_stack([pos for pos, _ in placed])
    scores = [t.value for t in panel.trials]
    best = int(np.argmax(scores) if maximize else np.argmin(scores))
    xs = np.arange(len(labels))
    for i, trial in enumerate(panel.trials):
        width, alpha = (2.8, 1.0) if i == best else (1.2, 0.7)
        ax.plot(xs, ys[i], color=cmap(norm(trial.value)), lw=width, alpha=alpha, zorder=2 + width)
    for x, (_, ticks) in zip(xs, placed, strict=True):
        ax.axvline(x, color="0.35", lw=0.8, zorder=1)
        for y, text in ticks:
            ax.annotate(
                text,
                (x, y),
                xytext=(5, 0),
                textcoords="offset points",
                fontsize=8,
                va="center",
                zorder=10,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    ax.set_xticks(xs, labels, rotation=25, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.2, len(labels) - 0.5)
    ax.set_ylim(-0.08, 1.08)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        f"{panel.estimator}: {len(panel.trials)} completed trials, best {metric} = "
        f"{panel.trials[best].value:.4f}",
        loc="left",
        fontsize=10,
    )
