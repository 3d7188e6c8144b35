"""Sampler seeds: distinct per worker and per resume, the same for the same study and point."""

from __future__ import annotations

from runway.core.training.spec import spec_from_dict
from runway.jobs import workers

SPEC = spec_from_dict(
    {
        "experiment": "e",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression"},
        "split": {"seed": 1},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
        "sweep": {"seed": 5, "space": {"model__C": {"type": "float", "low": 0.1, "high": 1}}},
    }
)


def test_a_resumed_sweep_draws_from_other_seeds_than_its_first_attempt():
    fresh = [workers.seed(SPEC, n) for n in range(3)]
    resumed = [workers.seed(SPEC, n, start=3) for n in range(3)]
    again = [workers.seed(SPEC, n, start=7) for n in range(3)]
    assert fresh == [5, 6, 7]  # a fresh sweep keeps the study's seed (+ worker number)
    assert len(set(fresh + resumed + again)) == 9
    assert resumed == [workers.seed(SPEC, n, start=3) for n in range(3)]  # reproducible
