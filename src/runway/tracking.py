"""The single adapter to MLflow tracking.

Configured from settings when a command runs, never at import time. Runs started
here always end FINISHED, FAILED (with the error as a tag) or KILLED, never
RUNNING.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException

from runway.errors import TrackingError
from runway.settings import Settings, get_settings

log = logging.getLogger(__name__)

ERROR_TAG = "runway.error"
CONTRACT_ARTIFACT = "contract/contract.json"  # data.infer_contract, per run
PROFILE_ARTIFACT = "contract/reference_profile.json"  # data.infer_profile, per run
MAX_TAG_CHARS = 5000


def configure(settings: Settings | None = None) -> Settings:
    """Point MLflow's tracking and registry clients at the configured store."""
    settings = settings or get_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return settings


def ensure_experiment(name: str, settings: Settings) -> str:
    """The id of the named experiment, created on first use.

    With a local database store runway sets the artifact root (``./mlruns`` by
    default); a tracking server decides its own.
    """
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = (
                f"{settings.artifact_location()}/{_slug(name)}"
                if settings.tracking_is_local_db()
                else None
            )
            log.info("creating experiment %r (artifacts: %s)", name, location or "server default")
            return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        raise TrackingError(
            f"tracking store {settings.tracking_uri}: cannot open experiment {name!r}: {exc.message}"
        ) from exc
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(
            f"experiment {name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
            "or choose another name"
        )
    return experiment.experiment_id


def _slug(name: str) -> str:
    """A folder name for an experiment: its name, reduced to safe characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "experiment"


@contextlib.contextmanager
def run(
    experiment_id: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume ``run_id``, or the run ``mlflow run`` made) a run that never ends RUNNING.

    An exception marks the run FAILED and records the error as the
    ``runway.error`` tag; Ctrl-C marks it KILLED. The exception propagates.
    """
    active = mlflow.start_run(
        run_id=run_id, experiment_id=experiment_id, run_name=run_name, tags=tags, nested=nested
    )
    if run_id and tags:
        mlflow.set_tags(tags)
    try:
        yield active
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):
            mlflow.set_tag(ERROR_TAG, f"{type(exc).__name__}: {exc}"[:MAX_TAG_CHARS])
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def git_commit(cwd: str | Path | None = None) -> tuple[str, bool]:
    """The current commit and whether the work tree has changes (``unknown`` outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(dirty)


@contextlib.contextmanager
def _quiet_schema_hints() -> Iterator[None]:
    """Silence MLflow's integer-column hint: features are float64 by then (see
    ``data.prepare``); only targets and class labels are integers, never missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


def log_params(params: dict[str, Any]) -> None:
    """Log params in batches (the store takes at most 100 per call)."""
    items = list(params.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))


def log_fold_metrics(folds: dict[str, list[float]]) -> None:
    """Per-fold scores as ``cv_<metric>`` with the fold number as step."""
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    now = int(time.time() * 1000)
    batch = [
        Metric(f"cv_{name}", value, now, step)
        for name, values in folds.items()
        for step, value in enumerate(values)
    ]
    for start in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[start : start + 1000])


def log_dataset(
    frame: pd.DataFrame,
    *,
    source: str,
    name: str,
    digest: str,
    context: str,
    targets: str | None = None,
) -> None:
    """Record dataset lineage (source, digest, schema) with ``mlflow.log_input``."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    if source.startswith("sklearn:"):
        loader = source.removeprefix("sklearn:")
        src: Any = CodeDatasetSource(
            tags={"source": source, "loader": f"sklearn.datasets.load_{loader}"}
        )
    else:
        uri = source if "://" in source else Path(source).resolve().as_uri()
        # Both "" and "file" schemes map to the local artifact source; MLflow warns
        # about the tie although either reads the same file.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            src = resolve_dataset_source(uri)
    with _quiet_schema_hints():
        dataset = mlflow.data.from_pandas(
            frame, source=src, targets=targets, name=name, digest=digest
        )
        mlflow.log_input(dataset, context=context)


def skops_trusted_types(model: Any) -> list[str]:
    """Exactly the types in this model that skops does not trust by default.

    Passing these (and only these) lets MLflow load the model back without
    turning skops' check off wholesale. skops can only tell by dumping, so this
    dumps a skeleton with one member of each type per ensemble (one tree of a
    400-tree forest): the same types, a fraction of the time.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(_type_skeleton(model))))


def _type_skeleton(value: Any) -> Any:
    """A copy of ``value`` keeping one member of each type in lists of estimators.

    Only containers are copied; the leaves are the model's own objects, so the
    skeleton never holds a type the model does not.
    """
    from sklearn.base import BaseEstimator

    if isinstance(value, BaseEstimator):
        twin = copy.copy(value)
        twin.__dict__ = {k: _type_skeleton(v) for k, v in vars(value).items()}
        return twin
    if isinstance(value, np.ndarray) and value.dtype == object:
        members = _one_of_each(list(value.ravel()), BaseEstimator)
        out = np.empty(len(members), dtype=object)
        out[:] = [_type_skeleton(m) for m in members]
        return out
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_type_skeleton(m) for m in _one_of_each(list(value), BaseEstimator))
    if isinstance(value, dict):
        twin = copy.copy(value)  # keeps dict subclasses such as sklearn's Bunch
        for key, item in value.items():
            twin[key] = _type_skeleton(item)
        return twin
    return value


def _one_of_each(items: list[Any], kind: type) -> list[Any]:
    """The first item of each type, when every item is a ``kind``; else all items."""
    if not items or not all(isinstance(i, kind) for i in items):
        return items
    firsts: dict[type, Any] = {}
    for item in items:
        firsts.setdefault(type(item), item)
    return list(firsts.values())


def pip_requirements() -> list[str]:
    """Explicit, pinned requirements for a logged scikit-learn model (no inference)."""
    from importlib.metadata import version

    packages = ["mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy", "cloudpickle"]
    return [f"{p}=={version(p)}" for p in packages]


def log_sklearn_model(model: Any, X_example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted scikit-learn model with signature and input example; return its URI."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = X_example.head(5)
    with _quiet_schema_hints():
        signature = infer_signature(X_example, model.predict(X_example))

    def log_with(trusted: list[str]) -> str:
        with _quiet_schema_hints():
            return mlflow.sklearn.log_model(
                model,
                name=name,
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=trusted,
            ).model_uri

    try:
        return log_with(skops_trusted_types(model))
    except MlflowException as exc:
        # MLflow loads the dump back with our list; should the skeleton ever
        # miss a type, fall back to the exact (slower) answer from a full dump.
        if "untrusted types" not in str(exc):
            raise
        import skops.io

        log.warning("skops type skeleton missed a type; using a full dump")
        return log_with(sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model))))


def run_url(run_id: str, experiment_id: str, ui_base: str = "http://127.0.0.1:5000") -> str:
    """Where to look at a run in the MLflow UI (``make ui``)."""
    tracking_uri = mlflow.get_tracking_uri()
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else ui_base
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def load_contract(run_id: str) -> dict[str, Any]:
    """The data contract a model's training run recorded: what input it may be given."""
    return load_json_artifact(run_id, CONTRACT_ARTIFACT)


def load_json_artifact(run_id: str, path: str) -> dict[str, Any]:
    """A JSON artifact of a run (the data contract, the reference profile), parsed."""
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except MlflowException as exc:
        raise TrackingError(
            f"run {run_id} has no {path}; runway needs runs made by `runway train` or `sweep`"
        ) from exc
    return json.loads(text)


def download_model(model_uri: str, dst: str | Path) -> Path:
    """Copy a logged or registered model's files (MLmodel, input example) to ``dst``."""
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    except MlflowException as exc:
        raise TrackingError(f"cannot download {model_uri}: {exc.message}") from exc
