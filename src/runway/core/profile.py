"""The reference profile of a model's training data: what drift checks compare against.

Quantile bins and summary statistics per numeric feature, value frequencies
per categorical or boolean one, the range of a datetime one; logged with every model (``contract/reference_profile.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from runway.core.spec import FeatureKind

PROFILE_VERSION = 1
PROFILE_BINS = 10
MAX_PROFILE_CATEGORIES = 200


def infer_profile(X: pd.DataFrame, features: dict[str, FeatureKind]) -> dict[str, Any]:
    """A reference profile for drift checks: quantile bins or category frequencies."""
    profile: dict[str, Any] = {}
    for name, kind in features.items():
        series = X[name]
        entry: dict[str, Any] = {
            "kind": kind,
            "count": int(series.notna().sum()),
            "missing_rate": float(series.isna().mean()),
        }
        if kind == "numeric":
            values = series.dropna().astype("float64").to_numpy()
            if len(values):
                edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)))
                counts, _ = (
                    np.histogram(values, bins=edges)
                    if len(edges) > 1
                    else (np.array([len(values)]), edges)
                )
                entry.update(
                    mean=float(values.mean()),
                    std=float(values.std()),
                    quantiles={
                        str(q): float(np.quantile(values, q))
                        for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
                    },
                    bin_edges=[float(e) for e in edges],
                    bin_fractions=[float(c) / len(values) for c in counts],
                )
        elif kind == "datetime":
            stamps = series.dropna()
            if len(stamps):
                entry.update(min=stamps.min().isoformat(), max=stamps.max().isoformat())
        else:  # categorical and boolean: how often each value occurs
            freq = series.dropna().astype(str).value_counts(normalize=True)
            entry["frequencies"] = {
                str(k): float(v) for k, v in freq.iloc[:MAX_PROFILE_CATEGORIES].items()
            }
        profile[name] = entry
    return {"version": PROFILE_VERSION, "n_rows": len(X), "features": profile}
