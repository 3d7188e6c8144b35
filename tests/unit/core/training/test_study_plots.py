"""Study plots a person can read, and no Optuna style leaking into runway's plots (issue 16, item 6)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from runway.core.training.plots import make_plots
from runway.core.training.spec import spec_from_dict
from runway.jobs import study_plots

RF_TREES = "RandomForestClassifier:model__n_estimators"
RF_DEPTH = "RandomForestClassifier:model__max_depth"
RF_LEAF = "RandomForestClassifier:model__min_samples_leaf"
LR_C = "LogisticRegression:model__C"
IMPUTE = "preprocess__num__impute__strategy"


def _study() -> optuna.Study:
    """A finished conditional study, as `make sweep` on breast_cancer.yaml makes one."""
    study = optuna.create_study(direction="maximize")
    choice = CategoricalDistribution(["RandomForestClassifier", "LogisticRegression"])
    impute = CategoricalDistribution(["median", "mean"])
    for i in range(8):
        if i % 2:
            params = {"estimator": "LogisticRegression", LR_C: 10 ** (i - 4), IMPUTE: "mean"}
            dists = {LR_C: FloatDistribution(1e-5, 1e3, log=True)}
        else:
            params = {
                "estimator": "RandomForestClassifier",
                RF_TREES: 50 + 50 * (i % 4),
                RF_DEPTH: 2 + i,
                RF_LEAF: 1 + i // 2,
                IMPUTE: "median",
            }
            dists = {
                RF_TREES: IntDistribution(50, 300, step=50),
                RF_DEPTH: IntDistribution(2, 12),
                RF_LEAF: IntDistribution(1, 8),
            }
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={"estimator": choice, IMPUTE: impute, **dists},
                value=0.9 + i / 100,
            )
        )
    return study


def _texts(fig: Figure) -> list[str]:
    texts = []
    for ax in fig.axes:
        texts += [
            ax.get_xlabel(),
            ax.get_ylabel(),
            *(ax.get_title(loc=s) for s in ("left", "center")),
        ]
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        texts += [t.get_text() for t in ax.texts]
    return [t for t in texts if t]


def test_study_plots_leave_matplotlib_style_as_they_found_it(tmp_path):
    before = {k: matplotlib.rcParams[k] for k in ("axes.grid", "axes.facecolor", "font.size")}

    written = study_plots.plots(_study(), tmp_path)

    assert {p.name for p in written} == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
    }
    after = {k: matplotlib.rcParams[k] for k in before}
    assert after == before


def test_runway_plots_ignore_a_style_left_behind_by_others(tmp_path, monkeypatch):
    """Grid lines through the confusion-matrix cells came from Optuna's ggplot style."""
    spec = spec_from_dict(
        {
            "experiment": "x",
            "task": "classification",
            "data": {"source": "sklearn:breast_cancer", "target": "target"},
            "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
            "metrics": ["roc_auc"],
            "primary_metric": {"name": "roc_auc"},
        }
    )
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    fitted = Pipeline([("preprocess", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    seen: dict[str, tuple] = {}
    savefig = Figure.savefig

    def spy(fig, path, *args, **kwargs):
        ax = fig.axes[0]
        seen[str(path).rsplit("/", 1)[-1]] = (
            matplotlib.colors.to_hex(ax.get_facecolor()),
            any(line.get_visible() for line in ax.get_xgridlines()),
        )
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    with plt.style.context("ggplot"):
        make_plots(spec, fitted, X, y, tmp_path)

    assert seen["confusion_matrix.png"] == ("#ffffff", False)
    assert seen["roc_curve.png"][0] == "#ffffff"


def test_parallel_coordinates_have_one_readable_panel_per_estimator():
    fig = study_plots.parallel_coordinate(_study(), "roc_auc")
    texts = _texts(fig)

    assert not [t for t in texts if "..." in t or "…" in t]  # nothing cut short
    assert "None" not in texts  # no axis for a parameter a trial does not have
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert any(t.startswith("RandomForestClassifier") for t in titles)
    assert any(t.startswith("LogisticRegression") for t in titles)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]
    assert {"n_estimators", "max_depth", "min_samples_leaf", "C", "roc_auc"} <= set(labels)
    assert "impute strategy (num)" in labels
    plt.close(fig)


def test_parallel_coordinates_need_a_completed_trial():
    assert study_plots.parallel_coordinate(optuna.create_study(), "roc_auc") is None
