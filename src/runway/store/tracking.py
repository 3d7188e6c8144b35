"""The adapter to MLflow tracking: experiments, runs, params, metrics, artifacts.

:func:`configure` points MLflow at the store once per process (the CLI, a
server's start, a spawned worker); nothing else here changes global MLflow
state. Runs started by :func:`run` always end FINISHED, FAILED (with the error
as a tag) or KILLED, never RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ValidationError

from runway.core.columns.profile import ReferenceProfile
from runway.core.columns.schema import DataContract
from runway.core.text import slug
from runway.errors import TrackingError
from runway.net import redact_text, redact_url
from runway.settings import Settings, is_server_url
from runway.store import unclosed
from runway.store.http import artifact_errors, configure_http, explain

log = logging.getLogger(__name__)

ERROR_TAG = "runway.error"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # a run's or experiment's description, rendered as Markdown
CONTRACT_ARTIFACT = "contract/contract.json"  # core.columns.schema.DataContract, per run
PROFILE_ARTIFACT = "contract/reference_profile.json"  # core.columns.profile.ReferenceProfile

M = TypeVar("M", bound=BaseModel)
MAX_TAG_CHARS = 5000
_BATCH = 1000  # metrics per log_batch call


def configure(settings: Settings) -> Settings:
    """Point MLflow's tracking and registry clients at the configured store (once per process).

    Also bounds the client's HTTP retries and timeouts (:mod:`runway.store.http`).
    """
    configure_http(settings)
    configure_uri(settings.tracking_uri)
    return settings


def configure_uri(uri: str) -> None:
    """:func:`configure` from a bare URI (what a spawned worker process is given)."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def tracking_uri() -> str:
    """The store this process was configured with (what spawned workers are given)."""
    return str(mlflow.get_tracking_uri())


def client() -> mlflow.MlflowClient:
    """A client on the configured store."""
    return mlflow.MlflowClient()


def ensure_experiment(name: str, settings: Settings) -> str:
    """The id of the named experiment, created on first use.

    With a local database store runway sets the artifact root (``./mlruns`` by
    default); a tracking server decides its own.
    """
    mlflow_client = client()
    try:
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            location = (
                f"{settings.artifact_location()}/{slug(name, default='experiment')}"
                if settings.tracking_is_local_db()
                else None
            )
            log.info("creating experiment %r (artifacts: %s)", name, location or "server default")
            return str(mlflow_client.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        raise explain(exc) or TrackingError(
            f"tracking store {redact_url(tracking_uri())}: cannot open experiment {name!r}: {exc.message}"
        ) from exc
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(
            f"experiment {name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
            "or choose another name"
        )
    return str(experiment.experiment_id)


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
    except KeyboardInterrupt as exc:
        _end(RunStatus.KILLED, "", exc)
        raise
    except BaseException as exc:
        error = redact_text(f"{type(exc).__name__}: {exc}")[:MAX_TAG_CHARS]
        with contextlib.suppress(Exception):
            mlflow.set_tag(ERROR_TAG, error)
        _end(RunStatus.FAILED, error, exc)
        raise
    else:
        _end(RunStatus.FINISHED, "", None)


def _end(status: int, error: str, cause: BaseException | None) -> None:
    """End the active run as ``status``; if the store refuses (it is down), remember the run
    so the next command ends it (:mod:`runway.store.unclosed`) and raise what says why,
    or let ``cause`` (the run's own failure, being raised) stand."""
    run = mlflow.active_run()
    name = RunStatus.to_string(status)
    try:
        mlflow.end_run(name)  # pops the run first: at exit MLflow does not end it FINISHED
    except Exception as exc:
        if run is None:
            raise
        unclosed.remember(run.info.run_id, name, error, exc)
        if cause is None:
            raise explain(exc) or exc from None


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
def quiet_schema_hints() -> Iterator[None]:
    """Silence MLflow's integer-column hint: features are float64 by then (see
    ``core.data.prepare``); only targets and class labels are integers, never missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


# --- the active run ------------------------------------------------------------------------


def active_run_id() -> str:
    """The id of the run this process is recording into."""
    active = mlflow.active_run()
    if active is None:
        raise TrackingError("no active MLflow run")
    return str(active.info.run_id)


def log_params(params: Mapping[str, Any]) -> None:
    """Log params in batches (the store takes at most 100 per call)."""
    items = list(params.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))


def log_params_once(params: Mapping[str, Any]) -> list[str]:
    """Log the params the active run does not have yet; return those it has with another value.

    MLflow never changes a logged param, so a run that is resumed (a sweep's
    parent) keeps the first value of each.
    """
    existing = client().get_run(active_run_id()).data.params
    log_params({k: v for k, v in params.items() if k not in existing})
    return sorted(k for k, v in params.items() if k in existing and existing[k] != str(v))


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Metrics of the active run (step 0)."""
    mlflow.log_metrics(dict(metrics))


def set_tags(tags: Mapping[str, str]) -> None:
    """Tags on the active run."""
    mlflow.set_tags(dict(tags))


def log_text(text: str, path: str) -> None:
    """A text artifact of the active run."""
    mlflow.log_text(text, path)


def log_dict(doc: Any, path: str) -> None:
    """A JSON (or YAML, by suffix) artifact of the active run."""
    mlflow.log_dict(doc, path)


def log_artifact(local: str | Path, folder: str | None = None) -> None:
    """A local file as an artifact of the active run, under ``folder``."""
    mlflow.log_artifact(str(local), folder)


def log_fold_metrics(series: Sequence[tuple[str, float, int]]) -> None:
    """Per-fold scores, ``(name, value, fold)``, as metrics with the fold as step."""
    log_batch(active_run_id(), metrics=series)


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
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import from_pandas

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
    with quiet_schema_hints():
        dataset = from_pandas(frame, source=src, targets=targets, name=name, digest=digest)
        mlflow.log_input(dataset, context=context)


# --- any run, by id -------------------------------------------------------------------------


def create_run(experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
    """A new RUNNING run (not the active one); end it with :func:`terminate`."""
    return str(client().create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id)


def log_batch(
    run_id: str,
    *,
    metrics: Sequence[tuple[str, float, int]] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Metrics ``(name, value, step)``, params and tags of a run in as few store calls as fit."""
    now = int(time.time() * 1000)
    batch = [Metric(name, float(value), now, step) for name, value, step in metrics]
    logged_params = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
    logged_tags = [RunTag(k, str(v)[:MAX_TAG_CHARS]) for k, v in (tags or {}).items()]
    mlflow_client = client()
    mlflow_client.log_batch(run_id, metrics=batch[:_BATCH], params=logged_params, tags=logged_tags)
    for start in range(_BATCH, len(batch), _BATCH):
        mlflow_client.log_batch(run_id, metrics=batch[start : start + _BATCH])


def set_run_tag(run_id: str, key: str, value: str) -> None:
    """One tag on any run."""
    client().set_tag(run_id, key, value)


def log_run_text(run_id: str, text: str, path: str) -> None:
    """A text artifact of any run."""
    client().log_text(run_id, text, path)


def terminate(run_id: str, status: str) -> None:
    """End a run: ``FINISHED``, ``FAILED`` or ``KILLED``."""
    client().set_terminated(run_id, status)


def run_experiment(run_id: str) -> str:
    """The experiment a run belongs to."""
    return str(client().get_run(run_id).info.experiment_id)


def run_tags(run_id: str) -> dict[str, str]:
    """A run's tags (empty when the run cannot be read)."""
    try:
        return dict(client().get_run(run_id).data.tags)
    except MlflowException:
        return {}


def run_params(run_id: str) -> dict[str, str]:
    """A run's params as logged (text; empty when the run cannot be read)."""
    try:
        return dict(client().get_run(run_id).data.params)
    except MlflowException:
        return {}


def run_metrics(run_id: str) -> dict[str, float]:
    """A run's latest metric values (empty when the run cannot be read)."""
    try:
        return dict(client().get_run(run_id).data.metrics)
    except MlflowException:
        return {}


def child_runs(parent_id: str, status: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """(run id, tags) of the nested runs under ``parent_id``, optionally of one status."""
    experiment_id = run_experiment(parent_id)
    query = f"tags.{PARENT_TAG} = '{parent_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    runs = client().search_runs([experiment_id], filter_string=query, max_results=10_000)
    return [(r.info.run_id, dict(r.data.tags)) for r in runs]


# MLflow 3.17's UI opens an experiment on its GenAI overview unless the URL (or the
# browser's "Model training" toggle, kept in localStorage) says otherwise; the
# experiment tag `mlflow.experimentKind` is not read by the open-source UI.
MODEL_TRAINING = "workflowType=machine_learning"
DEFAULT_UI_URL = "http://127.0.0.1:5000"


def ui_base(ui_url: str = DEFAULT_UI_URL) -> str:
    """The MLflow UI's address: the tracking server's, else ``ui_url`` (where `make ui` runs)."""
    uri = tracking_uri()
    return redact_url(uri if is_server_url(uri) else ui_url).rstrip("/")


def experiment_url(experiment_id: str, ui_url: str = DEFAULT_UI_URL) -> str:
    """The experiment's runs table in the MLflow UI, in model-training mode, opening on
    the view runway pinned (:mod:`runway.store.views`: its metric and param columns)."""
    view = "viewStateShareKey=runway"
    return f"{ui_base(ui_url)}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING}&{view}"


def run_url(run_id: str, experiment_id: str, ui_url: str = DEFAULT_UI_URL) -> str:
    """A run's page in the MLflow UI, in model-training mode."""
    return f"{ui_base(ui_url)}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING}"


def run_link(run_id: str, experiment_id: str, path: str = "") -> str:
    """A relative UI link to a run (or one of its artifacts), for Markdown descriptions.

    Relative links work on any host and port the UI is served from.
    """
    return f"#/experiments/{experiment_id}/runs/{run_id}" + (f"/artifacts/{path}" if path else "")


def describe_experiment(experiment_id: str, text: str) -> None:
    """The experiment's description (Markdown, shown above its runs table), when it changed."""
    if not text:
        return
    mlflow_client = client()
    current = mlflow_client.get_experiment(experiment_id).tags.get(NOTE_TAG)
    if current != text:
        mlflow_client.set_experiment_tag(experiment_id, NOTE_TAG, text[:MAX_TAG_CHARS])


def load_contract(run_id: str) -> DataContract:
    """The data contract a model's training run recorded: what input it may be given."""
    return _load_model(run_id, CONTRACT_ARTIFACT, DataContract)


def load_profile(run_id: str) -> ReferenceProfile:
    """The reference profile a model's training run recorded: what drift is measured from."""
    return _load_model(run_id, PROFILE_ARTIFACT, ReferenceProfile)


def _load_model(run_id: str, path: str, model: type[M]) -> M:
    """A JSON artifact read as its typed model (any of its schema versions)."""
    doc = load_json_artifact(run_id, path)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        raise TrackingError(f"run {run_id}: {path}: {where}: {problem['msg']}") from None


def load_json_artifact(run_id: str, path: str) -> dict[str, Any]:
    """A JSON artifact of a run (the data contract, the reference profile), parsed."""
    missing = f"run {run_id} has no {path}; runway needs runs made by `runway train` or `sweep`"
    with artifact_errors(lambda _exc: missing, f"run {run_id}'s {path}", _lister(run_id, path)):
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise TrackingError(f"run {run_id}: {path} is not a JSON object")
    return doc


def download_artifact(run_id: str, path: str, dst: str | Path) -> Path:
    """One artifact of a run, copied under ``dst``; its local path."""
    with artifact_errors(
        lambda exc: f"run {run_id} has no {path}: {exc.message}",
        f"run {run_id}'s {path}",
        _lister(run_id, path),
    ):
        return Path(client().download_artifacts(run_id, path, str(dst)))


def _lister(run_id: str, path: str) -> Callable[[], object]:
    """Lists the folder holding ``path``: raises if the artifact store cannot be read."""
    folder = path.rsplit("/", 1)[0] if "/" in path else None
    return lambda: client().list_artifacts(run_id, folder)


def load_run_text(run_id: str, path: str) -> str:
    """A text artifact of a run, or "" when it is not there."""
    try:
        return str(mlflow.artifacts.load_text(f"runs:/{run_id}/{path}"))
    except (MlflowException, OSError):
        return ""
