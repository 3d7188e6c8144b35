"""Judging a window against the policy: per-feature drift, prediction drift, quality, live metric.

Pure: counts and the policy in, a :class:`Verdict` out. Every statistic is
computed and reported; the one the policy names decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from runway.core.columns.drift import Histogram, chi2_two_sample, psi, share
from runway.core.columns.profile import CYCLIC_PARTS
from runway.core.governance.monitor_policy import MonitorPolicy
from runway.core.training.catalog import METRICS
from runway.monitoring.labels import Labels
from runway.monitoring.window import FeatureStats, Window, WindowStats


@dataclass(frozen=True)
class Distribution:
    """Reference and current fractions over the same bins, with the statistics between them."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    psi: float
    chi2: float
    p_value: float
    drifted: bool

    @classmethod
    def of(cls, histogram: Histogram, drifted: Any) -> Distribution:
        """Statistics of a filled histogram; ``drifted(psi, p_value) -> bool``."""
        value = psi(histogram.reference, histogram.current())
        stat, p = chi2_two_sample(histogram.reference, histogram.reference_rows, histogram.counts)
        return cls(
            list(histogram.labels),
            [float(x) for x in histogram.reference],
            [float(x) for x in histogram.current()],
            value,
            stat,
            p,
            bool(histogram.rows) and bool(drifted(value, p)),
        )


@dataclass(frozen=True)
class FeatureVerdict:
    """One feature: its distribution drift and its data quality, with what breached."""

    name: str
    kind: str
    distribution: Distribution | None
    missing_rate: float
    reference_missing_rate: float
    out_of_range_rate: float
    unseen_rate: float
    quality: list[str] = field(default_factory=list)
    part: str = ""  # datetime: the part whose distribution is shown (the one that moved most)
    note: str = ""  # why a feature has no statistic, or which parts were not compared

    @property
    def drifted(self) -> bool:
        """The policy's statistic says this feature's distribution moved."""
        return self.distribution is not None and self.distribution.drifted


@dataclass(frozen=True)
class Performance:
    """The live metric on labelled rows against the holdout's."""

    metric: str
    live: float | None
    holdout: float | None
    joined: int
    floor: float | None
    passed: bool | None  # None: not judged
    note: str = ""
    higher_is_better: bool = True  # the floor is a ceiling when lower is better (rmse)

    @property
    def state(self) -> str:
        """The verdict in words, the direction of the metric said: CLI and report alike."""
        if self.passed is None:
            return "not judged"
        if self.passed:
            return "ok"
        return "BELOW FLOOR" if self.higher_is_better else "ABOVE CEILING"

    @property
    def limit(self) -> str:
        """``floor`` or ``ceiling``: what the limit is for this metric's direction."""
        return "floor" if self.higher_is_better else "ceiling"


@dataclass
class Verdict:
    """Everything ``runway monitor`` concluded about one window."""

    model: str
    version: str
    window: Window
    statistic: str
    rows_scored: int
    rows_rejected: int
    reasons: dict[str, int]
    features: list[FeatureVerdict]
    drift_share: float
    prediction: Distribution | None
    scores: dict[str, Distribution]
    performance: Performance | None
    breaches: list[str]
    notes: list[str] = field(default_factory=list)
    rules: str = ""  # the drift rules that decided, in words (CLI and report)

    @property
    def crossed(self) -> bool:
        """A policy threshold was crossed in this window."""
        return bool(self.breaches)

    @property
    def rejected_rate(self) -> float:
        """Rejected rows / rows of the version in the window."""
        total = self.rows_scored + self.rows_rejected
        return self.rows_rejected / total if total else 0.0

    @property
    def drifted(self) -> list[str]:
        """The features whose distribution drifted."""
        return [f.name for f in self.features if f.drifted]

    @property
    def judged(self) -> list[FeatureVerdict]:
        """The features with a drift statistic: what the drift share counts, everywhere."""
        return judged_features(self.features)

    @property
    def share_text(self) -> str:
        """``2 of 5 features drifted (40%)``: the one wording of the count, CLI and report."""
        return (
            f"{len(self.drifted)} of {len(self.judged)} features drifted ({self.drift_share:.0%})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (logged as ``summary.json``)."""
        doc = asdict(self)
        doc["window"] = {
            "since": self.window.since.isoformat(),
            "until": self.window.until.isoformat(),
        }
        doc.update(
            crossed=self.crossed,
            rejected_rate=self.rejected_rate,
            drifted=self.drifted,
            judged=[f.name for f in self.judged],
        )
        return doc


def judged_features(features: list[FeatureVerdict]) -> list[FeatureVerdict]:
    """Features with a drift statistic (a datetime without comparable parts has none)."""
    return [f for f in features if f.distribution is not None and f.distribution.labels]


def format_p(value: float | None) -> str:
    """A p-value as CLI and report print it: three significant digits (1.13e-80, not 0.0000)."""
    return "-" if value is None else f"{value:.3g}"


def judge(
    stats: WindowStats,
    policy: MonitorPolicy,
    *,
    model: str,
    version: str,
    window: Window,
    holdout: dict[str, float],
    primary_metric: str,
    labels: Labels | None = None,
) -> Verdict:
    """Apply ``policy`` to the counts of one window."""
    rules = policy.features

    def feature_drift(value: float, p_value: float) -> bool:
        return value >= rules.psi_threshold if rules.statistic == "psi" else p_value < rules.p_value

    def output_drift(value: float, _p: float) -> bool:
        return value >= policy.predictions.psi_threshold

    span = window.until - window.since
    features = [_feature(s, feature_drift, policy, span) for s in stats.features.values()]
    drift_share = share([f.drifted for f in judged_features(features)])
    prediction = Distribution.of(stats.predictions, output_drift) if stats.predictions else None
    scores = {
        label: Distribution.of(h, output_drift) for label, h in stats.scores.items() if h.rows
    }
    performance = (
        _performance(policy, holdout, primary_metric, labels, stats.positive) if labels else None
    )
    verdict = Verdict(
        model,
        version,
        window,
        rules.statistic,
        stats.rows_scored,
        stats.rows_rejected,
        dict(stats.reasons.most_common()),
        features,
        drift_share,
        prediction,
        scores,
        performance,
        breaches=[],
    )
    verdict.rules = rules_text(policy)
    verdict.breaches = _breaches(verdict, policy)
    return verdict


def rules_text(policy: MonitorPolicy) -> str:
    """Which rule flags a feature, and which breaches: said beside every verdict."""
    rules = policy.features
    flag = (
        f"PSI >= {rules.psi_threshold:g}"
        if rules.statistic == "psi"
        else f"chi-square p < {rules.p_value:g}"
    )
    one = "a breach on its own" if rules.per_feature == "breach" else "noted, not a breach"
    return (
        f"a feature drifts at {flag} (features.statistic: {rules.statistic}); a drifted feature "
        f"is {one} (features.per_feature: {rules.per_feature}); the input breaches when "
        f">= {rules.drift_share:.0%} of judged features drifted (features.drift_share)"
    )


def _feature(
    stats: FeatureStats, drifted: Any, policy: MonitorPolicy, span: timedelta
) -> FeatureVerdict:
    limits = policy.quality
    present = stats.seen - stats.missing
    missing_rate = stats.missing / stats.seen if stats.seen else 0.0
    out_of_range = stats.out_of_range / present if present else 0.0
    unseen = stats.histogram.unseen() / present if stats.histogram is not None and present else 0.0
    quality = []
    if missing_rate - stats.reference_missing_rate > limits.max_missing_increase:
        quality.append(
            f"missing rate {missing_rate:.1%} (training {stats.reference_missing_rate:.1%}, "
            f"limit +{limits.max_missing_increase:.0%})"
        )
    if out_of_range > limits.max_out_of_range:
        quality.append(
            f"{out_of_range:.1%} outside the training range (limit {limits.max_out_of_range:.0%})"
        )
    if unseen > limits.max_unseen_categories:
        quality.append(f"{unseen:.1%} unseen categories (limit {limits.max_unseen_categories:.0%})")
    distribution = (
        Distribution.of(stats.histogram, drifted) if stats.histogram is not None else None
    )
    part, note = "", ""
    if stats.kind == "datetime":
        part, distribution, note = _datetime_parts(stats, drifted, span)
    return FeatureVerdict(
        stats.name,
        stats.kind,
        distribution,
        missing_rate,
        stats.reference_missing_rate,
        out_of_range,
        unseen,
        quality,
        part,
        note,
    )


def _datetime_parts(
    stats: FeatureStats, drifted: Any, span: timedelta
) -> tuple[str, Distribution | None, str]:
    """A datetime judged by the cyclic parts the model sees, each where it is comparable.

    A part is compared only when both the training timestamps and the window span
    its whole cycle (hour: a day, day of week: a week, month: a year); a one-day
    window always holds one weekday, which is no drift. The feature's statistic
    is its part that moved most (a drifted one first).
    """
    if not stats.parts:
        return "", None, "no part bins in the reference profile (trained before runway kept them)"
    days = span / timedelta(days=1)
    compared, skipped = {}, []
    for part, histogram in stats.parts.items():
        cycle = CYCLIC_PARTS.get(part, 0)
        if days >= cycle and stats.training_days >= cycle and histogram.rows:
            compared[part] = Distribution.of(histogram, drifted)
        else:
            skipped.append(part)
    note = f"compared: {', '.join(compared) or 'no part'}" + (
        f"; not compared (window or training shorter than the cycle): {', '.join(skipped)}"
        if skipped
        else ""
    )
    if not compared:
        return "", None, note
    part = max(compared, key=lambda p: (compared[p].drifted, compared[p].psi))
    return part, compared[part], note


def _performance(
    policy: MonitorPolicy,
    holdout: dict[str, float],
    primary: str,
    labels: Labels,
    positive: str | None = None,
) -> Performance:
    rules = policy.performance
    metric = rules.metric or primary
    reference = holdout.get(f"holdout_{metric}")
    if labels.joined < rules.min_labelled_rows:
        note = f"{labels.joined} labelled rows joined, fewer than {rules.min_labelled_rows}"
        return Performance(metric, None, reference, labels.joined, None, None, note)
    # Imported here: the evaluate module brings scikit-learn (and scipy.stats), which
    # only a window with joined labels needs.
    from runway.core.training.evaluate import metric_value

    live = metric_value(
        metric,
        labels.y_true,
        labels.y_pred,
        labels.probabilities(),
        labels.classes or None,
        positive,
    )
    higher_is_better = METRICS[metric].direction == "maximize"
    floors = []
    if rules.min_value is not None:
        floors.append(rules.min_value)
    if rules.max_drop is not None and reference is not None:
        floors.append(
            reference - rules.max_drop if higher_is_better else reference + rules.max_drop
        )
    floor = (max(floors) if higher_is_better else min(floors)) if floors else None
    if live is None:
        note = f"{metric} needs class probabilities or two label classes; not judged"
        return Performance(
            metric, None, reference, labels.joined, floor, None, note, higher_is_better
        )
    passed = floor is None or (live >= floor if higher_is_better else live <= floor)
    return Performance(
        metric, live, reference, labels.joined, floor, passed, higher_is_better=higher_is_better
    )


def _breaches(verdict: Verdict, policy: MonitorPolicy) -> list[str]:
    found = _drift_breaches(verdict, policy)
    if verdict.prediction is not None and verdict.prediction.drifted:
        found.append(
            f"prediction drift: PSI {verdict.prediction.psi:.3f} >= {policy.predictions.psi_threshold:g}"
        )
    for label, scores in verdict.scores.items():
        if scores.drifted:
            found.append(
                f"score drift (class {label}): PSI {scores.psi:.3f} >= {policy.predictions.psi_threshold:g}"
            )
    for feature in verdict.features:
        found += [f"quality: {feature.name}: {problem}" for problem in feature.quality]
    if verdict.rejected_rate > policy.quality.max_rejected:
        found.append(
            f"quality: {verdict.rejected_rate:.1%} of rows rejected by the contract "
            f"(limit {policy.quality.max_rejected:.0%})"
        )
    performance = verdict.performance
    if performance is not None and performance.passed is False:
        assert performance.live is not None and performance.floor is not None
        worse = "below the floor" if performance.higher_is_better else "above the ceiling"
        found.append(
            f"performance: live {performance.metric} {performance.live:.4f} {worse} "
            f"{performance.floor:.4f} (holdout {_fmt(performance.holdout)}, {performance.joined} labels)"
        )
    return found


def _drift_breaches(verdict: Verdict, policy: MonitorPolicy) -> list[str]:
    """Input drift, each line naming the rule that decided (and notes for what did not)."""
    rules = policy.features
    found = []
    shown = {f.name: f for f in verdict.features}
    if rules.per_feature == "breach":
        for name in verdict.drifted:
            found.append(
                f"input drift (rule features.per_feature: breach): {_moved(shown[name], rules)}"
            )
    else:
        verdict.notes += [
            f"input drift noted, not a breach (rule features.per_feature: note): "
            f"{_moved(shown[name], rules)}"
            for name in verdict.drifted
        ]
    if verdict.drifted and verdict.drift_share >= rules.drift_share:
        found.append(
            f"input drift (rule features.drift_share): {verdict.share_text} >= "
            f"{rules.drift_share:.0%}: {', '.join(verdict.drifted)}"
        )
    return found


def _moved(feature: FeatureVerdict, rules: Any) -> str:
    d = feature.distribution
    assert d is not None
    name = f"{feature.name} ({feature.part})" if feature.part else feature.name
    if rules.statistic == "psi":
        return f"{name}: PSI {d.psi:.3f} >= {rules.psi_threshold:g}"
    return f"{name}: chi-square p {format_p(d.p_value)} < {rules.p_value:g}"


def _fmt(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.4f}"
