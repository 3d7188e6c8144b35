"""The improvement gate compares with a tolerance: equal quality is not a loss (issue 25, 9)."""

from __future__ import annotations

import pytest

from runway.core.governance.gates import ModelFacts, judge
from runway.core.governance.policy import PromotionPolicy


def _policy(**improvement: float | str) -> PromotionPolicy:
    return PromotionPolicy.model_validate(
        {"model": "m", "staging": {"improvement": improvement}, "production": {"reviewers": ["a"]}}
    )


def _rule(candidate: float, champion: float, metric: str = "roc_auc", **improvement: float):
    facts = [
        ModelFacts(version=v, stage="Staging", metrics={metric: value}, inputs={"x": "double"})
        for v, value in (("2", candidate), ("1", champion))
    ]
    rules = judge(_policy(metric=metric, **improvement), "Staging", facts[0], facts[1], metric)
    return next(r for r in rules if r.name == f"improvement in {metric}")


def test_equal_roc_auc_up_to_rounding_passes_never_worse():
    champion = 0.1 + 0.2  # 0.30000000000000004
    candidate = 0.3  # 2.2e-16 lower: the same model quality
    for improvement in ({"min_relative": 0.0}, {"min_absolute": 0.0}):
        rule = _rule(candidate, champion, **improvement)
        assert rule.passed, rule
        assert "-0.00%" not in rule.candidate


@pytest.mark.parametrize("metric", ["roc_auc", "rmse"])
def test_a_real_shortfall_is_worded_worse_by(metric):
    worse = 0.90 if metric == "roc_auc" else 11.0
    champion = 0.95 if metric == "roc_auc" else 10.0
    rule = _rule(worse, champion, metric, min_relative=0.0)
    assert not rule.passed
    assert rule.detail.startswith("worse by "), rule.detail
    assert "better by -" not in rule.detail


def test_a_gain_short_of_the_margin_says_by_how_much():
    rule = _rule(0.951, 0.95, min_relative=0.01)
    assert not rule.passed
    assert "better by" in rule.detail and "1.00%" in rule.detail
