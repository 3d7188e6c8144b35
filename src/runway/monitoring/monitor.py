"""``runway monitor``: judge one window of the prediction log, report it, act on it.

Reads the rows a version produced in the window (served and batch, scored and
rejected), compares them with that version's reference profile, applies the
``monitor:`` section of the model's policy, writes a standalone HTML report,
records a monitoring run in MLflow, and, when the policy's N-of-M trigger is
met and its action is ``retrain``, retrains and stages a new version.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from runway.core.columns.profile import ReferenceProfile
from runway.core.columns.schema import DataContract
from runway.core.governance.monitor_policy import MonitorPolicy, parse_duration
from runway.core.governance.policy import read_policy
from runway.errors import MonitorError, TrackingError, UsageError
from runway.monitoring.early import EarlyCount
from runway.monitoring.judge import Verdict, judge
from runway.monitoring.labels import Labels, load_labels
from runway.monitoring.report import render
from runway.monitoring.window import Window, WindowStats, count_window, resolve_window
from runway.settings import Settings, get_settings
from runway.store import models, monitoring, registry, tracking, trust
from runway.store.predlog import PredictionLog
from runway.store.served import ResolvedModel

if TYPE_CHECKING:
    from runway.jobs.retrain import RetrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorOptions:
    """What to judge: the window, the version, the labels; and whether to act."""

    since: datetime | None = None
    until: datetime | None = None
    window: str | None = None  # a duration overriding the policy's
    stage: str = "Production"
    version: str | None = None
    labels: str | None = None
    key_columns: tuple[str, ...] = ()
    label_column: str | None = None
    act: bool = True  # run the policy's action when the trigger is met
    policy_file: str | None = None
    report_dir: str | None = None


@dataclass
class MonitorResult:
    """What ``runway monitor`` concluded and did."""

    model: str
    version: str
    window: Window
    outcome: str  # healthy | crossed | not_judged
    verdict: Verdict | None
    trigger_met: bool = False
    trigger: str = ""
    run_id: str = ""
    run_url: str = ""
    report: str = ""
    retrained: RetrainResult | None = None
    other_versions: dict[str, int] = field(default_factory=dict)


@dataclass
class _Reference:
    resolved: ResolvedModel
    profile: ReferenceProfile
    contract: DataContract
    holdout: dict[str, float]
    primary: str
    target: str
    classes: list[str]


def monitor(
    model: str,
    options: MonitorOptions,
    settings: Settings | None = None,
    early: EarlyCount | None = None,
) -> MonitorResult:
    """Judge one window of ``model``'s prediction log (see the module docstring); ``early``:
    the window already being counted while MLflow loaded (:mod:`runway.monitoring.early`).

    Raises:
        MonitorError: the window cannot be judged (too few rows, no reference
            profile, labels matching no logged row); the run is still recorded.
    """
    settings = settings or get_settings()
    policy = read_policy(model, settings.registry_dir, options.policy_file).monitor
    resolved = registry.resolve(model, options.stage, options.version)
    length = _duration(options.window) if options.window else policy.window_length
    window = early.window if early else resolve_window(options.since, options.until, length)
    ref = _reference(resolved)
    stats, labels, others, scorer = _read(ref, window, options, settings, early)
    result = MonitorResult(
        model, resolved.version, window, "not_judged", None, other_versions=others
    )
    problem = _unjudgeable(stats, labels, policy, options)
    if problem:
        _record(result, settings, None, problem, options.report_dir)
        raise MonitorError(f"{model} v{resolved.version}, window {window.label}: {problem}")
    verdict = judge(
        stats,
        policy,
        model=model,
        version=resolved.version,
        window=window,
        holdout=ref.holdout,
        primary_metric=ref.primary,
        labels=labels,
    )
    verdict.notes += _notes(stats, ref, scorer)
    result.verdict = verdict
    result.outcome = "crossed" if verdict.crossed else "healthy"
    result.trigger_met, result.trigger = _trigger(policy, result, settings)
    _record(result, settings, verdict, "", options.report_dir)
    if result.trigger_met and policy.action == "retrain" and options.act:
        # Imported here: retraining brings Optuna, scikit-learn and the sweep, which a
        # window that only reports (most of them) never needs.
        from runway.jobs.retrain import retrain

        extra = labels.training_rows(ref.target) if labels is not None else None
        result.retrained = retrain(
            model,
            reason="monitoring",
            trigger_run=result.run_id,
            extra_rows=extra,
            mode=policy.retrain.mode,
            trials=policy.retrain.trials,
            version=resolved.version,
            settings=settings,
        )
        monitoring.set_window_tags(result.run_id, _retrain_tags(result.retrained))
    return result


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--window {exc}") from None


def _reference(resolved: ResolvedModel) -> _Reference:
    """The version's reference profile, contract, holdout metrics and classes."""
    name = f"{resolved.name} v{resolved.version}"
    if not resolved.run_id:
        raise MonitorError(f"{name} has no source run, so no reference profile to compare with")
    try:
        profile = tracking.load_profile(resolved.run_id)
        contract = tracking.load_contract(resolved.run_id)
    except TrackingError:
        raise MonitorError(
            f"{name} has no reference profile ({tracking.PROFILE_ARTIFACT}); runway monitors "
            "versions trained by `runway train` or `runway sweep`"
        ) from None
    tags = tracking.run_tags(resolved.run_id)
    scores = (profile.predictions.scores if profile.predictions else None) or {}
    return _Reference(
        resolved,
        profile,
        contract,
        tracking.run_metrics(resolved.run_id),
        tags.get("runway.primary_metric", ""),
        _target(resolved.run_id),
        [str(c) for c in scores],
    )


def _target(run_id: str) -> str:
    """The spec's target column (what retraining data and label files call the label)."""
    from runway.core.training.spec import SPEC_ARTIFACT, spec_target

    with tempfile.TemporaryDirectory(prefix="runway-monitor-") as tmp:
        try:
            return spec_target(tracking.download_artifact(run_id, SPEC_ARTIFACT, tmp))
        except TrackingError:
            return "label"


def _read(
    ref: _Reference,
    window: Window,
    options: MonitorOptions,
    settings: Settings,
    early: EarlyCount | None = None,
) -> tuple[WindowStats, Labels | None, dict[str, int], _LazyScorer]:
    """Stream the window's rows of the judged version into counts (and the label join)."""
    scorer = _LazyScorer(ref.resolved, ref.contract.names, ref.classes, settings)
    counted = early.counted(ref.resolved, ref.profile, ref.contract) if early else None
    if counted is not None and not options.labels:
        return counted[0], None, counted[1], scorer
    stats = WindowStats.for_reference(ref.profile, ref.contract)
    labels = None
    if options.labels:
        labels = load_labels(options.labels, options.key_columns, options.label_column, ref.target)
        labels.classes = ref.classes
        target = ref.contract.target
        if ref.classes and target is not None and target.classes:
            labels.index_labels(target.classes)
    sink = PredictionLog(settings.prediction_log)
    if not sink.enabled:
        raise MonitorError(
            "the prediction log is off (RUNWAY_PREDICTION_LOG=off): nothing to judge"
        )
    score, names = (scorer if ref.classes else None), ref.contract.names
    join = None if labels is None else functools.partial(labels.add, features=names, scorer=score)
    model, version = ref.resolved.name, ref.resolved.version
    others = count_window(stats, sink, model, version, window, names, score, join)
    return stats, labels, others, scorer


class _LazyScorer:
    """Class probabilities for served rows, from the same version, loaded on first need."""

    def __init__(
        self, resolved: ResolvedModel, features: list[str], classes: list[str], settings: Settings
    ) -> None:
        self.resolved, self.features, self.classes = resolved, features, classes
        self.settings = settings
        self._predict: Callable[[pd.DataFrame], np.ndarray] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.used = False

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        if self._predict is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="runway-monitor-model-")
            # Checked like every load: provenance and contents, before anything runs.
            local = trust.fetch_verified(self.resolved, Path(self._tmp.name), self.settings)
            estimator = models.load_sklearn(local)
            order = [str(c) for c in estimator.classes_]
            columns = [order.index(c) for c in self.classes]
            self._predict = lambda X: np.asarray(estimator.predict_proba(X))[:, columns]
        self.used = True
        X = frame[self.features].copy()
        for name in X.columns:
            if not pd.api.types.is_numeric_dtype(X[name]):
                X[name] = X[name].astype(object).where(X[name].notna(), np.nan)
        return self._predict(X)


def _unjudgeable(
    stats: WindowStats, labels: Labels | None, policy: MonitorPolicy, options: MonitorOptions
) -> str:
    """Why the window cannot be judged, or ""."""
    if stats.rows_scored < policy.min_rows:
        return (
            f"{stats.rows_scored} scored rows in the window, fewer than monitor.min_rows "
            f"({policy.min_rows}); nothing judged, nothing retrained"
        )
    if labels is not None and labels.joined == 0:
        return (
            f"none of the {len(labels.truth)} labels in {labels.source} matches a logged row of "
            "this version in the window (keys: batch --key-column values, or served request ids)"
        )
    return ""


def _notes(stats: WindowStats, ref: _Reference, scorer: _LazyScorer) -> list[str]:
    notes = []
    if ref.profile.predictions is None:
        notes.append(
            "the version's reference profile has no predictions (trained before runway logged "
            "them): prediction drift not judged"
        )
    if stats.scores_computed:
        notes.append(
            f"class probabilities of {stats.scores_computed:,} served rows computed by monitor "
            "with the same version (serving logs labels only)"
        )
    return notes


def _trigger(policy: MonitorPolicy, result: MonitorResult, settings: Settings) -> tuple[bool, str]:
    """Whether N of the last M windows (this one included) crossed a threshold."""
    rule = policy.trigger
    earlier = [
        w
        for w in monitoring.windows(settings, result.model, result.version, limit=rule.of_last * 4)
        if w.until <= result.window.since.isoformat() and w.outcome in {"crossed", "healthy"}
    ][: rule.of_last - 1]
    crossed = sum(w.outcome == "crossed" for w in earlier) + (result.outcome == "crossed")
    looked = len(earlier) + 1
    met = result.outcome == "crossed" and crossed >= rule.breaches
    return (
        met,
        f"{crossed} of the last {looked} window(s) crossed (trigger: {rule.breaches} of {rule.of_last})",
    )


def _record(
    result: MonitorResult,
    settings: Settings,
    verdict: Verdict | None,
    problem: str,
    report_dir: str | None,
) -> None:
    """The monitoring run, and the report file beside it."""
    metrics: dict[str, float] = {}
    summary: dict[str, Any] = {
        "outcome": result.outcome,
        "problem": problem,
        "trigger": result.trigger,
    }
    if verdict is not None:
        metrics = _metrics(verdict)
        summary |= verdict.to_dict()
    page = render(verdict, outcome=result.outcome) if verdict is not None else ""
    artifacts = {"summary.json": json.dumps(summary, indent=2, default=str)}
    if page:
        artifacts["report.html"] = page
    tags = {
        "runway.monitor.trigger": result.trigger,
        "runway.monitor.drifted": ",".join(verdict.drifted) if verdict else "",
        "runway.monitor.breaches": "; ".join(verdict.breaches) if verdict else problem,
        "mlflow.note.content": (
            f"{result.outcome}: " + ("; ".join(verdict.breaches) or "no threshold crossed")
            if verdict
            else f"not judged: {problem}"
        ),
    }
    result.run_id, result.run_url = monitoring.record_window(
        settings,
        model=result.model,
        version=result.version,
        since=result.window.since,
        until=result.window.until,
        outcome=result.outcome,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
    )
    if page:
        result.report = str(_write_report(result, page, report_dir or settings.monitor_report_dir))


def _metrics(verdict: Verdict) -> dict[str, float]:
    metrics: dict[str, float] = {
        "rows_scored": verdict.rows_scored,
        "rows_rejected": verdict.rows_rejected,
        "rejected_rate": verdict.rejected_rate,
        "drift_share": verdict.drift_share,
        "features_drifted": len(verdict.drifted),
    }
    for f in verdict.features:
        if f.distribution is not None:
            metrics[f"psi.{f.name}"] = f.distribution.psi
        metrics[f"missing_rate.{f.name}"] = f.missing_rate
    if verdict.prediction is not None:
        metrics["prediction_psi"] = verdict.prediction.psi
    for label, scores in verdict.scores.items():
        metrics[f"score_psi.{label}"] = scores.psi
    p = verdict.performance
    if p is not None and p.live is not None:
        metrics[f"live_{p.metric}"] = p.live
        metrics["labelled_rows"] = p.joined
    return metrics


def report_name(model: str, version: str, window: Window) -> str:
    """``<model>-v<N>-<since>-<until>.html``: the window's bounds to the second in UTC
    (microseconds when it has them), so two windows never share a name."""
    return f"{model}-v{version}-{_stamp(window.since)}-{_stamp(window.until)}.html"


def _stamp(when: datetime) -> str:
    utc = when.astimezone(UTC)
    return f"{utc:%Y%m%dT%H%M%S}" + (f".{utc:%f}" if utc.microsecond else "") + "Z"


def _write_report(result: MonitorResult, page: str, report_dir: str) -> Path:
    """The report file; the same window judged again keeps both (``-2``, ``-3`` ...)."""
    folder = Path(report_dir) / result.model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / report_name(result.model, result.version, result.window)
    n = 1
    while True:
        try:
            with path.open("x", encoding="utf-8") as out:  # never over an earlier report
                out.write(page)
            return path
        except FileExistsError:
            n += 1
            path = path.with_name(
                f"{report_name(result.model, result.version, result.window)[:-5]}-{n}.html"
            )


def _retrain_tags(outcome: RetrainResult) -> dict[str, str]:
    return {
        "runway.monitor.retrained_version": outcome.version,
        "runway.monitor.retrain_staged": str(outcome.staged).lower(),
        "runway.monitor.retrain_refused": outcome.refused,
    }


def labelled_rows(
    model: str,
    labels_path: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    window: str | None = None,
    key_columns: tuple[str, ...] = (),
    label_column: str | None = None,
    version: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """The window's logged rows that have a label, as training rows (features and target).

    What ``runway retrain --labels`` appends to the original training data.
    """
    settings = settings or get_settings()
    policy = read_policy(model, settings.registry_dir).monitor
    resolved = registry.resolve(model, "Production", version)
    length = _duration(window) if window else policy.window_length
    span = resolve_window(since, until, length)
    ref = _reference(resolved)
    options = MonitorOptions(labels=labels_path, key_columns=key_columns, label_column=label_column)
    _, labels, _, _ = _read(ref, span, options, settings)
    assert labels is not None
    if labels.joined == 0:
        raise MonitorError(
            f"none of the {len(labels.truth)} labels in {labels_path} matches a logged row of "
            f"{model} v{resolved.version} in {span.label}"
        )
    return labels.training_rows(ref.target)
