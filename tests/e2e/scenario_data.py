"""A churn table with every column kind, and the month the scenario test lives through.

Generated, never downloaded: the same seed gives the same rows. Columns, each
kind with gaps: ``tenure_months`` (int, gaps), ``support_calls`` (int, complete:
pandas reads it as int64, issue 25 item 14), ``monthly_charge`` (float, gaps),
``autopay`` (boolean, gaps), ``signed_up`` (ISO 8601 text in the CSV, gaps),
``plan`` (4 levels, gaps), ``store id`` (45 levels, a space in its name, gaps);
the target ``churned`` (0/1).

The weeks differ the way a served model's traffic does:

- ``like_training``: the training distribution and the training concept;
- ``surge``: one small store's share jumps from about 1.3% to :data:`SURGE_SHARE`;
- ``creep``: ``monthly_charge`` moves up by this many training standard deviations;
- ``new_concept``: customers of the surging store churn whatever else they are
  (what a retrain on the week's labels can learn, and the old model cannot know).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = [
    "tenure_months",
    "support_calls",
    "monthly_charge",
    "autopay",
    "signed_up",
    "plan",
    "store id",
]
TARGET = "churned"
STORES = [f"s{i:02d}" for i in range(45)]
PLANS = ["basic", "standard", "premium", "family"]
# Stores differ in size (s00 about 5% of rows, s44 about 1%); the one whose share moves
# is a small one, far down the training's order of levels (issue 25, item 2).
_STORE_WEIGHTS = 1 / (1 + np.arange(len(STORES)) / 15)
SURGING = "s40"
SURGE_SHARE = 0.42
CHARGE_MEAN, CHARGE_SD = 65.0, 18.0
GAPS = {  # column -> share of missing values, drawn for every column either way
    "tenure_months": 0.04,
    "monthly_charge": 0.05,
    "autopay": 0.05,
    "signed_up": 0.05,
    "plan": 0.06,
    "store id": 0.04,
}
_STORE_EFFECT = dict(
    zip(STORES, np.random.default_rng(1234).normal(0, 0.6, len(STORES)), strict=True)
)
_PLAN_EFFECT = {"basic": 0.4, "standard": 0.0, "premium": -0.5, "family": -0.2}


def month_frame(
    n: int,
    seed: int,
    *,
    surge: float = 0.0,
    creep: float = 0.0,
    new_concept: bool = False,
) -> pd.DataFrame:
    """``n`` rows of the table; ``surge`` is the surging store's share (0: as in training)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n)
    calls = rng.poisson(1.2, n)
    charge = (rng.normal(CHARGE_MEAN, CHARGE_SD, n) + creep * CHARGE_SD).clip(15, None).round(2)
    autopay = rng.random(n) < 0.55
    start = np.datetime64("2023-01-01T00:00:00")
    stamps = start + rng.integers(0, 700 * 24 * 3600, n).astype("timedelta64[s]")
    weekday = (stamps.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01: a Thursday
    plan = np.array(PLANS)[rng.integers(0, len(PLANS), n)]
    store = rng.choice(STORES, n, p=_STORE_WEIGHTS / _STORE_WEIGHTS.sum())
    if surge:
        store = np.where(rng.random(n) < surge, SURGING, store)
    logit = 2.2 * (
        0.3
        - 0.045 * tenure
        + 0.3 * calls
        + 0.05 * (charge - CHARGE_MEAN)
        - 0.9 * autopay
        + 0.4 * (weekday >= 5)
        + np.array([_PLAN_EFFECT[p] for p in plan])
        + np.array([_STORE_EFFECT[s] for s in store])
    )
    if new_concept:  # the surging store's customers: the old rule turned upside down
        logit = np.where(store == SURGING, 1.0 - logit, logit)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "support_calls": calls,
            "monthly_charge": charge,
            "autopay": pd.Series(autopay, dtype=object),
            "signed_up": pd.Series(np.datetime_as_string(stamps, unit="s"), dtype=object),
            "plan": pd.Series(plan, dtype=object),
            "store id": pd.Series(store, dtype=object),
            TARGET: churned,
        }
    )
    for column, rate in GAPS.items():
        gaps = rng.random(n) < rate
        if column == "tenure_months":  # an int column with gaps: pandas holds it as Int64
            frame[column] = frame[column].astype("Int64")
        frame.loc[gaps, column] = None
    return frame


def after_retrain(n: int, seed: int, share: float) -> pd.DataFrame:
    """Rows like a retrained version's training data: ``share`` of them like the week it learnt.

    A retrain on a week's labels appends them to the original training rows, so
    the new version's reference is that mix; traffic that goes on like it is healthy.
    """
    recent = round(n * share)
    rows = pd.concat(
        [
            month_frame(n - recent, seed),
            month_frame(recent, seed + 1, surge=SURGE_SHARE, creep=1.0, new_concept=True),
        ],
        ignore_index=True,
    )
    return rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
