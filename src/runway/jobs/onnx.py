"""``runway onnx convert``: a version converted to ONNX, checked equal, registered as a candidate.

The version is fetched and checked (:func:`runway.store.trust.fetch_verified`),
its pipeline converted (:func:`runway.core.onnx.convert.to_onnx`), and the twin
scored against it on the holdout its spec rebuilds and on an edge-case frame
(:mod:`runway.core.onnx.parity`). Only a twin that meets the tolerance on every
row is logged (its own run: the source's spec, contract and profile, the parity
report, the twin's holdout metrics) and registered as a new version of the same
model, stage None, tagged with the version it twins. From there it climbs the
gates like any candidate. Anything short of parity is refused
(:class:`LightenRefused`, exit 6) with the report: nothing is registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from runway.core.columns.schema import DataContract
from runway.core.onnx.model import ONNX_FILE, OnnxTwin, sha256_file
from runway.core.onnx.parity import ParityReport, check_parity, edge_frame
from runway.core.training.data import Split, load_dataset, prepare
from runway.core.training.evaluate import holdout_metrics
from runway.core.training.spec import SPEC_ARTIFACT, load_spec
from runway.errors import LightenRefused, UntrustedModel
from runway.settings import Settings, get_settings
from runway.store import models, onnx_models, registry, tracking, trust
from runway.store.registry import VersionInfo

log = logging.getLogger(__name__)

COPIED_RUN_TAGS = (
    "spec_hash",
    "data_digest",
    "runway.task",
    "runway.estimator",
    "runway.primary_metric",
    "runway.registered_model_name",
    "runway.spec_path",
)


@dataclass(frozen=True)
class LightenResult:
    """The registered twin and how it compared with its source."""

    source: VersionInfo
    twin: VersionInfo
    run_id: str
    report: ParityReport
    onnx_sha256: str
    onnx_bytes: int


class TwinClassifier(ClassifierMixin, BaseEstimator):
    """A loaded twin seen as a fitted scikit-learn classifier (for the metric scorers)."""

    def __init__(self, model: Any = None) -> None:
        self.model = model

    def fit(self, X: Any, y: Any = None) -> TwinClassifier:  # already fitted
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.model.classes)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


class TwinRegressor(RegressorMixin, BaseEstimator):
    """A loaded twin seen as a fitted scikit-learn regressor."""

    def __init__(self, model: Any = None) -> None:
        self.model = model

    def fit(self, X: Any, y: Any = None) -> TwinRegressor:
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict(X))


def as_estimator(local: Path, threads: int = 1) -> BaseEstimator:
    """A downloaded, checked twin folder as something scikit-learn's scorers take."""
    from runway.core.governance.trust import TWIN_DATA

    loaded = OnnxTwin(local / TWIN_DATA / ONNX_FILE, threads=threads)
    return TwinClassifier(loaded) if loaded.is_classifier else TwinRegressor(loaded)


def load_for_scoring(local: Path, threads: int = 1) -> Any:
    """The model in a checked folder, for in-process scoring: the pipeline, or the twin
    (on ``threads`` onnxruntime threads)."""
    if onnx_models.is_twin_folder(local):
        return as_estimator(local, threads)
    return models.load_sklearn(local)


def lighten(model: str, version: str, settings: Settings | None = None) -> LightenResult:
    """Convert, check and register the ONNX version of ``model`` v``version``.

    Raises:
        LightenRefused: no twin that scores like the version (the report says why).
        UntrustedModel: the source version fails runway's trust checks.
    """
    settings = settings or get_settings()
    source = registry.get_version(model, version)
    if source.tags.get(onnx_models.KIND_TAG) == onnx_models.TWIN_KIND:
        raise LightenRefused(f"{model} v{version} is an ONNX version already")
    if not source.run_id:
        raise LightenRefused(f"{model} v{version} names no source run (no spec, no holdout)")
    with tempfile.TemporaryDirectory(prefix="runway-onnx-") as tmp:
        folder = Path(tmp)
        spec_file = tracking.download_artifact(source.run_id, SPEC_ARTIFACT, folder / "spec")
        spec = load_spec(spec_file)
        local = trust.fetch_verified(source, folder / "source", settings)
        pipeline = models.load_sklearn(local)
        contract = tracking.load_contract(source.run_id)
        split = prepare(spec, load_dataset(spec.data))
        label = f"{model} v{version} ({type(pipeline.steps[-1][1]).__name__})"
        try:
            onnx_file, report = convert_and_check(pipeline, contract, split, spec.task, folder)
        except LightenRefused as exc:
            raise _refused(source, f"{label}: no ONNX version: {exc}; nothing registered") from exc
        if not report.ok:
            raise _refused(
                source,
                f"{label}: the ONNX version does not score like the version; nothing registered\n"
                + report.render(),
            )
        sha = sha256_file(onnx_file)
        record = _record(source, report, sha)
        metrics = holdout_metrics(
            spec, _adapter(OnnxTwin(onnx_file)), split.X_holdout, split.y_holdout
        )
        run_id, uri = _log_run(source, onnx_file, record, local, report, spec_file, metrics)
        size = onnx_file.stat().st_size
    registered = registry.register_version(
        model,
        uri,
        tags=_version_tags(source, report, sha),
        description=f"ONNX version of v{version} (runway onnx convert, run {run_id}).",
    )
    tracking.set_run_tag(source.run_id, onnx_models.TWIN_RUN_TAG, f"v{registered.version}")
    log.info("registered %s v%s: the ONNX version of v%s", model, registered.version, version)
    return LightenResult(source, registered, run_id, report, sha, size)


def check_conversion(
    twin: VersionInfo, twin_local: Path, source: VersionInfo, source_local: Path
) -> None:
    """Refuse an ONNX version whose graph is not what runway converts from its source here.

    Before a promotion seals a twin's hash, the conversion hash is a version tag anyone
    who registers may rewrite together with the file; re-converting the (checked) source
    version is what only runway can produce. The conversion is byte-for-byte the same
    for one onnx/skl2onnx release, so a twin converted under another one is refused too:
    convert it again here.
    """
    from runway.core.onnx.convert import to_onnx

    contract = tracking.load_contract(source.run_id or "")
    graph = to_onnx(models.load_sklearn(source_local), contract).SerializeToString()
    expected = hashlib.sha256(graph).hexdigest()
    found = [sha256_file(f) for f in sorted(twin_local.rglob(ONNX_FILE))]
    if found != [expected]:
        raise UntrustedModel(
            f"refusing {twin.name} v{twin.version}: its ONNX graph (sha256 "
            f"{', '.join(found) or 'none'}) is not what runway converts from v{source.version} "
            f"({expected}); convert it again with `runway onnx convert {twin.name} "
            f"{source.version}`; "
            "nothing from it was loaded"
        )


REFUSAL_ARTIFACT = "onnx/refused.txt"


def _refused(source: VersionInfo, why: str) -> LightenRefused:
    """The refusal, its report written beside the source run (what to change is in ``why``)."""
    assert source.run_id is not None
    kinds = "numeric, boolean, datetime, categorical (onehot or ordinal; not target)"
    text = f"{why}\n\nColumn kinds an ONNX version takes: {kinds}.\n"
    tracking.log_run_text(source.run_id, text, REFUSAL_ARTIFACT)
    return LightenRefused(f"{why}\nreport: {REFUSAL_ARTIFACT} of run {source.run_id}")


def convert_and_check(
    pipeline: Any, contract: DataContract, split: Split, task: str, folder: Path
) -> tuple[Path, ParityReport]:
    """The twin written to ``folder/model.onnx`` and its parity on the holdout and edge cases."""
    import onnx

    from runway.core.onnx.convert import to_onnx

    started = time.perf_counter()
    converted = to_onnx(pipeline, contract)
    onnx_file = folder / ONNX_FILE
    onnx.save_model(converted, str(onnx_file))
    log.info(
        "converted in %.2fs (%d KB)",
        time.perf_counter() - started,
        onnx_file.stat().st_size // 1024,
    )
    frames = {"holdout": split.X_holdout, "edge": edge_frame(contract, split.X_holdout)}
    report = check_parity(pipeline, OnnxTwin(onnx_file), frames, task == "classification")
    return onnx_file, report


def _record(source: VersionInfo, report: ParityReport, sha: str) -> dict[str, Any]:
    """``twin.json``: what the twin is, and the figures it was admitted on."""
    return {
        "model": source.name,
        "source_version": source.version,
        "source_run_id": source.run_id,
        "onnx_sha256": sha,
        "estimator": report.estimator,
        "parity": {
            "max_abs_diff": report.max_abs_diff,
            "tolerance": report.tolerance,
            "rows_checked": report.rows_checked,
        },
    }


def _version_tags(source: VersionInfo, report: ParityReport, sha: str) -> dict[str, str]:
    max_diff, tolerance, rows = onnx_models.PARITY_TAGS
    return {
        onnx_models.KIND_TAG: onnx_models.TWIN_KIND,
        onnx_models.SOURCE_TAG: source.version,
        onnx_models.SHA_TAG: sha,
        max_diff: f"{report.max_abs_diff:.3g}",
        tolerance: f"{report.tolerance:g}",
        rows: str(report.rows_checked),
        "source_run_id": source.run_id or "",
        "spec_hash": source.tags.get("spec_hash", ""),
    }


def _log_run(
    source: VersionInfo,
    onnx_file: Path,
    record: dict[str, Any],
    local: Path,
    report: ParityReport,
    spec_file: Path,
    metrics: dict[str, float],
) -> tuple[str, str]:
    """The conversion run: the source's spec, contract and profile, the parity report, the twin."""
    assert source.run_id is not None
    source_tags = tracking.run_tags(source.run_id)
    tags = {k: source_tags[k] for k in COPIED_RUN_TAGS if k in source_tags}
    tags |= {"runway.twin_of_run": source.run_id, onnx_models.KIND_TAG: onnx_models.TWIN_KIND}
    experiment_id = tracking.run_experiment(source.run_id)
    run_name = f"onnx-twin-of-v{source.version}"
    with tracking.run(experiment_id, run_name, tags) as active:
        tracking.log_artifact(spec_file, Path(SPEC_ARTIFACT).parent.as_posix())
        for artifact in (tracking.CONTRACT_ARTIFACT, tracking.PROFILE_ARTIFACT):
            doc = tracking.load_json_artifact(source.run_id, artifact)
            tracking.log_dict(doc, artifact)
        tracking.log_dict(report.to_dict(), onnx_models.PARITY_ARTIFACT)
        tracking.log_text(report.render(), onnx_models.PARITY_ARTIFACT.replace(".json", ".txt"))
        metrics = metrics | {
            "parity_max_abs_diff": report.max_abs_diff,
            "parity_rows": float(report.rows_checked),
            "onnx_kb": onnx_file.stat().st_size / 1024,
        }
        tracking.log_metrics(metrics)
        uri = onnx_models.log_twin(onnx_file, record, local)
        log.info("logged the twin: %s", json.dumps(record["parity"]))
        return str(active.info.run_id), uri


def _adapter(loaded: OnnxTwin) -> BaseEstimator:
    return TwinClassifier(loaded) if loaded.is_classifier else TwinRegressor(loaded)
