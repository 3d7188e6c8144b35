"""Before runway loads a model version anywhere: is it what runway vouches for?

Two checks, both before anything from the version is imported or run:

1. **Provenance**: the version's source is the model its run logged
   (``models:/m-<id>``, a logged model named ``model`` that the run lists as an
   output and that names the run as its source), not a copy at some other URI
   registered with a borrowed run id.
2. **Contents**: the downloaded folder passes :func:`runway.core.governance.trust.inspect_model_dir`
   (runway's own allow-list, never the MLmodel's list).

:func:`fetch_verified` does both and returns the folder it checked: callers load
or serve exactly that folder, never a fresh ``models:/`` download (the checked
copy and the loaded copy could differ). Gates, serving and batch scoring call
it; so must anything else that loads a version.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal, Protocol

from mlflow.exceptions import MlflowException

from runway.core.governance.trust import ALLOWLIST_FILE, CODE_DIR, inspect_model_dir
from runway.errors import UntrustedModel
from runway.settings import Settings
from runway.store import audit, onnx_models, registry
from runway.store.models import download_model
from runway.store.tracking import client

log = logging.getLogger(__name__)

LOGGED_MODEL_PREFIX = "models:/m-"
MODEL_NAME = "model"  # the name runway logs every model under
OnnxHash = Literal["sealed", "conversion"]


class Version(Protocol):
    """What the checks need of a registered version (VersionInfo and ResolvedModel have it)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def source(self) -> str: ...


def _twin_hash(mv: Version, settings: Settings, onnx_hash: OnnxHash) -> str:
    """The hash an ONNX version's graph must have (see :func:`fetch_verified`)."""
    stage = registry.get_version(mv.name, mv.version).stage  # now, not when it was resolved
    if onnx_hash == "conversion" or stage == "None":
        # never promoted: nothing reviewed it yet, the conversion's record is all there is
        return onnx_models.version_tags(mv.name, mv.version).get(onnx_models.SHA_TAG, "")
    sealed = audit.sealed_onnx_hash(mv.name, mv.version, stage, settings)
    if not sealed:
        raise UntrustedModel(
            f"refusing {mv.name} v{mv.version}: it is an ONNX version in {stage} and no runway "
            f"promotion to {stage} sealed its graph's sha256 into the audit trail (a version "
            "tag is not trusted); promote it again through `runway registry promote`; nothing "
            "from it was loaded"
        )
    return sealed


def source_problem(mv: Version) -> str | None:
    """Why ``mv``'s source is not the model its run logged, or None."""
    if not mv.run_id:
        return "it names no source run"
    if not mv.source.startswith(LOGGED_MODEL_PREFIX):
        return f"its source {mv.source[:200]!r} is not a model logged by a run (models:/m-...)"
    model_id = mv.source.removeprefix("models:/").split("/", 1)[0]
    mlflow_client = client()
    try:
        run = mlflow_client.get_run(mv.run_id)
        logged = mlflow_client.get_logged_model(model_id)
    except MlflowException as exc:
        return f"its source or run cannot be read: {exc.message.splitlines()[0][:200]}"
    if run.info.lifecycle_stage != "active":
        return f"its source run {mv.run_id} was deleted"
    outputs = {o.model_id for o in (run.outputs.model_outputs if run.outputs else [])}
    if model_id not in outputs or logged.source_run_id != mv.run_id:
        return f"its source {model_id} is not a model its run {mv.run_id} logged"
    if logged.name != MODEL_NAME or str(logged.status) != "READY":
        return f"its source {model_id} is not a finished model named {MODEL_NAME!r}"
    return None


def drop_bytecode(local: Path) -> None:
    """Remove ``__pycache__`` folders from runway's own copy of a model's code directory.

    Plain MLflow loading a version in place (a local artifact store) leaves them there;
    in this copy they would only be a way to run other code than the checked ``.py`` files,
    so they go, and Python compiles what was checked.
    """
    for cache in sorted((local / CODE_DIR).rglob("__pycache__"), reverse=True):
        if cache.is_dir() and not cache.is_symlink():
            shutil.rmtree(cache)


def fetch_verified(
    mv: Version, dst: Path, settings: Settings, *, onnx_hash: OnnxHash = "sealed"
) -> Path:
    """Download ``mv`` into a new folder under ``dst``, check it, and return that folder.

    An ONNX version in a stage runway's promotions put it in is checked against
    the graph hash its promotion sealed into the audit record (a version tag is
    writable by anyone who registers); one never promoted (stage None) against
    the hash recorded at conversion. A promotion's own gates, which run before
    its record exists, pass ``onnx_hash="conversion"``, and the promotion then
    seals the hash they checked.

    Raises:
        UntrustedModel: the source is not the model its run logged, the
            folder holds something runway does not vouch for, or a promoted twin
            has no sealed hash; nothing from it was imported or run.
        TrackingError: the model cannot be downloaded.
    """
    label = f"{mv.name} v{mv.version}"
    problem = source_problem(mv)
    if problem:
        raise UntrustedModel(
            f"refusing {label}: {problem}; register the model its run logged "
            f"(`runway train --register`, `runway sweep`), not a copy"
        )
    dst.mkdir(parents=True, exist_ok=True)
    local = download_model(mv.source, tempfile.mkdtemp(prefix="model-", dir=dst))
    drop_bytecode(local)
    expected = _twin_hash(mv, settings, onnx_hash) if onnx_models.is_twin_folder(local) else None
    verdict = inspect_model_dir(
        local, allow_pickle=settings.allow_pickle_models, onnx_sha256=expected
    )
    if verdict.problems:
        raise UntrustedModel(
            f"refusing {label}: {'; '.join(verdict.problems)}; nothing from it was loaded. "
            "runway loads skops models of the types it builds: retrain it with `runway train`, "
            f"or, if you vouch for these types, add them to runway/core/governance/{ALLOWLIST_FILE.name} "
            "(one line each)"
            "in a reviewed change; RUNWAY_ALLOW_PICKLE_MODELS=true admits code-running models"
        )
    if verdict.runs_code:
        log.warning(
            "%s runs code while loading; loaded because RUNWAY_ALLOW_PICKLE_MODELS is on", label
        )
    return local
