"""The ONNX version as an MLflow model: logged, tagged, and told apart from a scikit-learn one.

A twin is an MLflow ``python_function`` model whose ``loader_module`` is
runway's own :mod:`runway.core.onnx.model` (no pickle, no cloudpickle, no
``code`` directory) and whose data folder ``data/twin`` holds ``model.onnx``
and ``twin.json``. It is logged in its own run (the *conversion* run), which
carries the source run's spec, contract and reference profile, so gates,
serving and monitoring read it like any version; its requirements name
onnxruntime, numpy, pandas and mlflow-skinny, not scikit-learn.

It is registered as a new version of the same registered model, tagged with
the version it twins (:data:`SOURCE_TAG`), the graph's SHA-256
(:data:`SHA_TAG`: what :func:`runway.store.trust.fetch_verified` checks the
downloaded file against) and the parity figures.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from runway.core.onnx import model as onnx_model
from runway.store import models
from runway.store.tracking import client, quiet_schema_hints

LOADER_MODULE = onnx_model.__name__
SOURCE_TAG = "runway.twin_of"  # the version number this twin was made from
SHA_TAG = "runway.onnx.sha256"
KIND_TAG = "runway.model_kind"  # "onnx-twin"
TWIN_KIND = "onnx-twin"
PARITY_TAGS = ("runway.parity.max_abs_diff", "runway.parity.tolerance", "runway.parity.rows")
PARITY_ARTIFACT = "parity/parity.json"
TWIN_RUN_TAG = "runway.twin"  # on the source run: the twin version(s) made from it


def twin_requirements() -> list[str]:
    """Pinned pip requirements of a twin: what scoring it needs, no scikit-learn."""
    wanted = {"onnxruntime": "onnxruntime", "numpy": "numpy", "pandas": "pandas"}
    try:
        wanted["mlflow-skinny"] = f"mlflow-skinny=={version('mlflow-skinny')}"
    except PackageNotFoundError:
        wanted["mlflow-skinny"] = f"mlflow-skinny=={version('mlflow')}"
    return [v if "==" in v else f"{v}=={version(v)}" for v in wanted.values()]


def source_signature_and_example(local: Path) -> tuple[Any, Any]:
    """The signature and input example the source version was logged with."""
    from mlflow.models import Model

    model = Model.load(str(local / "MLmodel"))
    example = model.load_input_example(str(local))
    return model.signature, example


def log_twin(onnx_file: Path, record: dict[str, Any], source_local: Path) -> str:
    """Log the twin into the active run (same signature and example as the source); its URI."""
    signature, example = source_signature_and_example(source_local)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / onnx_model.DATA_DIR
        folder.mkdir()
        shutil.copy(onnx_file, folder / onnx_model.ONNX_FILE)
        (folder / onnx_model.TWIN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
        with quiet_schema_hints():
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module=LOADER_MODULE,
                data_path=str(folder),
                signature=signature,
                input_example=example if isinstance(example, pd.DataFrame) else None,
                pip_requirements=twin_requirements(),
                metadata=models.input_types_metadata(source_local),
            )
    return str(info.model_uri)


def version_tags(name: str, number: str) -> dict[str, str]:
    """A version's tags, read fresh from the registry."""
    return dict(client().get_model_version(name, number).tags or {})


def is_twin_folder(local: Path) -> bool:
    """True when a downloaded model folder is an ONNX version (by its MLmodel's loader)."""
    import yaml

    try:
        doc = yaml.safe_load((local / "MLmodel").read_text())
    except (OSError, yaml.YAMLError):
        return False
    pyfunc = (doc or {}).get("flavors", {}).get("python_function", {}) or {}
    return bool(pyfunc.get("loader_module") == LOADER_MODULE)
