"""The allow-lists: which estimators, metrics and bundled datasets a spec may name.

Kept free of MLflow and of heavy imports so spec validation stays cheap;
estimator classes are imported only when asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "regression"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class EstimatorEntry:
    """An allowed scikit-learn estimator."""

    name: str
    module: str
    task: Task

    def load(self) -> type:
        """Import and return the estimator class."""
        return getattr(importlib.import_module(self.module), self.name)


def _entries(module: str, task: Task, *names: str) -> dict[str, EstimatorEntry]:
    return {n: EstimatorEntry(n, module, task) for n in names}


ESTIMATORS: dict[str, EstimatorEntry] = {
    **_entries("sklearn.linear_model", "classification", "LogisticRegression"),
    **_entries(
        "sklearn.ensemble",
        "classification",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
    ),
    **_entries("sklearn.tree", "classification", "DecisionTreeClassifier"),
    **_entries("sklearn.neighbors", "classification", "KNeighborsClassifier"),
    **_entries("sklearn.svm", "classification", "SVC"),
    **_entries(
        "sklearn.linear_model", "regression", "LinearRegression", "Ridge", "Lasso", "ElasticNet"
    ),
    **_entries(
        "sklearn.ensemble",
        "regression",
        "RandomForestRegressor",
        "ExtraTreesRegressor",
        "GradientBoostingRegressor",
        "HistGradientBoostingRegressor",
    ),
    **_entries("sklearn.tree", "regression", "DecisionTreeRegressor"),
    **_entries("sklearn.neighbors", "regression", "KNeighborsRegressor"),
    **_entries("sklearn.svm", "regression", "SVR"),
}


@dataclass(frozen=True)
class MetricEntry:
    """A metric: the scikit-learn scorer behind it and which way is better.

    ``sign`` undoes scikit-learn's ``neg_`` convention so that logged values are
    the natural ones (an RMSE of 3.2, not -3.2).
    """

    name: str
    scorer: str
    task: Task
    direction: Direction
    sign: float = 1.0
    needs_proba: bool = False


METRICS: dict[str, MetricEntry] = {
    m.name: m
    for m in [
        MetricEntry("accuracy", "accuracy", "classification", "maximize"),
        MetricEntry("balanced_accuracy", "balanced_accuracy", "classification", "maximize"),
        MetricEntry("f1", "f1", "classification", "maximize"),
        MetricEntry("f1_macro", "f1_macro", "classification", "maximize"),
        MetricEntry("precision", "precision", "classification", "maximize"),
        MetricEntry("recall", "recall", "classification", "maximize"),
        MetricEntry("roc_auc", "roc_auc", "classification", "maximize", needs_proba=True),
        MetricEntry("roc_auc_ovr", "roc_auc_ovr", "classification", "maximize", needs_proba=True),
        MetricEntry(
            "log_loss", "neg_log_loss", "classification", "minimize", -1.0, needs_proba=True
        ),
        MetricEntry("rmse", "neg_root_mean_squared_error", "regression", "minimize", -1.0),
        MetricEntry("mae", "neg_mean_absolute_error", "regression", "minimize", -1.0),
        MetricEntry("mse", "neg_mean_squared_error", "regression", "minimize", -1.0),
        MetricEntry("mape", "neg_mean_absolute_percentage_error", "regression", "minimize", -1.0),
        MetricEntry("r2", "r2", "regression", "maximize"),
    ]
}

# Binary-only metrics: their multiclass cousins are f1_macro and roc_auc_ovr.
BINARY_ONLY_METRICS = frozenset({"f1", "precision", "recall", "roc_auc"})

# Datasets scikit-learn ships inside its wheel (no download): name -> loader.
SKLEARN_DATASETS: dict[str, str] = {
    "breast_cancer": "load_breast_cancer",
    "diabetes": "load_diabetes",
    "iris": "load_iris",
    "wine": "load_wine",
    "digits": "load_digits",
}
