"""The plots a run carries, from a fitted pipeline and its holdout: pure matplotlib, no MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from runway.core.training.data import Target
from runway.core.training.pipeline import MODEL_STEP, PREPROCESS_STEP
from runway.core.training.spec import ExperimentSpec


def feature_importances(fitted: Pipeline) -> pd.Series | None:
    """Importances by transformed feature name, where the estimator has them."""
    model = fitted.named_steps[MODEL_STEP]
    if hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=float)
    elif hasattr(model, "coef_"):
        coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))
        values = np.abs(coef).mean(axis=0)
    else:
        return None
    try:
        names = fitted.named_steps[PREPROCESS_STEP].get_feature_names_out()
    except (AttributeError, ValueError):
        names = [f"f{i}" for i in range(len(values))]
    if len(names) != len(values):
        return None
    return pd.Series(values, index=names).sort_values(ascending=False)


Save = Callable[[Any, str], None]


def make_plots(
    spec: ExperimentSpec,
    fitted: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    out_dir: Path,
    target: Target | None = None,
) -> list[Path]:
    """Write the PNGs people look at for this task into ``out_dir``; return their paths.

    Classes are shown by name (``target.names``) and a binary ROC is drawn for
    the positive class.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    # Matplotlib's own look, whatever another library left as the global style.
    with plt.style.context("default"):
        return _draw(spec, fitted, X, y, out_dir, target)


def _draw(
    spec: ExperimentSpec,
    fitted: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    out_dir: Path,
    target: Target | None,
) -> list[Path]:
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if spec.task == "classification":
        _classification(fitted, X, y, save, target)
    else:
        _regression(fitted, X, y, save)
    importances = feature_importances(fitted)
    if importances is not None:
        top = importances.head(20)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
        ax.barh([str(n) for n in top.index], top.to_numpy())
        ax.set_title("Feature importances (top 20)")
        save(fig, "feature_importances.png")
    return written


def class_labels(classes: list[Any], target: Target | None) -> list[str]:
    """What a plot calls each class: its name, with the label when they differ (``malignant (0)``)."""
    if target is None:
        return [str(c) for c in classes]
    named = [target.name(c) for c in classes]
    return [n if n == str(c) else f"{n} ({c})" for n, c in zip(named, classes, strict=True)]


def _classification(
    fitted: Pipeline, X: pd.DataFrame, y: pd.Series, save: Save, target: Target | None
) -> None:
    """Confusion matrix, and ROC curves (the positive class's; one per class beyond two)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    classes = list(fitted.classes_)
    labels = class_labels(classes, target)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_estimator(
        fitted, X, y, labels=classes, display_labels=labels, ax=ax, colorbar=False
    )
    ax.set_title(f"Confusion matrix (holdout, n={len(y)})")
    save(fig, "confusion_matrix.png")
    if not hasattr(fitted, "predict_proba"):
        return
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if len(classes) == 2:
        positive = target.positive if target is not None else classes[1]
        name = labels[classes.index(positive)] if positive in classes else str(positive)
        RocCurveDisplay.from_estimator(
            fitted, X, y, pos_label=positive, ax=ax, name=f"positive class: {name}"
        )
    else:
        proba = fitted.predict_proba(X)
        for i, label in enumerate(classes):
            RocCurveDisplay.from_predictions(
                (y == label).astype(int), proba[:, i], ax=ax, name=f"{labels[i]} vs rest"
            )
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_title("ROC (holdout)")
    save(fig, "roc_curve.png")


def _regression(fitted: Pipeline, X: pd.DataFrame, y: pd.Series, save: Save) -> None:
    """Predicted against actual, and residuals."""
    import matplotlib.pyplot as plt

    predicted = fitted.predict(X)
    actual = np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(actual, predicted, s=10, alpha=0.6)
    lo = float(min(actual.min(), predicted.min()))
    hi = float(max(actual.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual (holdout, n={len(y)})")
    save(fig, "predicted_vs_actual.png")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(predicted, actual - predicted, s=10, alpha=0.6)
    ax.axhline(0, color="k", ls="--", lw=0.8)
    ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals (holdout)")
    save(fig, "residuals.png")
