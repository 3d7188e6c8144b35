"""Metrics and plots: pure scikit-learn and matplotlib, no MLflow.

Metric values are reported in their natural sign (RMSE 3.2, not -3.2), the
catalog says which way is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from runway.catalog import METRICS
from runway.pipeline import MODEL_STEP, PREPROCESS_STEP
from runway.spec import ExperimentSpec


@dataclass(frozen=True)
class CVResult:
    """Per-fold scores for each metric, in natural sign."""

    folds: dict[str, list[float]]

    def mean(self, metric: str) -> float:
        """Mean over folds."""
        return float(np.mean(self.folds[metric]))

    def std(self, metric: str) -> float:
        """Standard deviation over folds."""
        return float(np.std(self.folds[metric]))

    def summary(self) -> dict[str, float]:
        """``cv_<metric>_mean`` and ``cv_<metric>_std`` for every metric."""
        out: dict[str, float] = {}
        for metric in self.folds:
            out[f"cv_{metric}_mean"] = self.mean(metric)
            out[f"cv_{metric}_std"] = self.std(metric)
        return out


def cv_splitter(spec: ExperimentSpec) -> KFold | StratifiedKFold:
    """The fold generator the spec asks for, seeded."""
    if spec.task == "classification" and spec.split.stratify:
        return StratifiedKFold(spec.split.cv_folds, shuffle=True, random_state=spec.split.seed)
    return KFold(spec.split.cv_folds, shuffle=True, random_state=spec.split.seed)


def cross_validate_pipeline(
    spec: ExperimentSpec,
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    n_jobs: int | None = None,
) -> CVResult:
    """Cross-validate an unfitted pipeline on the training split.

    Errors in a fold are raised, not turned into NaN scores: a run whose folds
    fail must fail.
    """
    scoring = {m: METRICS[m].scorer for m in spec.metrics}
    raw = cross_validate(
        pipeline, X, y, cv=cv_splitter(spec), scoring=scoring, n_jobs=n_jobs, error_score="raise"
    )
    return CVResult(
        folds={m: [float(v) * METRICS[m].sign for v in raw[f"test_{m}"]] for m in spec.metrics}
    )


def holdout_metrics(
    spec: ExperimentSpec,
    fitted: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Score a fitted pipeline on the holdout, ``holdout_<metric>`` per metric.

    ``metrics`` defaults to the spec's (the registry adds those its policy gates on).
    """
    return {
        f"holdout_{m}": float(get_scorer(METRICS[m].scorer)(fitted, X, y)) * METRICS[m].sign
        for m in (metrics if metrics is not None else spec.metrics)
    }


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


def make_plots(
    spec: ExperimentSpec, fitted: Pipeline, X: pd.DataFrame, y: pd.Series, out_dir: Path
) -> list[Path]:
    """Write the PNGs people look at for this task into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if spec.task == "classification":
        from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

        fig, ax = plt.subplots(figsize=(5, 4.5))
        ConfusionMatrixDisplay.from_estimator(fitted, X, y, ax=ax, colorbar=False)
        ax.set_title(f"Confusion matrix (holdout, n={len(y)})")
        save(fig, "confusion_matrix.png")
        classes = list(fitted.classes_)
        if hasattr(fitted, "predict_proba"):
            fig, ax = plt.subplots(figsize=(5, 4.5))
            if len(classes) == 2:
                RocCurveDisplay.from_estimator(fitted, X, y, ax=ax)
            else:
                proba = fitted.predict_proba(X)
                for i, label in enumerate(classes):
                    RocCurveDisplay.from_predictions(
                        (y == label).astype(int), proba[:, i], ax=ax, name=f"{label} vs rest"
                    )
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
            ax.set_title("ROC (holdout)")
            save(fig, "roc_curve.png")
    else:
        predicted = fitted.predict(X)
        actual = np.asarray(y, dtype=float)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.scatter(actual, predicted, s=10, alpha=0.6)
        lo, hi = (
            float(min(actual.min(), predicted.min())),
            float(max(actual.max(), predicted.max())),
        )
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(
            xlabel="actual", ylabel="predicted", title=f"Predicted vs actual (holdout, n={len(y)})"
        )
        save(fig, "predicted_vs_actual.png")
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.scatter(predicted, actual - predicted, s=10, alpha=0.6)
        ax.axhline(0, color="k", ls="--", lw=0.8)
        ax.set(
            xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals (holdout)"
        )
        save(fig, "residuals.png")

    importances = feature_importances(fitted)
    if importances is not None:
        top = importances.head(20)[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
        ax.barh([str(n) for n in top.index], top.to_numpy())
        ax.set_title("Feature importances (top 20)")
        save(fig, "feature_importances.png")
    return written
