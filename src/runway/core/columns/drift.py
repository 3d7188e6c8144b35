"""Drift statistics from counts: PSI on open-ended reference bins, two-sample chi-square.

Everything here works on counts, so a window of any size is judged from
histograms accumulated batch by batch (memory flat in the number of rows), and
the reference side is the profile logged with the model version, not raw
training rows. The statistic a verdict uses is named by the policy; nothing
here picks one by row count.

Numeric bins are the reference profile's quantile bins with both ends opened
(``(-inf, q1) ... [q9, +inf)``): values beyond the training range fall in the
end bins instead of dropping out of the histogram, and those are exactly the
drifted ones. Categorical bins are the reference categories, plus ``(other)``
for training categories the profile did not list and ``(unseen)`` for values
training never had.

Labels are matched by value, not by spelling (:class:`LabelIndex`): a part file
whose ``prediction`` column became float (a rejected row's gap) holds ``1.0``
for the class ``1``, a SQLite log holds ``1`` for the boolean ``True``; both are
the reference's label, not ``(unseen)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from runway.core.columns.kinds import FALSE_TEXT, TRUE_TEXT
from runway.core.columns.profile import FeatureProfile

EPSILON = 1e-4  # the fraction an empty bin counts as in PSI (the usual 0.01 %)
UNSEEN = "(unseen)"
OTHER = "(other)"


class LabelIndex:
    """A value as one of the reference's labels, whatever type the log carries it in.

    Built from the labels' texts (the profile's keys) and, when known, their typed
    values (the contract's classes): a number matches a numeric label by value
    (``1.0`` is ``1``), a boolean or its spellings a boolean label, text matches
    text. Untyped labels are typed by their text (``"1"`` is a number, ``"True"`` a
    boolean), which is how the profile wrote them.
    """

    def __init__(self, labels: Sequence[str], typed: Sequence[Any] | None = None) -> None:
        self.keys: dict[tuple[str, Any], str] = {}
        values = list(typed) if typed is not None and len(typed) == len(labels) else None
        for i, label in enumerate(labels):
            text = str(label)
            self.keys.setdefault(("t", text), text)
            value = values[i] if values is not None else _typed(text)
            if isinstance(value, (bool, np.bool_)):
                self.keys.setdefault(("b", bool(value)), text)
                self.keys.setdefault(("n", float(value)), text)
            elif isinstance(value, (int, float, np.integer, np.floating)):
                self.keys.setdefault(("n", float(value)), text)
                if value in (0, 1):
                    self.keys.setdefault(("b", bool(value)), text)

    def label(self, value: Any) -> str:
        """The label ``value`` is, or its own text when it is none of them."""
        for key in _keys(value):
            if key in self.keys:
                return self.keys[key]
        return str(value.item() if isinstance(value, np.generic) else value)


def _typed(text: str) -> Any:
    """A label's text as the value it spells (a number, a boolean), else the text."""
    if text in TRUE_TEXT - {"1"} or text in FALSE_TEXT - {"0"}:
        return text in TRUE_TEXT
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    # Only a number's own spelling: "007" and "1e0" stay the codes they are.
    plain = text.lstrip("-")
    return number if plain == str(int(abs(number))) or text == repr(number) else text


def _keys(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, (bool, np.bool_)):
        return [("b", bool(value)), ("n", float(value))]
    if isinstance(value, (int, float, np.integer, np.floating)):
        return [("n", float(value))]
    text = str(value)
    typed = _typed(text)
    keys: list[tuple[str, Any]] = [("t", text)]
    if isinstance(typed, bool):
        keys.append(("b", typed))
    elif isinstance(typed, float):
        keys.append(("n", typed))
    return keys


@dataclass
class Histogram:
    """Reference fractions and current counts over the same bins, filled batch by batch."""

    labels: list[str]
    reference: np.ndarray  # fractions, summing to 1
    reference_rows: int
    edges: np.ndarray | None = None  # inner edges of numeric bins; None for categories
    index: dict[str, int] = field(default_factory=dict)  # category -> bin
    known: frozenset[str] | None = None  # every category training had (the contract's), if known
    matcher: LabelIndex | None = None  # categories: values to labels by value
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.labels):
            self.counts = np.zeros(len(self.labels), dtype=np.int64)

    @property
    def rows(self) -> int:
        """Current values counted (missing values are not)."""
        return int(self.counts.sum())

    def current(self) -> np.ndarray:
        """Current fractions per bin (zeros when nothing was counted)."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(len(self.counts))

    def add(self, values: pd.Series) -> None:
        """Count one batch of values (missing ones are skipped)."""
        present = values.dropna()
        if present.empty:
            return
        if self.edges is not None:
            numbers = pd.to_numeric(present, errors="coerce").dropna().to_numpy(dtype="float64")
            self.add_numbers(numbers)
            return
        if self.matcher is None:
            for value, n in present.astype(str).value_counts().items():
                self.counts[self._bin(str(value))] += int(n)
            return
        for value, n in present.value_counts().items():
            self.counts[self._bin(self.matcher.label(value))] += int(n)

    def add_numbers(self, numbers: np.ndarray) -> None:
        """Count present float64 values into a numeric histogram's bins (no NaN among them).

        A value's bin is how many inner edges are <= it (``searchsorted(side="right")``).
        With the usual ten bins, one vectorised comparison per edge counts that about ten
        times faster than a binary search per value: the same counts, exactly.
        """
        edges = self.edges
        assert edges is not None
        if len(edges) > 64:
            bins = np.searchsorted(edges, numbers, side="right")
            self.counts += np.bincount(bins, minlength=len(self.labels))
            return
        at_least = np.array([np.count_nonzero(numbers >= edge) for edge in edges], dtype=np.int64)
        counts = np.empty(len(edges) + 1, dtype=np.int64)
        counts[0] = len(numbers) - (at_least[0] if len(edges) else 0)
        counts[1:-1] = at_least[:-1] - at_least[1:]
        if len(edges):
            counts[-1] = at_least[-1]
        self.counts += counts

    def _bin(self, value: str) -> int:
        if value in self.index:
            return self.index[value]
        other = self.index.get(OTHER)
        # A training category the profile did not list is "other"; one training never had
        # is "unseen". Without the contract's full list, only the profile can tell.
        known = self.known is None or value in self.known
        if other is not None and known:
            return other
        return self.index[UNSEEN]

    def unseen(self) -> int:
        """Current values training never had (categorical features)."""
        position = self.index.get(UNSEEN)
        return int(self.counts[position]) if position is not None else 0


def numeric_histogram(entry: FeatureProfile) -> Histogram | None:
    """Bins of a numeric feature from its profile entry (None when it has no bins)."""
    edges = [float(e) for e in entry.bin_edges or []]
    fractions = [float(f) for f in entry.bin_fractions or []]
    if not edges:
        return None
    if len(edges) == 1:  # a constant column: below, at, above the one value
        value = edges[0]
        return Histogram(
            [f"< {value:.4g}", f"= {value:.4g}", f"> {value:.4g}"],
            np.array([0.0, 1.0, 0.0]),
            int(entry.count or 0),
            edges=np.array([value, np.nextafter(value, math.inf)]),
        )
    inner = np.array(edges[1:-1])
    labels = [f"< {edges[1]:.4g}"] if len(edges) > 2 else []
    labels += [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges[1:-1])]
    labels.append(f">= {edges[-2]:.4g}" if len(edges) > 2 else "all")
    return Histogram(labels, np.array(fractions), int(entry.count or 0), edges=inner)


def categorical_histogram(
    entry: FeatureProfile,
    known: Sequence[str] | None = None,
    typed: Sequence[Any] | None = None,
) -> Histogram:
    """Bins of a categorical feature: its profile's categories, ``(other)`` and ``(unseen)``.

    ``known`` is every category training had (the data contract's list), when
    complete; it tells an unlisted training category from an unseen one.
    ``typed`` are the labels' values (a classifier's classes, in the profile's
    order of labels or not): window values are matched to labels by value.
    """
    frequencies = {str(k): float(v) for k, v in (entry.frequencies or {}).items()}
    labels = list(frequencies)
    reference = list(frequencies.values())
    rest = max(0.0, 1.0 - sum(reference))
    if rest > 1e-9 or entry.frequencies_truncated:
        labels.append(OTHER)
        reference.append(rest)
    labels.append(UNSEEN)
    reference.append(0.0)
    index = {label: i for i, label in enumerate(labels)}
    names = list(frequencies)
    if typed is not None:  # the classes by their text, in the profile's order
        by_text = {str(c): c for c in typed}
        names += [t for t in by_text if t not in frequencies]
        values: list[Any] | None = [by_text.get(t, t) for t in names]
    else:
        values = None
    return Histogram(
        labels,
        np.array(reference),
        int(entry.count or 0),
        index=index,
        known=frozenset(map(str, known)) if known is not None else None,
        matcher=LabelIndex(names, values),
    )


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins.

    Empty bins count as :data:`EPSILON` so that a value appearing where the
    reference had none (an unseen category, a value past the training range)
    weighs heavily instead of dividing by zero.
    """
    ref = np.clip(np.asarray(reference, dtype="float64"), EPSILON, None)
    cur = np.clip(np.asarray(current, dtype="float64"), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi2_two_sample(
    reference: np.ndarray, reference_rows: int, counts: np.ndarray
) -> tuple[float, float]:
    """Chi-square test of homogeneity between the reference sample and the current counts.

    A two-sample test from counts on both sides (the reference's counts are its
    fractions times its rows), so the reference's own sampling noise is part of
    the test, unlike a goodness-of-fit against fixed fractions. Bins empty on
    both sides are dropped. Returns (statistic, p-value).

    The arithmetic of ``scipy.stats.chi2_contingency(table, correction=False)``
    step for step (the same figures to the last bit), without importing
    ``scipy.stats``: that import alone costs ``runway monitor`` about 0.8 s of CPU.
    """
    from scipy.special import chdtrc

    ref_counts = np.asarray(reference, dtype="float64") * max(reference_rows, 0)
    cur_counts = np.asarray(counts, dtype="float64")
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = np.sum(((table - expected) ** 2 / expected).ravel())
    p_value = chdtrc(float(table.shape[1] - 1), statistic)
    return float(statistic), float(p_value)


def out_of_range(values: pd.Series, low: float | None, high: float | None) -> int:
    """How many present values fall outside the training range ``[low, high]``."""
    if low is None or high is None:
        return 0
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype="float64")
    return int(np.count_nonzero((numbers < low) | (numbers > high)))


def share(flags: Sequence[bool]) -> float:
    """The share of true flags (0 for none)."""
    return sum(flags) / len(flags) if flags else 0.0
