"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_spec(path: Path, **changes: Any) -> Path:
    """Write a small, fast classification spec, with top-level sections replaced."""
    doc: dict[str, Any] = {
        "experiment": "test-exp",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target", "features": "infer"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.25, "cv_folds": 3, "seed": 1},
        "metrics": ["roc_auc", "accuracy"],
        "primary_metric": {"name": "roc_auc"},
    }
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
