"""One window of the prediction log, accumulated batch by batch into counts.

:class:`WindowStats` holds, per feature, the reference bins with the window's
counts, missing and out-of-range counts; the prediction and score histograms;
the rejected rows and their reasons. Nothing keeps rows: memory depends on the
number of features and bins, not on the number of rows in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.drift import (
    Histogram,
    categorical_histogram,
    numeric_histogram,
    out_of_range,
)
from runway.core.columns.kinds import timestamp_series
from runway.core.columns.profile import (
    FeatureProfile,
    PredictionProfile,
    ReferenceProfile,
    part_values,
)
from runway.core.columns.schema import DataContract
from runway.errors import UsageError
from runway.store.predlog import (
    INPUT_PREFIX,
    PREDICTION,
    PROBA_PREFIX,
    REJECTED,
    PredictionLog,
)

Scorer = Callable[[pd.DataFrame], np.ndarray]  # features -> class probabilities


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[since, until)`` of the prediction log, in UTC."""

    since: datetime
    until: datetime

    @property
    def label(self) -> str:
        """``<since> .. <until>`` in ISO format, to the second."""
        return f"{_iso(self.since)} .. {_iso(self.until)}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str, option: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise); ``now`` is now."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: not an ISO date or time: {text!r} (e.g. 2026-11-23 or 2026-11-23T06:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def resolve_window(since: datetime | None, until: datetime | None, length: timedelta) -> Window:
    """The window from ``--since``/``--until``/``--window``: the missing end is ``length`` away."""
    if since is not None and until is not None:
        window = Window(since, until)
    elif since is not None:
        window = Window(since, since + length)
    else:
        end = until or datetime.now(UTC)
        window = Window(end - length, end)
    if window.until <= window.since:
        raise UsageError(
            f"--until ({_iso(window.until)}) must be after --since ({_iso(window.since)})"
        )
    return window


@dataclass
class FeatureStats:
    """One feature's counts in the window."""

    name: str
    kind: str
    histogram: Histogram | None
    reference_missing_rate: float
    low: float | None = None
    high: float | None = None
    missing: int = 0
    seen: int = 0  # values present or missing, over scored rows
    out_of_range: int = 0
    parts: dict[str, Histogram] = field(default_factory=dict)  # datetime: its cyclic parts
    training_days: float = 0.0  # datetime: the span of training's timestamps

    def add_numbers(self, values: np.ndarray) -> None:
        """A numeric column of a NumPy dtype counted in NumPy alone: the same counts as the
        general path (missing, bins, out of range) without pandas' copies and conversions,
        which cost most of a million-row window's reading."""
        self.seen += len(values)
        numbers = values.astype("float64", copy=False)
        present = numbers
        if values.dtype.kind == "f":
            missing = np.isnan(numbers)
            present = numbers[~missing] if missing.any() else numbers  # no copy without NaN
        self.missing += len(values) - len(present)
        if self.histogram is not None and len(present):
            self.histogram.add_numbers(present)
        if self.low is not None and self.high is not None:
            outside = (present < self.low) | (present > self.high)
            self.out_of_range += int(np.count_nonzero(outside))

    def add_parts(self, column: pd.Series) -> None:
        """Count a datetime column's cyclic parts (hour, day of week, month)."""
        if not self.parts:
            return
        stamps = timestamp_series(column)[0]
        for part, histogram in self.parts.items():
            histogram.add(part_values(stamps, part))


@dataclass
class WindowStats:
    """Everything judged about a window, accumulated from log batches."""

    features: dict[str, FeatureStats]
    predictions: Histogram | None
    scores: dict[str, Histogram]  # class -> its probability's bins (the positive class if binary)
    classes: list[str] = field(default_factory=list)  # every class, in probability-column order
    versions: Counter[str] = field(default_factory=Counter)  # rows per version seen in the window
    rows_scored: int = 0
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    scores_computed: int = 0  # served rows whose probabilities monitoring computed itself
    log_has_probabilities: bool = False
    positive: str | None = None  # the positive class the model's spec names (its contract)

    @classmethod
    def for_reference(cls, profile: ReferenceProfile, contract: DataContract) -> WindowStats:
        """Empty counts over the bins of a version's reference profile and contract."""
        features = {}
        for name, entry in profile.features.items():
            rules = contract.columns.get(name)
            if entry.kind == "datetime":
                features[name] = _datetime_stats(name, entry)
                continue
            if entry.kind == "numeric":
                histogram = numeric_histogram(entry)
            else:
                complete = rules is not None and rules.categories_truncated is False
                known = rules.categories if rules is not None and complete else None
                histogram = categorical_histogram(entry, known)
            features[name] = FeatureStats(
                name,
                str(entry.kind),
                histogram,
                float(entry.missing_rate or 0.0),
                low=_number(rules.min) if rules is not None else None,
                high=_number(rules.max) if rules is not None else None,
            )
        reference = profile.predictions
        typed = contract.target.classes if contract.target else None
        predictions, scores = _prediction_histograms(reference, typed)
        classes = [str(c) for c in (reference.scores if reference else None) or {}]
        positive = contract.target.positive_class if contract.target else None
        stats = cls(features, predictions, scores, classes)
        stats.positive = None if positive is None else str(positive)
        return stats

    def add(self, batch: pd.DataFrame, scorer: Scorer | None = None) -> None:
        """Count one batch of log rows (already filtered to the window and the version)."""
        status = batch["status"] if "status" in batch else pd.Series(["scored"] * len(batch))
        rejected = (status == REJECTED).to_numpy()
        if rejected.any():
            self.rows_rejected += int(rejected.sum())
            for reason in batch.loc[rejected, "reason"].fillna("(no reason)"):
                self.reasons[_reason_kind(str(reason))] += 1
        scored = batch.loc[~rejected] if rejected.any() else batch
        if scored.empty:
            return
        self.rows_scored += len(scored)
        for name, stats in self.features.items():
            column = scored.get(f"{INPUT_PREFIX}{name}")
            if column is None:
                continue
            if stats.kind == "numeric" and _plain_number(column):
                stats.add_numbers(column.to_numpy())
                continue
            stats.seen += len(column)
            stats.missing += int(column.isna().sum())
            if stats.histogram is not None:
                stats.histogram.add(column)
            stats.add_parts(column)
            stats.out_of_range += out_of_range(column, stats.low, stats.high)
        if self.predictions is not None and PREDICTION in scored:
            self.predictions.add(scored[PREDICTION])
        if self.scores:
            self._add_scores(scored, scorer)

    def _add_scores(self, scored: pd.DataFrame, scorer: Scorer | None) -> None:
        classes = self.classes
        logged = [f"{PROBA_PREFIX}{c}" for c in classes]
        have = all(c in scored for c in logged)
        if have:
            self.log_has_probabilities = True
            # a copy: pandas 3 may hand out a read-only view, and served rows' scores go in below
            values = scored[logged].to_numpy(dtype="float64", copy=True)
            missing = np.isnan(values).any(axis=1)
        else:
            values = np.full((len(scored), len(classes)), np.nan)
            missing = np.ones(len(scored), dtype=bool)
        if missing.any() and scorer is not None:
            features = {
                name: scored.loc[missing, f"{INPUT_PREFIX}{name}"]
                for name in self.features
                if f"{INPUT_PREFIX}{name}" in scored
            }
            values[missing] = scorer(pd.DataFrame(features).reset_index(drop=True))
            self.scores_computed += int(missing.sum())
        known = ~np.isnan(values).any(axis=1)
        for label, histogram in self.scores.items():
            if histogram.edges is None:
                histogram.add(pd.Series(values[known, classes.index(label)]))
            else:  # present floats already
                histogram.add_numbers(values[known, classes.index(label)])

    def log_columns(self, features: list[str], keys: bool = False) -> list[str]:
        """The log columns judging reads: not the request ids, sources or raw rows (nor the
        keys unless labels are joined), whose text costs more to read than all the numbers."""
        names = dict.fromkeys([*features, *self.features])
        wanted = ["timestamp", "version", "status", "reason", PREDICTION]
        wanted += [f"{INPUT_PREFIX}{name}" for name in names]
        wanted += [f"{PROBA_PREFIX}{label}" for label in self.classes]
        return [*wanted, "key"] if keys else wanted

    @property
    def rows(self) -> int:
        """Rows of the judged version in the window, scored or rejected."""
        return self.rows_scored + self.rows_rejected


def count_window(
    stats: WindowStats,
    sink: PredictionLog,
    model: str,
    version: str,
    window: Window,
    features: Sequence[str] = (),
    scorer: Scorer | None = None,
    each: Callable[[pd.DataFrame], None] | None = None,
) -> dict[str, int]:
    """Stream ``version``'s rows of the window into ``stats`` (and each batch to ``each``,
    which then gets the keys too); the other versions' row counts."""
    others: Counter[str] = Counter()
    columns = stats.log_columns(list(features), keys=each is not None)
    for batch in sink.read_window(model, window.since, window.until, columns):
        versions = (
            batch["version"].astype(str) if "version" in batch else pd.Series([""] * len(batch))
        )
        mine = (versions == version).to_numpy()
        if not mine.all():  # the usual batch is one version's, used without a copy
            others.update(versions[~mine].tolist())
            if not mine.any():
                continue
            batch = batch.loc[mine].reset_index(drop=True)
        stats.add(batch, scorer)
        if each is not None:
            each(batch)
    return dict(others)


def _plain_number(column: pd.Series) -> bool:
    """A NumPy float or integer column (not pandas' nullable ones, whose missing is pd.NA)."""
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu"


def _datetime_stats(name: str, entry: FeatureProfile) -> FeatureStats:
    """Timestamps move on by nature: their cyclic parts are compared, not the stamps."""
    stats = FeatureStats(name, "datetime", None, float(entry.missing_rate or 0.0))
    stats.parts = {part: categorical_histogram(p) for part, p in (entry.parts or {}).items()}
    if entry.min and entry.max:
        span = datetime.fromisoformat(entry.max) - datetime.fromisoformat(entry.min)
        stats.training_days = span / timedelta(days=1)
    return stats


def _prediction_histograms(
    reference: PredictionProfile | None, classes: list[Any] | None = None
) -> tuple[Histogram | None, dict[str, Histogram]]:
    if reference is None:
        return None, {}
    if reference.kind == "numeric":
        return numeric_histogram(reference), {}
    # Labels as labels: the contract's typed classes, whatever dtype a part file carries.
    predictions = categorical_histogram(reference, typed=classes)
    scores = {}
    entries = list((reference.scores or {}).items())
    if len(entries) == 2:  # binary: the positive class's score says it all (the other mirrors it)
        entries = entries[1:]
    for label, entry in entries:
        histogram = numeric_histogram(entry)
        if histogram is not None:
            scores[str(label)] = histogram
    return predictions, scores


def _number(value: float | str | None) -> float | None:
    """A numeric column's training bound (a datetime's is text, and not compared)."""
    return value if isinstance(value, float) else None


def _reason_kind(reason: str) -> str:
    """A rejection reason's first rule with the value cut off: alike rows count together.

    An unseen category keeps its column and value (which level is new is the
    news), without the list of expected levels.
    """
    first = reason.split("; ")[0]
    if ": category " in first and " never seen in training" in first:
        return first.split(" never seen in training")[0] + " never seen in training"
    return first.split(", got ")[0].split(" is out of range")[0]
