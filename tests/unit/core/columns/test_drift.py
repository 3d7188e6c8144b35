"""Drift statistics from counts: open-ended bins, PSI, a two-sample test that knows the reference is a sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from runway.core.columns.drift import (
    OTHER,
    UNSEEN,
    categorical_histogram,
    chi2_two_sample,
    numeric_histogram,
    psi,
)
from runway.core.columns.profile import FeatureProfile, infer_profile


def _profile(values: np.ndarray) -> FeatureProfile:
    frame = pd.DataFrame({"x": values})
    return infer_profile(frame, {"x": "numeric"}).features["x"]


def test_values_beyond_the_training_range_land_in_the_end_bins():
    entry = _profile(np.arange(100, dtype=float))  # training min 0, max 99
    histogram = numeric_histogram(entry)
    histogram.add(pd.Series([-1e9, -5.0, 50.0, 99.0, 150.0, 1e12, None]))
    assert histogram.rows == 6  # the missing value is not counted; nothing drops out
    assert histogram.counts[0] == 2 and histogram.counts[-1] == 3
    assert histogram.labels[0].startswith("<") and histogram.labels[-1].startswith(">=")


def test_the_current_bins_are_the_reference_bins():
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000)
    entry = _profile(values)
    histogram = numeric_histogram(entry)
    histogram.add(pd.Series(values))
    np.testing.assert_allclose(histogram.current(), entry.bin_fractions or [])
    assert psi(histogram.reference, histogram.current()) == pytest.approx(0.0, abs=1e-12)


def test_a_constant_training_column_flags_any_other_value():
    histogram = numeric_histogram(_profile(np.full(50, 3.0)))
    histogram.add(pd.Series([3.0, 3.0, 4.0, 2.0]))
    assert histogram.counts.tolist() == [1, 2, 1]
    assert psi(histogram.reference, histogram.current()) > 1.0


def test_psi_grows_with_the_shift_and_weighs_empty_bins():
    entry = _profile(np.random.default_rng(1).normal(size=5000))
    shifts = []
    for shift in (0.0, 0.25, 1.0, 3.0):
        histogram = numeric_histogram(entry)
        histogram.add(pd.Series(np.random.default_rng(2).normal(loc=shift, size=5000)))
        shifts.append(psi(histogram.reference, histogram.current()))
    assert shifts == sorted(shifts) and shifts[0] < 0.02 and shifts[-1] > 2.0


def test_unseen_categories_are_counted_not_dropped_and_other_is_kept_apart():
    entry = FeatureProfile(frequencies={"a": 0.6, "b": 0.3}, frequencies_truncated=True, count=100)
    histogram = categorical_histogram(entry, known=["a", "b", "c"])
    histogram.add(pd.Series(["a", "a", "c", "new", "newer", None]))
    by_label = dict(zip(histogram.labels, histogram.counts.tolist(), strict=True))
    assert by_label == {"a": 2, "b": 0, OTHER: 1, UNSEEN: 2}
    assert histogram.unseen() == 2


def test_the_two_sample_test_does_not_flag_a_large_window_from_the_same_population():
    """A goodness-of-fit against the reference fractions treats a 455-row training sample as
    the truth and flags 100k unshifted rows; the two-sample test accounts for the reference's
    own noise."""
    false_alarms = {"two-sample": 0, "goodness-of-fit": 0}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        entry = _profile(rng.normal(size=455))
        histogram = numeric_histogram(entry)
        histogram.add(pd.Series(rng.normal(size=100_000)))
        _, p_two = chi2_two_sample(histogram.reference, histogram.reference_rows, histogram.counts)
        expected = np.asarray(histogram.reference) * histogram.rows
        _, p_fit = chisquare(histogram.counts, expected)
        false_alarms["two-sample"] += p_two < 0.01
        false_alarms["goodness-of-fit"] += p_fit < 0.01
    assert false_alarms["two-sample"] == 0
    assert false_alarms["goodness-of-fit"] >= 4


def test_the_two_sample_test_finds_a_real_shift():
    rng = np.random.default_rng(3)
    histogram = numeric_histogram(_profile(rng.normal(size=455)))
    histogram.add(pd.Series(rng.normal(loc=0.5, size=2000)))
    _, p = chi2_two_sample(histogram.reference, histogram.reference_rows, histogram.counts)
    assert p < 1e-6


def test_chi2_two_sample_gives_scipy_chi2_contingency_figures_to_the_last_bit():
    """#31: the test no longer imports scipy.stats; its statistic and p-value must not move."""
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(31)
    for trial in range(300):
        bins = int(rng.integers(2, 40))
        reference = rng.dirichlet(np.ones(bins))
        reference[rng.random(bins) < 0.1] = 0.0  # empty reference bins (unseen values)
        reference = reference / reference.sum()
        rows = int(rng.integers(1, 100_000))
        counts = rng.multinomial(int(rng.integers(1, 2_000_000)), rng.dirichlet(np.ones(bins)))
        counts[rng.random(bins) < 0.1] = 0
        if trial % 7 == 0:  # a column empty on both sides is dropped
            reference[0], counts[0] = 0.0, 0
        table = np.vstack([reference * rows, counts.astype("float64")])
        table = table[:, table.sum(axis=0) > 0]
        got = chi2_two_sample(reference, rows, counts)
        if table.shape[1] < 2 or table[1].sum() == 0:
            assert got == (0.0, 1.0)
            continue
        statistic, p, _, _ = chi2_contingency(table, correction=False)
        assert got == (float(statistic), float(p)), trial
