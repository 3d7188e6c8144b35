"""Logging, finding and loading models: the MLflow model flavors runway uses.

Models are logged with skops (never pickle), an explicit signature and input
example, pinned pip requirements and exactly the skops types they hold.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from runway.core.governance.trust import allowed_types, types_from_schema
from runway.store.http import artifact_errors
from runway.store.model_code import model_code_paths
from runway.store.tracking import quiet_schema_hints

log = logging.getLogger(__name__)


def skops_trusted_types(model: Any) -> list[str]:
    """Exactly the types in this model that skops does not trust by default.

    Passing these (and only these) lets MLflow load the model back without
    turning skops' check off wholesale. skops can only tell by dumping, so this
    dumps a skeleton with one member of each type per ensemble (one tree of a
    400-tree forest): the same types, a fraction of the time. A type off
    runway's own allow-list is warned about here, at training time, rather than
    discovered when a promotion, a server or a batch refuses the version.
    """
    import skops.io

    dumped = skops.io.dumps(_type_skeleton(model))
    with zipfile.ZipFile(io.BytesIO(dumped)) as archive:
        foreign = types_from_schema(json.loads(archive.read("schema.json"))) - allowed_types()
    if foreign:
        log.warning(
            "this model holds types off runway's allow-list (%s): promote, serve and score will "
            "refuse it; change the spec, or add the types to runway/core/governance/skops_types.txt in a "
            "reviewed change",
            ", ".join(sorted(foreign)),
        )
    return sorted(skops.io.get_untrusted_types(data=dumped))


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


NUMBER_TYPE = "double"  # what runway's checks cast a numeric column to
# Logged as AnyType (see input_spec); the declared type is kept in the MLmodel's metadata
ANY_INPUTS = frozenset({NUMBER_TYPE, "datetime"})
INPUT_TYPES_KEY = "runway_input_types"


def log_sklearn_model(
    model: Any,
    X_example: pd.DataFrame,
    name: str = "model",
    inputs: list[tuple[str, str, bool]] | None = None,
) -> str:
    """Log a fitted scikit-learn model into the active run with signature and input example.

    ``inputs`` (name, MLflow type, required) sets the signature's inputs (from
    the data contract, so both say the same about types and optional columns);
    without it they are inferred from ``X_example``. Returns the logged model's URI.
    """
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import Schema

    example = X_example.head(5)
    with quiet_schema_hints():
        signature = infer_signature(X_example, model.predict(X_example))
    metadata = None
    if inputs is not None:
        columns = [input_spec(column, kind, required) for column, kind, required in inputs]
        signature = ModelSignature(Schema(columns), signature.outputs)
        metadata = {INPUT_TYPES_KEY: {column: kind for column, kind, _ in inputs}}

    def log_with(trusted: list[str]) -> str:
        with quiet_schema_hints(), model_code_paths() as code_paths:
            return str(
                mlflow.sklearn.log_model(
                    model,
                    name=name,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(),
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                    skops_trusted_types=trusted,
                    metadata=metadata,
                    code_paths=code_paths,  # runway's transformers: loads without runway
                ).model_uri
            )

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


def input_spec(column: str, kind: str, required: bool) -> Any:
    """One signature input; number and timestamp columns are logged as ``AnyType``.

    Why: MLflow's enforcement turns int64 into double only for 0/1 values, so a
    user's ``pd.read_csv`` of the training file (whole numbers come back int64)
    was refused in-process, and ``long`` would refuse the float64 pandas reads a
    gappy integer column as; a timestamp column read as text (pandas' ``str``
    dtype) was refused for ``datetime``. ``AnyType`` lets these through to the
    pipeline, whose own steps read them as every path does (float64;
    DatetimeParts). The declared type stays in the MLmodel's metadata
    (:data:`INPUT_TYPES_KEY`), which :func:`signature_inputs` reports.
    """
    from mlflow.types import ColSpec
    from mlflow.types.schema import AnyType

    if kind in ANY_INPUTS:
        return ColSpec(AnyType(), column, required=required)
    return ColSpec(kind, column, required=required)


def download_model(model_uri: str, dst: str | Path) -> Path:
    """Copy a logged or registered model's files (MLmodel, input example) to ``dst``."""
    with artifact_errors(lambda exc: f"cannot download {model_uri}: {exc.message}"):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))


def size_mb(local: Path) -> float:
    """The size of a downloaded model folder, in MB."""
    return sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6


def signature_inputs(local: Path, required_only: bool = False) -> dict[str, str]:
    """Input column -> MLflow type name, from a downloaded model's signature.

    An ``AnyType`` input reports the type runway declared for it (the MLmodel's
    metadata; ``double`` for a model logged without it), so REST and batch cast
    rows as before.
    """
    from mlflow.models import Model
    from mlflow.types.schema import AnyType

    model = Model.load(str(local / "MLmodel"))
    signature = model.signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return {}
    declared = (model.metadata or {}).get(INPUT_TYPES_KEY) or {}
    return {
        str(col.name): str(declared.get(col.name, NUMBER_TYPE))
        if isinstance(col.type, AnyType)
        else str(getattr(col.type, "name", col.type))
        for col in signature.inputs.inputs
        if not required_only or getattr(col, "required", True)
    }


def input_types_metadata(local: Path) -> dict[str, Any] | None:
    """The MLmodel metadata a copy of this model's signature needs (the ONNX version's)."""
    from mlflow.models import Model

    declared = (Model.load(str(local / "MLmodel")).metadata or {}).get(INPUT_TYPES_KEY)
    return {INPUT_TYPES_KEY: declared} if declared else None


def load_sklearn(local: Path) -> Any:
    """The scikit-learn object of a downloaded model."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(local))


def load_pyfunc(local: Path) -> Any:
    """A downloaded model as MLflow's pyfunc (schema enforcement included)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(local))


def spark_udf(spark: Any, local: Path, result_type: str) -> Any:
    """A Spark UDF scoring with a downloaded model (``mlflow.pyfunc.spark_udf``)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.spark_udf(spark, str(local), result_type=result_type, env_manager="local")


# --- MLflow's scoring server, run by serving's backends -------------------------------------


def import_scoring_server() -> None:
    """Import MLflow's scoring server (seconds): what a backend zygote does before it forks.

    Needs no model, so the zygote (:mod:`runway.serving.zygote`) does it while
    the version is still being fetched.
    """
    import contextlib
    import importlib

    importlib.import_module("mlflow.pyfunc.scoring_server")
    # Loading a model checks its requirements against what is installed, and the first
    # check maps every installed distribution's files to its modules (~1 s of CPU): the
    # map is cached, so building it here takes that second off the load, after the fetch.
    with contextlib.suppress(Exception):  # a private helper: if it moves, the load builds it
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()


def import_loader(model_dir: Path) -> None:
    """Import the loader module of the model in ``model_dir`` (and what it imports on load)."""
    import importlib

    import yaml

    mlmodel = model_dir / "MLmodel"
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function")
    loader = flavor.get("loader_module") if isinstance(flavor, dict) else None
    if isinstance(loader, str):
        for module in (loader, *PRELOAD.get(loader, ())):
            importlib.import_module(module)


# What each loader imports only when it loads a model: imported ahead by the zygote too.
PRELOAD = {
    "runway.core.onnx.model": ("onnxruntime",),
    "runway.core.onnx_model": ("onnxruntime",),
    "mlflow.sklearn": ("sklearn.pipeline", "sklearn.compose", "skops.io"),
}
