"""Issue 25, monitoring: a window is judged on what it holds, not on how a log spelled it.

One test (or a few) per observation: labels compared as labels (1), the level
that moved is on the page (2), one drifted feature is a breach by policy (3),
datetimes judged by their parts and counted once (4), no report overwritten (5),
the wording (6).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from runway.core.columns.contract import infer_contract
from runway.core.columns.profile import PredictionProfile, infer_profile
from runway.core.columns.schema import TargetInfo
from runway.core.governance.monitor_policy import MonitorPolicy
from runway.monitoring.judge import Verdict, judge
from runway.monitoring.labels import Labels
from runway.monitoring.monitor import MonitorResult, _write_report
from runway.monitoring.report import bars, render
from runway.monitoring.window import Window, WindowStats, _reason_kind

DAY = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))


def _stats(train: pd.DataFrame, kinds: dict, **profile) -> WindowStats:
    contract = infer_contract(train, kinds, target=profile.pop("target", None))
    return WindowStats.for_reference(infer_profile(train, kinds, **profile), contract)


def _judge(stats: WindowStats, window: Window = DAY, **policy) -> Verdict:
    policy.setdefault("min_rows", 10)
    return judge(
        stats,
        MonitorPolicy(**policy),
        model="m",
        version="1",
        window=window,
        holdout={},
        primary_metric="roc_auc",
    )


# 1. labels as labels -----------------------------------------------------------------


@pytest.mark.parametrize(
    "logged",
    [
        pd.Series([1.0, 0.0] * 150 + [np.nan]),  # a part file with a rejected row's gap
        pd.Series(["1", "0"] * 150),  # SQLite/PostgreSQL text
        pd.Series(["1.0", "0.0"] * 150),  # a float column read back as text
        pd.Series([1, 0] * 150, dtype="int64"),
    ],
    ids=["float", "text", "float-text", "int"],
)
def test_predictions_are_compared_as_the_contracts_classes_whatever_the_dtype(logged):
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=300)})
    predictions = PredictionProfile(kind="categorical", count=300, frequencies={"1": 0.5, "0": 0.5})
    stats = _stats(
        train,
        {"x": "numeric"},
        predictions=predictions,
        target=TargetInfo(classes=[0, 1], positive_class=1),
    )
    stats.add(
        pd.DataFrame({"status": "scored", "input.x": rng.normal(size=len(logged))}).assign(
            prediction=logged.to_numpy()
        )
    )

    verdict = _judge(stats)

    assert verdict.prediction is not None
    assert verdict.prediction.psi < 0.01 and not verdict.prediction.drifted
    assert verdict.prediction.current[verdict.prediction.labels.index("(unseen)")] == 0.0
    assert not verdict.crossed


def test_booleans_a_database_log_holds_as_1_and_0_are_true_and_false():
    train = pd.DataFrame({"b": pd.Series([True, False] * 100, dtype=object)})
    stats = _stats(train, {"b": "boolean"})
    stats.add(pd.DataFrame({"status": "scored", "input.b": [1, 0] * 100}))

    verdict = _judge(stats)

    [feature] = verdict.features
    assert feature.unseen_rate == 0.0 and not feature.drifted


def test_joined_labels_match_predictions_logged_as_floats():
    labels = Labels("labels.csv", {"a": "1", "b": "0", "c": "1"}, classes=["0", "1"])
    labels.index_labels([0, 1])
    log = pd.DataFrame({"key": ["a", "b", "c"], "status": "scored", "prediction": [1.0, 0.0, 1.0]})
    labels.add(log, [], None)
    assert labels.y_true == labels.y_pred == ["1", "0", "1"]


# 2. the level that moved ---------------------------------------------------------------


def test_the_level_that_moved_is_shown_among_many_with_other_and_unseen():
    levels = [f"level-{i:02d}" for i in range(40)]
    train = pd.DataFrame({"c": [levels[i % 40] for i in range(4000)]})  # 2.5 % each
    stats = _stats(train, {"c": "categorical"})
    window = [levels[i % 40] for i in range(600)] + ["level-37"] * 400  # level-37: 2.5 % -> 42 %
    stats.add(pd.DataFrame({"status": "scored", "input.c": window}))

    verdict = _judge(stats)
    page = render(verdict, outcome="crossed")

    assert verdict.drifted == ["c"]
    card = page.split("<h3>c</h3>", 1)[1].split("</svg>", 1)[0]
    bins = re.findall(r"<title>([^<]+): [\d.]+%</title>", card)
    assert bins[0] == "level-37"  # the one that moved most comes first
    assert "(other)" in bins and bins[-1] == "(unseen)"
    assert len(set(bins)) == 26  # 24 levels, (other), (unseen)


# 3. one feature far past its threshold ---------------------------------------------------


def _one_of_six(**features) -> Verdict:
    rng = np.random.default_rng(2)
    names = [f"f{i}" for i in range(6)]
    train = pd.DataFrame({n: rng.normal(size=600) for n in names})
    stats = _stats(train, dict.fromkeys(names, "numeric"))
    window = pd.DataFrame({f"input.{n}": rng.normal(size=500) for n in names})
    window["input.f3"] += 1.0  # PSI about 1, few values past the training range
    stats.add(window.assign(status="scored"))
    return _judge(stats, features=features)


def test_a_single_drifted_feature_is_a_breach_by_default_and_the_rule_is_named():
    verdict = _one_of_six()

    assert verdict.drifted == ["f3"] and verdict.crossed
    [breach] = verdict.breaches
    assert "features.per_feature: breach" in breach and "f3" in breach
    page = render(verdict, outcome="crossed")
    assert "features.per_feature: breach" in page and "features.drift_share" in page


def test_per_feature_note_reports_it_and_only_the_share_breaches():
    verdict = _one_of_six(per_feature="note")

    assert verdict.drifted == ["f3"] and not verdict.crossed
    assert any("f3" in n and "features.per_feature: note" in n for n in verdict.notes)
    assert "features.per_feature: note" in verdict.rules


# 4. datetimes: by their parts, counted once ------------------------------------------------


def _timestamps(hours: list[int], days: int, start: str = "2026-01-01") -> pd.Series:
    rng = np.random.default_rng(len(hours) + days)
    base = pd.Timestamp(start)
    offsets = [
        pd.Timedelta(days=int(rng.integers(days)), hours=int(rng.choice(hours)), minutes=7)
        for _ in range(1500)
    ]
    return pd.Series([base + o for o in offsets]).astype("datetime64[us]")


@pytest.mark.parametrize("as_logged", ["parquet", "database"])
def test_a_datetime_is_judged_by_its_hours_and_counted_like_every_feature(as_logged):
    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {"t": _timestamps(list(range(8, 18)), days=90), "x": rng.normal(size=1500)}
    )
    stats = _stats(train, {"t": "datetime", "x": "numeric"})
    night = _timestamps([0, 1, 2, 3], days=1, start="2026-11-20")  # office hours -> night
    if as_logged == "database":  # SQLite hands timestamps back as text
        night = night.astype(str)
    stats.add(
        pd.DataFrame({"status": "scored", "input.t": night, "input.x": rng.normal(size=1500)})
    )

    verdict = _judge(stats, features={"drift_share": 0.5})

    t = next(f for f in verdict.features if f.name == "t")
    assert t.drifted and t.part == "hour"
    assert "dayofweek" in t.note and "month" in t.note  # a one-day window holds one weekday
    assert [f.name for f in verdict.judged] == ["t", "x"]
    assert verdict.share_text == "1 of 2 features drifted (50%)"
    assert any(verdict.share_text in breach for breach in verdict.breaches)
    assert verdict.share_text in render(verdict, outcome="crossed")


def test_a_datetime_like_training_is_not_drift_in_a_one_day_window():
    train = pd.DataFrame({"t": _timestamps(list(range(24)), days=400)})
    stats = _stats(train, {"t": "datetime"})
    stats.add(
        pd.DataFrame({"status": "scored", "input.t": _timestamps(list(range(24)), 1, "2027-03-03")})
    )

    verdict = _judge(stats)

    assert verdict.drifted == [] and not verdict.crossed


# 5. reports are never overwritten ------------------------------------------------------


def test_two_windows_in_one_minute_and_a_window_judged_twice_keep_every_report(tmp_path):
    start = datetime(2026, 11, 20, 6, 0, 0, tzinfo=UTC)
    windows = [
        Window(start, start + timedelta(seconds=20)),
        Window(start + timedelta(seconds=20), start + timedelta(seconds=40)),
        Window(start + timedelta(seconds=20), start + timedelta(seconds=40)),
    ]
    paths = [
        _write_report(MonitorResult("m", "3", w, "healthy", None), f"page {i}", str(tmp_path))
        for i, w in enumerate(windows)
    ]
    assert len(set(paths)) == 3
    assert [p.read_text() for p in paths] == ["page 0", "page 1", "page 2"]
    assert paths[0].name == "m-v3-20261120T060000Z-20261120T060020Z.html"


# 6. wording ----------------------------------------------------------------------------


def test_a_live_rmse_too_high_is_above_the_ceiling():
    from runway.cli.monitor import _table

    rng = np.random.default_rng(4)
    train = pd.DataFrame({"x": rng.normal(size=300)})
    stats = _stats(train, {"x": "numeric"})
    stats.add(pd.DataFrame({"status": "scored", "input.x": rng.normal(size=300)}))
    labels = Labels("labels.csv", {}, y_true=[1.0, 2.0] * 30, y_pred=[3.0, 4.0] * 30)

    verdict = judge(
        stats,
        MonitorPolicy(min_rows=10, performance={"metric": "rmse", "max_drop": 0.5}),
        model="m",
        version="1",
        window=DAY,
        holdout={"holdout_rmse": 0.4},
        primary_metric="rmse",
        labels=labels,
    )

    [breach] = verdict.breaches
    assert "live rmse 2.0000 above the ceiling 0.9000" in breach
    page = render(verdict, outcome="crossed")
    assert "ABOVE CEILING" in page and "<th>ceiling</th>" in page and "FLOOR" not in page
    assert _table(verdict)[-1].endswith(": ABOVE CEILING")


def test_tiny_p_values_print_alike_in_report_and_cli():
    from runway.cli.monitor import _table

    verdict = _one_of_six()
    f3 = next(f for f in verdict.features if f.name == "f3")
    assert f3.distribution is not None and f3.distribution.p_value < 1e-10
    shown = f"{f3.distribution.p_value:.3g}"
    page = render(verdict, outcome="crossed")
    row = page.split("<td>f3</td>", 1)[1].split("</tr>", 1)[0]
    assert shown in row and "0.0000" not in row
    assert any(shown in line for line in _table(verdict))


def test_an_unseen_category_reason_names_the_column_and_the_value():
    reason = (
        "column 'contract': category 'Two year plus' never seen in training; "
        "expected one of 'Month-to-month', 'One year', 'Two year'"
    )
    assert _reason_kind(reason) == (
        "column 'contract': category 'Two year plus' never seen in training"
    )
    assert _reason_kind("column 'age': expected a number, got text 'x'") == (
        "column 'age': expected a number"
    )


def test_probability_bin_labels_are_whole_and_axis_labels_readable():
    labels = ["< 0.0001234", "[0.0001234, 0.01235)", "[0.01235, 0.9876)", ">= 0.9876"]
    svg = bars(labels, [0.25] * 4, [0.25] * 4, drifted=False)
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert all(label in texts for label in labels)
    sizes = [int(s) for s in re.findall(r"font-size='(\d+)'", svg)]
    assert sizes and min(sizes) >= 11
    # the first label's left reach stays inside the picture (about 6 px a character at 40°)
    first = re.search(r"<text x='([\d.]+)'[^>]*rotate\(-40 [^>]*>&lt; 0.0001234<", svg)
    assert first is not None and float(first.group(1)) >= len(labels[0]) * 11 * 0.56 * 0.76
