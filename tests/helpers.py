"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from runway.net import free_port

__all__ = [
    "free_port",
    "import_or_skip",
    "ship",
    "stop_process_group",
    "wait_http",
    "write_spec",
]


# For the fake backends the gateway tests start (source text, run with ``python -c``):
# the checked rows the gateway sent, as MLflow's scoring server reads either format.
BACKEND_ROWS = """
import io, json
import pandas as pd

def checked_rows(body, content_type):
    if content_type == "application/json":  # column-wise inputs, for a few JSON rows
        columns = json.loads(body)["inputs"]
        return [dict(zip(columns, row)) for row in zip(*columns.values())]
    return pd.read_parquet(io.BytesIO(body)).to_dict("records")
"""


def import_or_skip(module: str) -> ModuleType:
    """``pytest.importorskip`` on a laptop; in CI (``CI=true``) a missing module fails the test.

    What CI skips nobody sees: there every optional dependency the tests use is installed.
    """
    if os.environ.get("CI", "").lower() in ("true", "1"):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{module} is not installed, and CI may not skip a test: {exc}")
    return pytest.importorskip(module)


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


def wait_http(url: str, proc: Any, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop_process_group(proc: Any) -> None:
    """Stop a server started with ``start_new_session=True`` by its own PID."""
    import os
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def ship(
    root: Path,
    spec: dict[str, Any],
    *,
    production: bool = True,
    reviewer: str = "ci",
    input_policy: dict[str, str] | None = None,
) -> tuple[Any, str, str]:
    """Train ``spec`` into the SQLite store under ``root``, register it, and put it in Production.

    The promotion goes through runway's own gates, under a permissive policy
    written to ``root/registry/<model>.yaml`` (with ``input_policy`` as its
    ``input`` section). Serving and batch tests and benchmarks all start here.
    Returns (settings, version, run_id).
    """
    from runway.core.training.spec import spec_from_dict
    from runway.jobs.promote import promote
    from runway.jobs.register import register_training
    from runway.jobs.train import train
    from runway.settings import Settings
    from runway.store import tracking

    model = spec["model_name"]
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "mlruns"),
        registry_dir=str(root / "registry"),
    )
    policy = {
        "model": model,
        "staging": {"max_latency_ms": 60_000, "max_model_size_mb": 1000},
        "production": {"reviewers": [reviewer], "four_eyes": False},
        **({"input": input_policy} if input_policy else {}),
    }
    (root / "registry").mkdir(exist_ok=True)
    (root / "registry" / f"{model}.yaml").write_text(yaml.safe_dump(policy))
    tracking.configure(settings)  # this helper stands for a process's start
    result = train(spec_from_dict(spec), settings=settings)
    version = register_training(result, model).version
    if production:
        promote(model, version, "Staging", settings=settings)
        promote(model, version, "Production", reviewer=reviewer, settings=settings)
    return settings, version, result.run_id


DELIVERY_FEATURES = ["distance_km", "items", "express", "ordered_at", "zone", "courier id"]


def delivery_frame(n: int = 600, seed: int = 0, boolean_gaps: bool = False):
    """A delivery-time table with every kind of column a tabular user brings.

    ``distance_km`` (float, gaps), ``items`` (int), ``express`` (boolean; gaps when
    ``boolean_gaps``), ``ordered_at`` (ISO 8601 text, gaps), ``zone`` (4 levels,
    gaps), ``courier id`` (60 levels, a space in its name); targets ``minutes``
    (regression) and ``late``. Generated, never downloaded: the same seed gives the
    same table.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00")
    stamps = start + rng.integers(0, 180 * 24 * 3600, n).astype("timedelta64[s]")
    hour = stamps.astype("datetime64[h]").astype(int) % 24
    weekday = (stamps.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    distance = rng.gamma(2.0, 2.5, n).round(2)
    items = rng.integers(1, 12, n)
    express = rng.random(n) < 0.3
    zones = np.array(["north", "south", "east", "west"])
    zone = zones[rng.integers(0, 4, n)]
    couriers = np.array([f"c{i:02d}" for i in range(60)])
    courier = couriers[rng.integers(0, 60, n)]
    courier_effect = dict(zip(couriers, rng.normal(0, 3, 60), strict=True))
    minutes = (
        12
        + 2.2 * distance
        + 0.6 * items
        - 6 * express
        + 7 * np.isin(hour, [11, 12, 17, 18, 19])
        + 3 * (weekday >= 5)
        + np.array([courier_effect[c] for c in courier])
        + (zone == "east") * 4
        + rng.normal(0, 2, n)
    )
    frame = pd.DataFrame(
        {
            "distance_km": distance,
            "items": items,
            "express": pd.Series(express, dtype=object),
            "ordered_at": pd.Series(np.datetime_as_string(stamps, unit="s"), dtype=object),
            "zone": pd.Series(zone, dtype=object),
            "courier id": pd.Series(courier, dtype=object),
            "minutes": minutes.round(2),
        }
    )
    for column, rate in (
        ("distance_km", 0.05),
        ("express", 0.08),
        ("ordered_at", 0.05),
        ("zone", 0.06),
    ):
        gaps = rng.random(n) < rate  # drawn either way: the other columns stay the same
        if column != "express" or boolean_gaps:
            frame.loc[gaps, column] = None
    frame["late"] = (frame["minutes"] > frame["minutes"].median()).map({True: "yes", False: "no"})
    return frame


def delivery_spec(data: Path, **changes: Any) -> dict[str, Any]:
    """A regression spec for :func:`delivery_frame`, as a new user writes it: features inferred.

    A Ridge regression: any difference in a feature moves its prediction.
    """
    spec: dict[str, Any] = {
        "experiment": "delivery",
        "task": "regression",
        "model_name": "delivery",
        "data": {
            "source": str(data),
            "target": "minutes",
            "features": "infer",
            "drop": ["late"],
        },
        "estimator": {"name": "Ridge", "params": {"alpha": 1.0}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["rmse", "mae"],
        "primary_metric": {"name": "rmse"},
    }
    spec.update(changes)
    return spec


def forge_production(uri: str, model: str, version: str, replaced: str = "") -> None:
    """Put ``version`` in Production outside runway and forge the audit record that explains it.

    Without ``RUNWAY_AUDIT_KEY`` anyone who may write the audit experiment can do
    this (the README says so): what stands after it is runway's check of the
    model itself, which is what a test calling this exercises.
    """
    from runway.settings import Settings
    from runway.store import audit, registry, tracking

    settings = Settings(MLFLOW_TRACKING_URI=uri)
    tracking.configure(settings)
    registry.transition(model, version, "Production")
    registry.set_version_tags(model, version, {registry.STAGE_TAG: "Production"})
    registry.sync_aliases(model)  # @production, which serving resolves, as runway's own move does
    mv = registry.get_version(model, version)
    forged = audit.Attempt("promote", "Production", "applied", "mallory", replaced=replaced)
    audit.record(settings, mv, forged)  # ``replaced``: the champion it archived, as runway's
