"""Cross-validation and holdout metrics: pure scikit-learn, no MLflow.

Metric values are reported in their natural sign (RMSE 3.2, not -3.2), the
catalog says which way is better.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, get_scorer, make_scorer, precision_score, recall_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from runway.core.training.catalog import METRICS
from runway.core.training.spec import ExperimentSpec


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

    def fold_series(self) -> list[tuple[str, float, int]]:
        """``(fold/cv_<metric>, score, fold)`` for every fold: a series, step = fold.

        Named apart from ``cv_<metric>`` on purpose, under a prefix that sorts after
        it: run tables and Compare read a metric's latest value (for a series, its
        last fold) and default to the first name in order.
        """
        return [
            (fold_metric(metric), value, step)
            for metric, values in self.folds.items()
            for step, value in enumerate(values)
        ]

    def summary(self) -> dict[str, float]:
        """``cv_<metric>`` (the mean) and ``cv_<metric>_std`` for every metric."""
        out: dict[str, float] = {}
        for metric in self.folds:
            out[cv_metric(metric)] = self.mean(metric)
            out[f"{cv_metric(metric)}_std"] = self.std(metric)
        return out


def cv_metric(metric: str) -> str:
    """The name of a metric's mean over folds: ``cv_<metric>``, what a person looks for."""
    return f"cv_{metric}"


def fold_metric(metric: str) -> str:
    """The name of a metric's per-fold series: ``fold/cv_<metric>`` (sorts after the mean)."""
    return f"fold/cv_{metric}"


def cv_value(metrics: Mapping[str, float], metric: str) -> tuple[float | None, float | None]:
    """A run's CV mean and std of ``metric``: ``cv_<metric>``, or ``cv_<metric>_mean`` as
    runs logged before the rename have it."""
    mean = metrics.get(cv_metric(metric), metrics.get(f"cv_{metric}_mean"))
    return mean, metrics.get(f"cv_{metric}_std")


def cv_summary(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's CV means and stds under today's names, whichever names the run has."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if name.startswith("cv_") and not name.endswith("_fold"):  # old runs' series
            out[name.removesuffix("_mean")] = value
    return out


def cv_splitter(spec: ExperimentSpec) -> KFold | StratifiedKFold:
    """The fold generator the spec asks for, seeded."""
    if spec.task == "classification" and spec.split.stratify:
        return StratifiedKFold(spec.split.cv_folds, shuffle=True, random_state=spec.split.seed)
    return KFold(spec.split.cv_folds, shuffle=True, random_state=spec.split.seed)


FoldReport = Callable[[float, int, dict[str, list[float]]], None]

# Metrics about one class of a binary target; roc_auc and log_loss are the same whichever it is.
_POSITIVE_CLASS_METRICS = {"f1": f1_score, "precision": precision_score, "recall": recall_score}


def metric_scorer(metric: str, pos_label: Any = None) -> Any:
    """The scikit-learn scorer of ``metric``; f1/precision/recall about ``pos_label`` when given.

    scikit-learn's named scorers assume the positive class is ``1``; a spec names
    its own (``data.positive_class``; default the greater label, which is 1 of 0/1).
    """
    if pos_label is not None and metric in _POSITIVE_CLASS_METRICS:
        return make_scorer(_POSITIVE_CLASS_METRICS[metric], pos_label=pos_label)
    return get_scorer(METRICS[metric].scorer)


def cross_validate(
    spec: ExperimentSpec,
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    report: FoldReport | None = None,
    *,
    pos_label: Any = None,
) -> CVResult:
    """Cross-validate an unfitted pipeline on the training split, fold by fold.

    The one cross-validation routine: training runs call it plainly; sweep
    trials pass ``report(mean_of_primary_so_far, fold, scores_so_far)``, which
    may raise to stop early (pruning). Errors in a fold are raised, not turned
    into NaN scores: a run whose folds fail must fail.
    """
    folds: dict[str, list[float]] = {m: [] for m in spec.metrics}
    scorers = {m: metric_scorer(m, pos_label) for m in spec.metrics}
    primary = spec.primary_metric.name
    for fold, (train_idx, valid_idx) in enumerate(cv_splitter(spec).split(X, y)):
        fitted = clone(pipeline).fit(X.iloc[train_idx], y.iloc[train_idx])
        X_valid, y_valid = X.iloc[valid_idx], y.iloc[valid_idx]
        for metric, scorer in scorers.items():
            folds[metric].append(float(scorer(fitted, X_valid, y_valid)) * METRICS[metric].sign)
        if report is not None:
            report(float(np.mean(folds[primary])), fold, folds)
    return CVResult(folds=folds)


def holdout_metrics(
    spec: ExperimentSpec,
    fitted: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    metrics: Sequence[str] | None = None,
    *,
    pos_label: Any = None,
) -> dict[str, float]:
    """Score a fitted pipeline on the holdout, ``holdout_<metric>`` per metric.

    ``metrics`` defaults to the spec's (the registry adds those its policy gates on).
    """
    return {
        f"holdout_{m}": float(metric_scorer(m, pos_label)(fitted, X, y)) * METRICS[m].sign
        for m in (metrics if metrics is not None else spec.metrics)
    }


def metric_value(
    name: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    probabilities: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> float | None:
    """A catalog metric from predictions rather than a fitted model (labels joined later).

    Classification labels are compared as text (a label file's ``"1"`` is the
    model's ``1``); ``classes`` orders the ``probabilities`` columns; the
    positive class of binary metrics is ``positive`` (the model's contract
    records the spec's), else the last class (scikit-learn's convention).
    Returns None when the metric needs probabilities that are not there, or a
    second class that the labels do not have.
    """
    from sklearn import metrics as m

    entry = METRICS[name]
    if entry.task == "regression":
        truth = np.asarray(y_true, dtype="float64")
        predicted = np.asarray(y_pred, dtype="float64")
        regression = {
            "rmse": lambda: m.root_mean_squared_error(truth, predicted),
            "mae": lambda: m.mean_absolute_error(truth, predicted),
            "mse": lambda: m.mean_squared_error(truth, predicted),
            "mape": lambda: m.mean_absolute_percentage_error(truth, predicted),
            "r2": lambda: m.r2_score(truth, predicted),
        }
        return float(regression[name]())
    truth_s = np.asarray([str(v) for v in y_true], dtype=object)
    predicted_s = np.asarray([str(v) for v in y_pred], dtype=object)
    labels = [str(c) for c in classes] if classes is not None else sorted(set(truth_s))
    positive = str(positive) if positive is not None and str(positive) in labels else labels[-1]
    if entry.needs_proba:
        if probabilities is None or len(set(truth_s)) < 2:
            return None
        if name == "roc_auc":
            column = probabilities[:, labels.index(positive)]
            return float(m.roc_auc_score(truth_s == positive, column))
        if name == "roc_auc_ovr":
            return float(m.roc_auc_score(truth_s, probabilities, multi_class="ovr", labels=labels))
        return float(m.log_loss(truth_s, probabilities, labels=labels))
    classification = {
        "accuracy": lambda: m.accuracy_score(truth_s, predicted_s),
        "balanced_accuracy": lambda: m.balanced_accuracy_score(truth_s, predicted_s),
        "f1": lambda: m.f1_score(truth_s, predicted_s, pos_label=positive),
        "f1_macro": lambda: m.f1_score(truth_s, predicted_s, average="macro"),
        "precision": lambda: m.precision_score(
            truth_s, predicted_s, pos_label=positive, zero_division=0
        ),
        "recall": lambda: m.recall_score(truth_s, predicted_s, pos_label=positive, zero_division=0),
    }
    return float(classification[name]())
