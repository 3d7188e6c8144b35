"""Promotion gates as pure functions: facts about two model versions in, a report out.

The registry module gathers the facts (it loads both versions and scores them
on the same evaluation data); this module only judges them against a policy,
so every rule can be tested without MLflow.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from runway.core.columns.schema import OPTIONAL, REQUIRED
from runway.core.governance.policy import PromotionPolicy
from runway.core.text import format_table
from runway.core.training.catalog import METRICS

# Metrics this close (relative or absolute) are equal: float rounding is not a change in quality.
TOLERANCE = 1e-9

Stage = Literal["None", "Staging", "Production", "Archived"]


@dataclass(frozen=True)
class ModelFacts:
    """What was measured about one model version."""

    version: str
    stage: str
    run_id: str | None = None
    author: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    score_error: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # every signature column -> type
    # the columns a request must send; None: all of them (facts gathered before optional columns)
    required: tuple[str, ...] | None = None

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """The signature columns a request must send."""
        return tuple(self.inputs) if self.required is None else self.required

    latency_ms: float | None = None
    size_mb: float | None = None


@dataclass(frozen=True)
class Rule:
    """One gate's verdict, with the numbers behind it."""

    name: str
    passed: bool
    candidate: str
    baseline: str = ""
    limit: str = ""
    detail: str = ""


@dataclass
class GateReport:
    """The side-by-side report a reviewer reads before a stage changes."""

    model: str
    version: str
    target: str
    baseline_version: str | None
    evaluation: str
    rules: list[Rule]
    reviewer: str | None = None
    comment: str = ""

    @property
    def passed(self) -> bool:
        """True when every rule passed."""
        return all(rule.passed for rule in self.rules)

    @property
    def failures(self) -> list[Rule]:
        """The rules that did not pass."""
        return [rule for rule in self.rules if not rule.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the artifact logged on the candidate's run)."""
        return {**asdict(self), "passed": self.passed}

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        """A plain-text table: rule, candidate, Production, limit, result."""
        baseline = f"v{self.baseline_version}" if self.baseline_version else "(none)"
        lines = [
            f"gate report: {self.model} v{self.version} -> {self.target}"
            f" (current Production: {baseline})",
            f"evaluated on: {self.evaluation}",
        ]
        if self.reviewer:
            lines.append(
                f"reviewer: {self.reviewer}" + (f" ({self.comment})" if self.comment else "")
            )
        header = ("rule", f"v{self.version}", f"Production {baseline}", "limit", "result")
        rows = [
            (r.name, r.candidate, r.baseline, r.limit, "pass" if r.passed else "FAIL")
            for r in self.rules
        ]
        lines.extend(format_table([header, *rows]))
        for rule in self.rules:
            if rule.detail and not rule.passed:
                lines.append(f"  {rule.name}: {rule.detail}")
        lines.append(f"result: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.4g}{unit}"


def judge(
    policy: PromotionPolicy,
    target: Stage,
    candidate: ModelFacts,
    baseline: ModelFacts | None,
    primary_metric: str,
    reviewer: str | None = None,
) -> list[Rule]:
    """Every rule of ``policy`` for moving ``candidate`` to ``target``.

    Production re-checks the Staging gates against the current Production
    version, then adds the reviewer rules.
    """
    gates = policy.staging
    rules = [_threshold(t, candidate, baseline) for t in gates.thresholds]
    if gates.improvement is not None:
        rules.append(_improvement(policy, candidate, baseline, primary_metric))
    rules.append(_signature(candidate, baseline, gates.allow_breaking_signature))
    for name, field_name, limit, unit in (
        ("latency p50, 1 row", "latency_ms", gates.max_latency_ms, " ms"),
        ("model size", "size_mb", gates.max_model_size_mb, " MB"),
    ):
        if limit is not None:
            value = getattr(candidate, field_name)
            rules.append(
                Rule(
                    name,
                    value is not None and value <= limit,
                    _fmt(value, unit),
                    _fmt(getattr(baseline, field_name) if baseline else None, unit),
                    f"<= {limit:g}{unit}",
                )
            )
    if target == "Production":
        rules.extend(reviewer_rules(policy, candidate, reviewer))
    return rules


def reviewer_rules(
    policy: PromotionPolicy, candidate: ModelFacts, reviewer: str | None
) -> list[Rule]:
    """The approval rules for Production: a listed reviewer, and four-eyes if asked."""
    allowed = policy.production.reviewers
    rules = [
        Rule(
            "reviewer on the list",
            reviewer is not None and reviewer in allowed,
            reviewer or "(none given)",
            limit="one of " + ", ".join(allowed),
            detail=("pass --reviewer NAME" if reviewer is None else f"{reviewer!r} is not listed")
            + (f"; who may review: {', '.join(allowed)} (the policy's production.reviewers)"),
        )
    ]
    if policy.production.four_eyes:
        author = candidate.author or "(unknown)"
        rules.append(
            Rule(
                "four-eyes",
                reviewer is not None
                and candidate.author is not None
                and reviewer.casefold() != candidate.author.casefold(),
                f"author {author}",
                limit="reviewer != author",
                detail=f"{reviewer} authored the candidate's run; another reviewer must approve"
                if candidate.author
                else "the candidate's run has no author (mlflow.user tag)",
            )
        )
    return rules


def _threshold(rule: Any, candidate: ModelFacts, baseline: ModelFacts | None) -> Rule:
    value = candidate.metrics.get(rule.metric)
    other = baseline.metrics.get(rule.metric) if baseline else None
    detail = candidate.score_error or f"{rule.metric} was not computed for this model's task"
    return Rule(
        f"holdout {rule.metric}",
        value is not None and rule.holds(value),
        _fmt(value),
        _fmt(other),
        f"{rule.op} {rule.value:g}",
        "" if value is not None else detail,
    )


def _improvement(
    policy: PromotionPolicy,
    candidate: ModelFacts,
    baseline: ModelFacts | None,
    primary_metric: str,
) -> Rule:
    wanted = policy.staging.improvement
    assert wanted is not None
    metric = wanted.metric or primary_metric
    limits = []
    if wanted.min_absolute is not None:
        limits.append(f">= {wanted.min_absolute:+g}")
    if wanted.min_relative is not None:
        limits.append(f">= {wanted.min_relative:+.2%}")
    limit = " and ".join(limits)
    name = f"improvement in {metric}"
    value = candidate.metrics.get(metric)
    if baseline is None:
        return Rule(name, True, _fmt(value), "-", limit, "no Production version yet")
    if baseline.score_error:
        allowed = policy.staging.allow_breaking_signature
        detail = f"Production cannot score the evaluation data: {baseline.score_error}"
        return Rule(name, allowed, _fmt(value), "n/a", limit, detail)
    other = baseline.metrics.get(metric)
    if value is None or other is None:
        return Rule(name, False, _fmt(value), _fmt(other), limit, f"{metric} missing")
    sign = 1.0 if METRICS[metric].direction == "maximize" else -1.0
    delta = sign * (value - other)
    if math.isclose(value, other, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
        delta = 0.0  # the same quality up to float rounding (AUCs differing by 2e-16)
    relative = delta / abs(other) if other else float("inf") if delta > 0 else 0.0
    passed = (wanted.min_absolute is None or _at_least(delta, wanted.min_absolute)) and (
        wanted.min_relative is None or _at_least(relative, wanted.min_relative)
    )
    if passed:
        detail = ""
    elif delta < 0:
        detail = f"worse by {-delta:.4g} ({-relative:.2%}); needs {limit}"
    else:
        detail = f"better by {delta:.4g} ({relative:.2%}), not enough: needs {limit}"
    return Rule(
        name, passed, f"{value:.4g} ({delta:+.4g}, {relative:+.2%})", _fmt(other), limit, detail
    )


def _at_least(value: float, wanted: float) -> bool:
    """``value >= wanted``, with equal up to :data:`TOLERANCE` counted as met."""
    return value >= wanted or math.isclose(value, wanted, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _columns(facts: ModelFacts) -> str:
    """How many columns, and which a request may leave out (the words of ``GET /``)."""
    optional = [c for c in facts.inputs if c not in facts.required_inputs]
    if not optional:
        return f"{len(facts.inputs)} columns, all {REQUIRED}"
    shown = ", ".join(optional[:6]) + (f" (+{len(optional) - 6} more)" if len(optional) > 6 else "")
    return f"{len(facts.inputs)} columns; {OPTIONAL}: {shown}"


def _signature(candidate: ModelFacts, baseline: ModelFacts | None, allow_breaking: bool) -> Rule:
    ours = candidate.inputs
    name = "input signature"
    if baseline is None:
        return Rule(name, True, _columns(candidate), "-", "compatible", "no Production version")
    theirs = baseline.inputs
    problems = [f"{c} is no longer accepted" for c in theirs if c not in ours]
    problems += [
        f"{c} is newly required"
        for c in candidate.required_inputs
        if c not in theirs or c not in baseline.required_inputs
    ]
    problems += [
        f"{c} changed type {theirs[c]} -> {ours[c]}"
        for c in ours
        if c in theirs and ours[c] != theirs[c]
    ]
    passed = not problems or allow_breaking
    detail = "; ".join(problems[:5]) + (
        f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
    )
    limit = "breaking allowed" if allow_breaking else "same columns and types"
    return Rule(name, passed, _columns(candidate), _columns(baseline), limit, detail)
