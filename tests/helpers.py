"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runway.net import free_port

__all__ = ["free_port", "ship", "stop_process_group", "wait_http", "write_spec"]


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
    from runway.core.spec import spec_from_dict
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
