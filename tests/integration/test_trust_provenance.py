"""#30-7: a version whose source run was deleted is not loaded (nor promoted, served, scored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runway.core.training.spec import spec_from_dict
from runway.errors import UntrustedModel
from runway.jobs.register import register_training
from runway.jobs.train import train
from runway.settings import get_settings
from runway.store.trust import fetch_verified


def test_a_version_whose_run_was_deleted_is_refused(client, tmp_path: Path):
    spec = {
        "experiment": "provenance",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    result = train(spec_from_dict(spec), settings=get_settings())
    version = register_training(result, "provenance")
    fetch_verified(version, tmp_path / "ok", get_settings())  # the genuine version loads
    client.delete_run(result.run_id)
    with pytest.raises(UntrustedModel, match=f"its source run {result.run_id} was deleted"):
        fetch_verified(version, tmp_path / "refused", get_settings())
    assert not list((tmp_path / "refused").glob("*")), "refused before anything was downloaded"
