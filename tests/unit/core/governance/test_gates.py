"""Promotion policies parse strictly; gates are judged by pure functions."""

from __future__ import annotations

import pytest

from runway.core.governance.gates import GateReport, ModelFacts, judge
from runway.core.governance.policy import PromotionPolicy, load_policy
from runway.errors import SpecError

COLUMNS = {"age": "double", "plan": "string"}


def policy(**staging) -> PromotionPolicy:
    return PromotionPolicy.model_validate(
        {
            "model": "m",
            "staging": staging,
            "production": {"reviewers": ["alice", "bob"], "four_eyes": True},
        }
    )


def facts(version="2", metrics=None, inputs=None, author="carol", **kw) -> ModelFacts:
    return ModelFacts(
        version=version,
        stage="Staging",
        author=author,
        metrics={"roc_auc": 0.96, "rmse": 10.0} if metrics is None else metrics,
        inputs=dict(COLUMNS) if inputs is None else inputs,
        **kw,
    )


def by_name(rules):
    return {r.name: r for r in rules}


def test_threshold_strings_parse_and_judge():
    p = policy(thresholds=["roc_auc >= 0.95", "rmse<12.5"])
    assert [str(t) for t in p.staging.thresholds] == ["roc_auc >= 0.95", "rmse < 12.5"]
    rules = by_name(judge(p, "Staging", facts(), None, "roc_auc"))
    assert rules["holdout roc_auc"].passed and rules["holdout rmse"].passed
    rules = by_name(
        judge(p, "Staging", facts(metrics={"roc_auc": 0.94, "rmse": 13}), None, "roc_auc")
    )
    assert not rules["holdout roc_auc"].passed
    assert rules["holdout roc_auc"].candidate == "0.94"
    assert not rules["holdout rmse"].passed


def test_a_metric_that_was_not_computed_fails_with_a_reason():
    p = policy(thresholds=["roc_auc >= 0.5"])
    rule = judge(p, "Staging", facts(metrics={}), None, "roc_auc")[0]
    assert not rule.passed and "not computed" in rule.detail


@pytest.mark.parametrize(
    ("candidate", "champion", "improvement", "passes"),
    [
        (0.96, 0.95, {"min_absolute": 0.005}, True),
        (0.955, 0.95, {"min_absolute": 0.01}, False),
        (0.96, 0.95, {"min_relative": 0.01}, True),  # +1.05%
        (0.951, 0.95, {"min_relative": 0.01}, False),
        (0.95, 0.95, {"min_absolute": 0.0}, True),  # "never worse"
        (0.94, 0.95, {"min_absolute": 0.0}, False),
    ],
)
def test_improvement_over_production(candidate, champion, improvement, passes):
    p = policy(improvement=improvement)
    rules = by_name(
        judge(
            p,
            "Staging",
            facts(metrics={"roc_auc": candidate}),
            facts("1", metrics={"roc_auc": champion}),
            "roc_auc",
        )
    )
    assert rules["improvement in roc_auc"].passed is passes


def test_improvement_follows_the_metric_direction():
    p = policy(improvement={"metric": "rmse", "min_absolute": 1.0})
    lower = facts(metrics={"rmse": 8.0})
    higher = facts(metrics={"rmse": 12.0})
    champion = facts("1", metrics={"rmse": 10.0})
    assert by_name(judge(p, "Staging", lower, champion, "r2"))["improvement in rmse"].passed
    assert not by_name(judge(p, "Staging", higher, champion, "r2"))["improvement in rmse"].passed


def test_first_champion_has_nothing_to_beat():
    p = policy(improvement={"min_absolute": 0.1})
    rule = by_name(judge(p, "Staging", facts(), None, "roc_auc"))["improvement in roc_auc"]
    assert rule.passed and "no Production" in rule.detail


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"age": "double"}, "plan is no longer accepted"),
        ({**COLUMNS, "region": "string"}, "region is newly required"),
        ({"age": "long", "plan": "string"}, "age changed type double -> long"),
    ],
)
def test_breaking_signature_fails_unless_allowed(inputs, problem):
    champion = facts("1")
    rule = by_name(judge(policy(), "Staging", facts(inputs=inputs), champion, "roc_auc"))[
        "input signature"
    ]
    assert not rule.passed and problem in rule.detail
    allowed = policy(allow_breaking_signature=True)
    assert by_name(judge(allowed, "Staging", facts(inputs=inputs), champion, "roc_auc"))[
        "input signature"
    ].passed


def test_latency_and_size_limits():
    p = policy(max_latency_ms=5, max_model_size_mb=1)
    ok = by_name(judge(p, "Staging", facts(latency_ms=2.0, size_mb=0.5), None, "roc_auc"))
    assert ok["latency p50, 1 row"].passed and ok["model size"].passed
    bad = by_name(judge(p, "Staging", facts(latency_ms=7.5, size_mb=3.0), None, "roc_auc"))
    assert not bad["latency p50, 1 row"].passed and bad["latency p50, 1 row"].candidate == "7.5 ms"
    assert not bad["model size"].passed


@pytest.mark.parametrize(
    ("reviewer", "author", "failing"),
    [
        (None, "carol", {"reviewer on the list", "four-eyes"}),
        ("mallory", "carol", {"reviewer on the list"}),
        ("alice", "alice", {"four-eyes"}),
        ("alice", "carol", set()),
    ],
)
def test_production_needs_a_listed_reviewer_who_is_not_the_author(reviewer, author, failing):
    rules = judge(policy(), "Production", facts(author=author), None, "roc_auc", reviewer)
    assert {r.name for r in rules if not r.passed} == failing


def test_staging_does_not_ask_for_a_reviewer():
    assert all(r.passed for r in judge(policy(), "Staging", facts(), None, "roc_auc"))


def test_report_renders_side_by_side_and_serialises():
    p = policy(thresholds=["roc_auc >= 0.97"], improvement={"min_absolute": 0})
    rules = judge(p, "Staging", facts(), facts("1", metrics={"roc_auc": 0.95}), "roc_auc")
    report = GateReport("m", "2", "Staging", "1", "114 holdout rows", rules)
    text = report.render()
    assert "m v2 -> Staging (current Production: v1)" in text
    assert "holdout roc_auc" in text and "0.96" in text and "0.95" in text and "FAIL" in text
    assert text.splitlines()[-1] == "result: FAIL"
    assert report.to_dict()["passed"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "model: m\nproduction: {reviewers: [a]}\nstaging: {treshold: []}\n",
            "staging.treshold: unknown field",
        ),
        (
            "model: m\nproduction: {reviewers: [a]}\nstaging: {thresholds: ['auc > high']}\n",
            "expected '<metric> <op> <number>'",
        ),
        (
            "model: m\nproduction: {reviewers: [a]}\nstaging: {thresholds: ['roc_acu >= 0.9']}\n",
            "did you mean 'roc_auc'",
        ),
        ("model: m\nproduction: {reviewers: []}\n", "production.reviewers"),
        (
            "model: m\nproduction: {reviewers: [a]}\nstaging: {improvement: {metric: roc_auc}}\n",
            "min_absolute and/or min_relative",
        ),
    ],
)
def test_bad_policy_files_name_the_field(tmp_path, body, message):
    path = tmp_path / "m.yaml"
    path.write_text(body)
    with pytest.raises(SpecError) as err:
        load_policy(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_shipped_policies_are_valid():
    from tests.conftest import REPO

    shipped = sorted((REPO / "registry").glob("*.yaml"))
    assert shipped
    for path in shipped:
        assert load_policy(path).model == path.stem


def test_a_refused_reviewer_is_told_who_may_review():
    """Issue 29, item 7: the refusal names the policy's reviewers."""
    rules = judge(policy(), "Production", facts(author="carol"), None, "roc_auc", "mallory")
    listed = next(r for r in rules if r.name == "reviewer on the list")
    assert "'mallory' is not listed" in listed.detail
    assert "who may review: alice, bob" in listed.detail
