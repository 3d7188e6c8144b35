"""Issue 31: the window counted while MLflow loads gives the figures of the usual count, or none.

``runway monitor`` counts the window in a thread over the reference the last run
of the same model used (remembered in runway's state folder). The early counts
are used only when the registry's reference is the same in full; a stale or
broken file, a new version, or served rows the model must score are refused and
the window is counted the usual way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from runway.core.columns.contract import infer_contract
from runway.core.columns.profile import infer_profile, prediction_profile
from runway.core.columns.schema import TargetInfo
from runway.core.governance.monitor_policy import MonitorPolicy
from runway.monitoring import early
from runway.monitoring.judge import judge
from runway.monitoring.window import Window, WindowStats, count_window
from runway.settings import get_settings
from runway.store.predlog import PredictionLog, scored_frame
from runway.store.served import ResolvedModel
from tests.conftest import REPO

MODEL = "early-model"
DAY = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
KINDS = {"x": "numeric", "n": "numeric", "colour": "categorical", "when": "datetime"}


class _Fitted:
    """A classifier stand-in: what prediction_profile asks of a fitted model."""

    classes_ = np.array([0.0, 1.0])  # a float label column

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X["x"] > 0).astype("float64").to_numpy()

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-X["x"].to_numpy()))
        return np.column_stack([1 - p, p])


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    x = rng.normal(shift, 1, n)
    x[::17] = np.nan  # missing values
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 9, n),
            "colour": rng.choice(["red", "green", "blue", "mauve" if shift else "red"], n),
            "when": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h"),
        }
    )


@pytest.fixture
def setting(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", str(tmp_path / "log"))
    settings = get_settings()
    rng = np.random.default_rng(31)
    train = _frame(rng, 3_000)
    fitted = _Fitted()
    profile = infer_profile(
        train, KINDS, predictions=prediction_profile(fitted, train.fillna({"x": 0.0}))
    )
    contract = infer_contract(train, KINDS, target=TargetInfo(classes=[0.0, 1.0]))
    sink = PredictionLog(settings.prediction_log)
    for i, (version, shift) in enumerate([("1", 0.5), ("1", 0.0), ("2", 0.0)]):
        rows = _frame(rng, 2_000, shift)
        filled = rows.fillna({"x": 0.0})
        sink.write_frame(
            MODEL,
            scored_frame(
                rows,
                fitted.predict(filled),
                model=MODEL,
                version=version,
                source="batch",
                request_id=f"r{i}",
                timestamp=DAY.since + timedelta(hours=i),
                probabilities=fitted.predict_proba(filled),
                classes=list(fitted.classes_),
            ),
        )
    resolved = ResolvedModel(MODEL, "1", "Production", "run-1")
    return settings, resolved, profile, contract


def _start(settings) -> early.EarlyCount:
    counting = early.start(MODEL, "Production", None, DAY.since, DAY.until, None, None, settings)
    assert counting is not None
    return counting


def _figures(stats: WindowStats, others: dict[str, int]) -> dict:
    verdict = judge(
        stats,
        MonitorPolicy(min_rows=10),
        model=MODEL,
        version="1",
        window=DAY,
        holdout={},
        primary_metric="roc_auc",
    )
    return {"verdict": verdict.to_dict(), "others": others, "rows": stats.rows}


def _usual(settings, resolved, profile, contract) -> dict:
    stats = WindowStats.for_reference(profile, contract)
    sink = PredictionLog(settings.prediction_log)
    return _figures(stats, count_window(stats, sink, MODEL, resolved.version, DAY))


@pytest.fixture(autouse=True)
def _policy_file(monkeypatch, tmp_path):
    """early.start reads the model's monitor policy for the window's length."""
    folder = tmp_path / "registry"
    folder.mkdir()
    doc = yaml.safe_load((REPO / "registry" / "breast-cancer-classifier.yaml").read_text())
    (folder / f"{MODEL}.yaml").write_text(yaml.safe_dump({**doc, "model": MODEL}))
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(folder))


def test_the_first_run_counts_the_usual_way_and_the_next_uses_the_early_counts(setting):
    settings, resolved, profile, contract = setting
    usual = _usual(settings, resolved, profile, contract)
    first = _start(settings)
    assert first.counted(resolved, profile, contract) is None  # nothing remembered yet
    second = _start(settings)
    got = second.counted(resolved, profile, contract)
    assert got is not None
    assert _figures(*got) == usual
    assert got[1] == {"2": 2_000}  # the other version's rows, counted apart


@pytest.mark.parametrize("change", ["version", "run", "bins", "contract", "broken file"])
def test_a_stale_reference_is_refused_and_the_actual_one_remembered(setting, change):
    settings, resolved, profile, contract = setting
    _start(settings).counted(resolved, profile, contract)  # remembered
    path = early.reference_file(MODEL, "Production", None, settings)
    if change == "broken file":
        path.write_text("{not json", encoding="utf-8")
    elif change in ("bins", "contract"):  # the same version, an artifact edited since
        doc = json.loads(path.read_text(encoding="utf-8"))
        if change == "bins":
            edges = doc["profile"]["features"]["x"]["bin_edges"]
            edges[1:-1] = [e + 0.01 for e in edges[1:-1]]
        else:
            doc["contract"]["columns"]["x"]["max"] = 99.0
        path.write_text(json.dumps(doc), encoding="utf-8")
    counting = _start(settings)
    if change == "version":
        resolved = ResolvedModel(MODEL, "2", "Production", "run-2")
    elif change == "run":
        resolved = ResolvedModel(MODEL, "1", "Production", "run-other")
    assert counting.counted(resolved, profile, contract) is None
    # and the reference the registry gave is what the next run counts against
    assert _start(settings).counted(resolved, profile, contract) is not None


def test_served_rows_without_probabilities_are_not_counted_early(setting):
    """The model must score them (monitor loads it, checked): never in the early thread."""
    settings, resolved, profile, contract = setting
    sink = PredictionLog(settings.prediction_log)
    rows = _frame(np.random.default_rng(5), 50)
    sink.write_frame(
        MODEL,
        scored_frame(
            rows,
            np.zeros(50),
            model=MODEL,
            version="1",
            source="serve",
            request_id="served",
            timestamp=DAY.since + timedelta(hours=5),
        ),
    )
    _start(settings).counted(resolved, profile, contract)
    assert _start(settings).counted(resolved, profile, contract) is None


def test_no_early_count_when_the_window_cannot_be_known(setting, monkeypatch):
    """A bad --window or a missing policy is the monitor's to report, in its own order."""
    settings = setting[0]
    assert (
        early.start(MODEL, "Production", None, None, None, "3 fortnights", None, settings) is None
    )
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", "/nonexistent")
    assert early.start(MODEL, "Production", None, None, None, None, None, get_settings()) is None


def test_a_monitor_that_fails_first_stops_the_thread(setting):
    """An error before the counts are needed (no such model, store down): the command ends
    without waiting for the whole window to be read, and no thread outlives it."""
    settings, resolved, profile, contract = setting
    _start(settings).counted(resolved, profile, contract)
    counting = _start(settings)
    counting.stop()
    assert counting._thread is not None and not counting._thread.is_alive()


def test_a_database_log_is_not_counted_early(setting, monkeypatch, tmp_path):
    """Read through SQLAlchemy, which MLflow imports meanwhile: never two threads in it."""
    settings, resolved, profile, contract = setting
    _start(settings).counted(resolved, profile, contract)  # a reference is remembered
    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", f"sqlite:///{tmp_path / 'log.db'}")
    counting = _start(get_settings())
    assert counting._thread is None
    assert counting.counted(resolved, profile, contract) is None
