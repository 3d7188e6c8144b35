"""A finished study's plots: Optuna's history and importances, runway's parallel coordinates.

Drawn once, for the sweep's parent run (:mod:`runway.jobs.sweep_parent`); the drawing
of parallel coordinates is :mod:`runway.core.training.sweep_plots`, this module
reads the study's trials into its panels.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from runway.jobs.study import ESTIMATOR_CHOICE

log = logging.getLogger(__name__)


def plots(
    study: optuna.Study, out_dir: Path, metric: str = "objective", estimator: str = "model"
) -> list[Path]:
    """Optimization history, parameter importances and parallel coordinates as PNGs.

    Optuna's matplotlib plots switch the global style to ggplot; drawing them in
    a style context puts it back, so runway's own plots keep their look.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    makers: dict[str, Callable[[optuna.Study], Any]] = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
        "parallel_coordinate.png": lambda s: parallel_coordinate(s, metric, estimator),
    }
    written = []
    for filename, plot in makers.items():
        try:
            with warnings.catch_warnings(), plt.style.context("default"):
                warnings.simplefilter("ignore")
                ax = plot(study)
                if ax is None:
                    continue
                fig = ax if hasattr(ax, "savefig") else np.ravel(ax)[0].figure
                if filename != "parallel_coordinate.png":
                    fig.set_size_inches(9, 5.5)
                    fig.tight_layout()
                fig.savefig(out_dir / filename, dpi=100)
                plt.close(fig)
            written.append(out_dir / filename)
        except Exception as exc:  # e.g. importances need two completed trials
            log.warning("study plot %s skipped: %s", filename, exc)
            plt.close("all")
    return written


def parallel_coordinate(study: optuna.Study, metric: str, estimator: str = "model") -> Any:
    """Completed trials as parallel coordinates, one panel per estimator choice (or None).

    ``estimator`` names the panel of a study without an estimator choice.
    """
    from runway.core.training.sweep_plots import Panel, TrialPoint, parallel_coordinates

    panels: dict[str, Panel] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.value is None:
            continue
        params = dict(trial.params)
        name = str(params.pop(ESTIMATOR_CHOICE, estimator))
        panel = panels.setdefault(name, Panel(name))
        short = {k.split(":", 1)[-1]: v for k, v in params.items()}
        panel.trials.append(TrialPoint(short, float(trial.value)))
        for key, dist in trial.distributions.items():
            if getattr(dist, "log", False):
                panel.log_params.add(key.split(":", 1)[-1])
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return parallel_coordinates(list(panels.values()), metric, maximize)
