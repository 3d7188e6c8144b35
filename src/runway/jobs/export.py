"""``runway onnx export``: an edge bundle of a version converted to ONNX.

The bundle runs on a device with Python, numpy and onnxruntime only (no MLflow,
scikit-learn or pandas): ``model.onnx`` (the registered twin, checked by
:func:`runway.store.trust.fetch_verified` before it is copied), ``contract.json``
(the data contract the source was trained with) with its JSON Schema
(``contract.schema.json``, generated from :class:`runway.core.columns.schema.DataContract`),
``twin.json`` (what it twins,
its hash and parity figures), ``predict.py`` (:mod:`runway.core.onnx.edge_predict`,
standalone) and a README.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runway.core.columns.schema import SCHEMA_FILE, contract_json_schema
from runway.core.governance.trust import TWIN_ONNX, TWIN_RECORD
from runway.core.onnx import edge_predict
from runway.errors import UsageError
from runway.settings import Settings, get_settings
from runway.store import onnx_models, registry, tracking, trust
from runway.store.registry import VersionInfo

README = """# Edge bundle: {model} v{version}

The ONNX version of {model} v{source} (runway onnx convert), checked equal to it on
{rows} rows (max |difference| {diff}, tolerance {tolerance}). SHA-256 of
model.onnx: {sha}.

Needs Python 3.9+, numpy and onnxruntime; nothing else:

    python -m venv .venv && .venv/bin/pip install numpy onnxruntime
    .venv/bin/python predict.py --csv rows.csv [--proba]
    .venv/bin/python predict.py --json rows.json     # a JSON list, JSON lines, or dataframe_records

Each row is checked against contract.json (the columns, types, integer ranges and
categories the model was trained on; contract.schema.json is its JSON Schema)
before it is scored; one JSON line is
printed per input row: {{"row": 0, "prediction": ...}} or {{"row": 1, "rejected":
[...]}}. Exit status 0 (all scored), 3 (some rows rejected), 2 (usage, columns).
`python predict.py --help` lists the options (unknown columns, unseen
categories, missing values, values outside the training range).
"""


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle went and what it holds."""

    out: Path
    version: str
    source_version: str
    files: list[str]


def twin_of(model: str, mv: VersionInfo) -> VersionInfo:
    """``mv`` if it is a twin, else its newest twin; refuses when it has none."""
    if mv.tags.get(onnx_models.KIND_TAG) == onnx_models.TWIN_KIND:
        return mv
    twins = [
        v
        for v in registry.versions(model)
        if v.tags.get(onnx_models.KIND_TAG) == onnx_models.TWIN_KIND
        and v.tags.get(onnx_models.SOURCE_TAG) == mv.version
    ]
    if not twins:
        raise UsageError(
            f"{model} v{mv.version} has no ONNX version; make one with `runway onnx convert {model} "
            f"{mv.version}` (or export a twin version with --version)"
        )
    return twins[-1]


def export(
    model: str,
    out: Path,
    version: str | None = None,
    stage: str | None = "Production",
    settings: Settings | None = None,
) -> ExportResult:
    """Write the bundle of ``model``'s twin (of ``version``, else of the ``stage`` version)."""
    settings = settings or get_settings()
    resolved = registry.resolve(model, stage, version)
    chosen = twin_of(model, registry.get_version(model, resolved.version))
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runway-export-") as tmp:
        local = trust.fetch_verified(chosen, Path(tmp), settings)
        shutil.copy(local / TWIN_ONNX, out / "model.onnx")
        shutil.copy(local / TWIN_RECORD, out / "twin.json")
    assert chosen.run_id is not None  # fetch_verified refuses a version without one
    contract = tracking.load_contract(chosen.run_id)
    (out / "contract.json").write_text(contract.to_json())
    (out / SCHEMA_FILE).write_text(json.dumps(contract_json_schema(), indent=2))
    shutil.copy(edge_predict.__file__, out / "predict.py")
    record = json.loads((out / "twin.json").read_text())
    parity = record.get("parity", {})
    (out / "README.md").write_text(
        README.format(
            model=model,
            version=chosen.version,
            source=record.get("source_version", "?"),
            rows=parity.get("rows_checked", "?"),
            diff=f"{parity.get('max_abs_diff', float('nan')):.3g}",
            tolerance=parity.get("tolerance", "?"),
            sha=record.get("onnx_sha256", "?"),
        )
    )
    files = sorted(p.name for p in out.iterdir())
    return ExportResult(out, chosen.version, str(record.get("source_version", "")), files)
