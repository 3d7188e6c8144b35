"""The monitor section of a policy is validated like the rest, and a judged window renders offline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from runway.core.columns.contract import infer_contract
from runway.core.columns.profile import infer_profile
from runway.core.governance.monitor_policy import MonitorPolicy, parse_duration
from runway.core.governance.policy import load_policy
from runway.errors import SpecError
from runway.monitoring.judge import judge
from runway.monitoring.report import render
from runway.monitoring.window import Window, WindowStats


def _policy_file(tmp_path, monitor: dict):
    path = tmp_path / "m.yaml"
    doc = {"model": "m", "production": {"reviewers": ["a"]}, "monitor": monitor}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        ({"windw": "1d"}, "monitor.windw: unknown field"),
        ({"window": "yesterday"}, "monitor.window: 'yesterday': expected a duration"),
        (
            {"features": {"statistic": "ks"}},
            "monitor.features.statistic: Input should be 'psi' or 'chi2'",
        ),
        ({"trigger": {"breaches": 3, "of_last": 2}}, "breaches (3) cannot exceed of_last (2)"),
        ({"performance": {"metric": "roc"}}, "monitor.performance.metric: unknown metric 'roc'"),
        ({"action": "page"}, "monitor.action: Input should be 'report' or 'retrain'"),
    ],
)
def test_a_bad_monitor_section_is_named_by_field(tmp_path, monitor, message):
    with pytest.raises(SpecError) as error:
        load_policy(_policy_file(tmp_path, monitor))
    assert message in str(error.value)


def test_defaults_and_durations():
    policy = MonitorPolicy()
    assert policy.window_length == timedelta(days=1) and policy.action == "report"
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration("0h")


def _verdict(shift: float):
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"x": rng.normal(size=500), "color": rng.choice(["red", "blue"], size=500)}
    )
    kinds = {"x": "numeric", "color": "categorical"}
    stats = WindowStats.for_reference(infer_profile(train, kinds), infer_contract(train, kinds))
    window = pd.DataFrame(
        {
            "status": "scored",
            "input.x": rng.normal(loc=shift, size=400),
            "input.color": rng.choice(["red", "blue", "green"], size=400, p=[0.45, 0.45, 0.1]),
        }
    )
    stats.add(window)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return judge(
        stats,
        MonitorPolicy(min_rows=10, features={"drift_share": 0.5}),
        model="m",
        version="1",
        window=Window(now, now + timedelta(days=1)),
        holdout={},
        primary_metric="roc_auc",
    )


def test_a_judged_window_names_drift_and_quality_breaches():
    verdict = _verdict(shift=2.0)
    assert set(verdict.drifted) == {"x", "color"}
    assert any("unseen categories" in b for b in verdict.breaches)
    assert _verdict(shift=0.0).drifted == ["color"]  # the unseen "green" only


def test_the_report_opens_offline_and_escapes_what_it_shows():
    page = render(_verdict(shift=2.0), outcome="crossed")
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert not re.search(r"""<script|<link|@import|(src|href)=["']?https?:|url\(""", page)
    assert "threshold crossed" in page and "(unseen)" in page


def test_booleans_drift_like_categories_and_a_timestamp_is_judged_by_its_hours():
    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {
            "b": pd.Series(rng.random(500) < 0.3, dtype=object),
            "t": pd.Series(pd.date_range("2024-01-01", periods=500, freq="h")).astype(
                "datetime64[us]"
            ),
        }
    )
    kinds = {"b": "boolean", "t": "datetime"}
    stats = WindowStats.for_reference(infer_profile(train, kinds), infer_contract(train, kinds))
    window = pd.DataFrame(
        {
            "status": "scored",
            "input.b": pd.Series(rng.random(400) < 0.8, dtype=object),  # mostly true now
            "input.t": pd.date_range("2025-06-01", periods=400, freq="h"),  # later, as always
        }
    )
    stats.add(window)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    verdict = judge(
        stats,
        MonitorPolicy(min_rows=10),
        model="m",
        version="1",
        window=Window(now, now + timedelta(days=1)),
        holdout={},
        primary_metric="roc_auc",
    )
    assert verdict.drifted == ["b"]
    timestamps = next(f for f in verdict.features if f.name == "t")
    # later, as always, but with the same hours: a one-day window compares hours only
    assert timestamps.part == "hour" and not timestamps.drifted
    assert timestamps.missing_rate == 0.0


def test_the_live_metric_is_about_the_positive_class_the_spec_names():
    from runway.core.training.evaluate import metric_value

    truth = ["0", "0", "0", "1", "1", "1", "1", "1"]
    predicted = ["0", "1", "1", "1", "1", "1", "1", "0"]
    assert metric_value("recall", truth, predicted, classes=["0", "1"]) == pytest.approx(0.8)
    malignant = metric_value("recall", truth, predicted, classes=["0", "1"], positive=0)
    assert malignant == pytest.approx(1 / 3)
