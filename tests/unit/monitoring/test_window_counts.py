"""Issue 31: the monitor's fast counting gives the figures the general path gives.

A numeric column of a NumPy dtype is counted in NumPy alone (missing, bins, out of
range) and a bin is found by one comparison per edge; every other column (nullable
pandas dtypes, text a database log returns) goes the general way. Both must count
the same window to the same integers, so no PSI, p-value or verdict moves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runway.core.columns.contract import infer_contract
from runway.core.columns.drift import Histogram
from runway.core.columns.profile import infer_profile
from runway.monitoring.window import WindowStats


def _searchsorted_counts(edges: np.ndarray, numbers: np.ndarray, bins: int) -> np.ndarray:
    """The counting the monitor did before #31: a binary search per value."""
    return np.bincount(np.searchsorted(edges, numbers, side="right"), minlength=bins)


@pytest.mark.parametrize("n_edges", [0, 1, 2, 9, 64, 65, 200])
def test_counting_by_comparisons_equals_a_binary_search_per_value(n_edges):
    rng = np.random.default_rng(n_edges)
    edges = np.sort(rng.normal(size=n_edges))
    if n_edges > 3:
        edges[2] = edges[1]  # a repeated edge: its bin stays empty either way
    numbers = np.concatenate(
        [rng.normal(size=5_000), edges, np.nextafter(edges, -np.inf), [np.inf, -np.inf, -0.0]]
    )
    histogram = Histogram([str(i) for i in range(n_edges + 1)], np.zeros(n_edges + 1), 1, edges)
    histogram.add_numbers(numbers)
    histogram.add_numbers(numbers[:0])  # an empty batch counts nothing
    expected = _searchsorted_counts(edges, numbers, n_edges + 1)
    assert histogram.counts.tolist() == expected.tolist()


def _window(train: pd.DataFrame) -> WindowStats:
    kinds = dict.fromkeys(train.columns, "numeric")
    return WindowStats.for_reference(infer_profile(train, kinds), infer_contract(train, kinds))


def _counts(stats: WindowStats) -> dict:
    return {
        name: (
            f.seen,
            f.missing,
            f.out_of_range,
            f.histogram.counts.tolist() if f.histogram else None,
        )
        for name, f in stats.features.items()
    }


@pytest.mark.parametrize(
    "dtype", ["float64", "float32", "int64", "Int64", "Float64", "object"], ids=str
)
def test_a_numeric_column_counts_the_same_whatever_its_dtype(dtype):
    """float64 with NaN and values past the training range, as the general path counts them
    (object: how a text log's column arrives; Int64/Float64: pandas' nullable dtypes)."""
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.integers(0, 50, 2_000).astype("float64"), "c": 7.0})
    values = rng.integers(-10, 70, 30_000).astype("float64")  # past both training bounds
    values[::13] = np.nan
    log = pd.DataFrame({"input.x": values, "input.c": np.where(values > 60, 8.0, 7.0)})
    reference = _window(train)
    reference.add(log.astype(object).where(log.notna(), None))  # the general path
    stats = _window(train)
    typed = log.astype(dtype) if dtype not in ("int64",) else log.fillna(-99).astype(dtype)
    if dtype == "int64":  # no NaN in an int64 column: compare with the same values
        reference = _window(train)
        reference.add(typed.astype(object))
    stats.add(typed.iloc[:10_000])
    stats.add(typed.iloc[10_000:].reset_index(drop=True))
    assert _counts(stats) == _counts(reference)
    assert stats.features["x"].missing == (0 if dtype == "int64" else len(values[::13]))
    assert stats.features["x"].out_of_range > 0


def test_the_window_reads_only_the_columns_judging_needs():
    """#31: the request ids, sources and raw rows are text a million rows long; judging a
    window reads none of them (the keys only when labels are joined)."""
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, 1.0]})
    stats = _window(train)
    columns = stats.log_columns(["a", "b"])
    assert columns == [
        "timestamp",
        "version",
        "status",
        "reason",
        "prediction",
        "input.a",
        "input.b",
    ]
    assert stats.log_columns(["a", "b"], keys=True)[-1] == "key"
