"""Retraining a Production version: its own spec, on fresh data, up to the Staging gates.

The spec logged with the version is rerun (train or sweep) on a new data
source, or on the original data plus labelled rows from the prediction log;
the new version is registered with why it was trained (the reason, the
monitoring run that triggered it, the version it retrains) and put through the
Staging gates against the champion. Production is never touched: the reviewer
the policy names promotes, or not.
"""

from __future__ import annotations

import ast
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd

from runway.core.governance.gates import GateReport
from runway.core.training.data import load_dataset
from runway.core.training.spec import SPEC_ARTIFACT, ExperimentSpec, load_spec, spec_from_dict
from runway.errors import DataError, GateFailure, RegistryError, TrackingError
from runway.jobs import promote as promotion
from runway.jobs.interrupt import terminable
from runway.jobs.register import PolicyLighten, lighten_if_asked, register_sweep, register_training
from runway.jobs.study import default_study_name, trial_spec
from runway.jobs.sweep import sweep
from runway.jobs.sweep_parent import ESTIMATOR_TAG
from runway.jobs.train import train
from runway.settings import Settings, get_settings
from runway.store import registry, tracking
from runway.store.tracking import download_artifact

log = logging.getLogger(__name__)

RETRAIN = "runway.retrain."


@dataclass
class RetrainResult:
    """What a retrain produced, and how far it got."""

    model: str
    from_version: str
    version: str
    run_id: str
    reason: str
    trigger_run: str
    data: str
    staged: bool
    report: GateReport | None
    refused: str = ""
    twin: PolicyLighten | None = None  # the ONNX version the policy's onnx.on_register asked for


@terminable()  # SIGTERM ends the retrain's runs KILLED, as Ctrl-C does
def retrain(
    model: str,
    *,
    reason: str = "manual",
    trigger_run: str = "",
    data: str | None = None,
    extra_rows: pd.DataFrame | None = None,
    mode: str = "train",
    trials: int | None = None,
    version: str | None = None,
    settings: Settings | None = None,
) -> RetrainResult:
    """Rerun the spec of ``model``'s Production version (or ``version``) and stage the result.

    ``data`` replaces the spec's data source; ``extra_rows`` (features and the
    target) are appended to the training data. ``mode`` is ``train`` or ``sweep``.

    Raises:
        RegistryError: no such model or version, or it has no logged spec.
    """
    settings = settings or get_settings()
    source = registry.resolve(model, "Production", version)
    spec = _logged_spec(model, source.version, source.run_id)
    spec = _with_data(spec, data, extra_rows, settings, f"{model}-v{source.version}")
    tags = {
        f"{RETRAIN}reason": reason,
        f"{RETRAIN}trigger_run": trigger_run,
        f"{RETRAIN}from_version": source.version,
        f"{RETRAIN}data": spec.data.source,
    }
    log.info(
        "retraining %s v%s (%s) on %s as a %s",
        *(model, source.version, reason, spec.data.source, mode),
    )
    version, run_id = _fit(model, spec, mode, trials, settings, source.version, source.run_id or "")
    tags[f"{RETRAIN}params"] = "sweep" if mode == "sweep" else "champion"
    registry.set_version_tags(model, version, tags)
    result = RetrainResult(
        model, source.version, version, run_id, reason, trigger_run, spec.data.source, False, None
    )
    try:
        staged = promotion.promote(
            model, version, "Staging", comment=f"retrained ({reason})", settings=settings
        )
        result.staged, result.report = True, staged.report
    except GateFailure as failure:
        result.report = cast(GateReport, failure.report)
        result.refused = str(failure)
    result.twin = lighten_if_asked(model, version, settings)
    return result


def _fit(
    model: str,
    spec: ExperimentSpec,
    mode: str,
    trials: int | None,
    settings: Settings,
    from_version: str,
    champion_run: str,
) -> tuple[str, str]:
    """Train or sweep ``spec`` and register the result under ``model``: (version, run id).

    A train starts from the champion's resolved parameters (a swept champion's
    tuned values, not the spec's defaults); a sweep searches the spec's space again.
    """
    if mode == "sweep":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        swept = sweep(
            spec if trials is None else _with_trials(spec, trials),
            settings=settings,
            study_name=f"{default_study_name(spec)}-retrain-{stamp}",
        )
        return register_sweep(swept).version, swept.parent_run_id
    spec, params = _champion_params(spec, champion_run)
    run_name = f"retrain {model} v{from_version}"
    trained = train(spec, settings=settings, run_name=run_name, params=params)
    return register_training(trained, model).version, trained.run_id


def _champion_params(spec: ExperimentSpec, run_id: str) -> tuple[ExperimentSpec, dict[str, Any]]:
    """The champion's estimator and its ``step__param`` values, as its run logged them."""
    estimator = tracking.run_tags(run_id).get(ESTIMATOR_TAG, spec.estimator.name)
    logged = tracking.run_params(run_id)
    params = {key: _value(text) for key, text in logged.items() if "__" in key}
    if params:
        log.info("starting from the parameters of run %s (%s)", run_id, estimator)
    return trial_spec(spec, estimator), params


def _value(text: str) -> Any:
    """A logged param back as Python: ``0.144`` a float, ``14`` an int, ``None`` None."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a string param (``squared_error``) is logged bare


def _logged_spec(model: str, version: str, run_id: str | None) -> ExperimentSpec:
    if not run_id:
        raise RegistryError(f"{model} v{version} has no source run, so no spec to retrain from")
    with tempfile.TemporaryDirectory(prefix="runway-retrain-") as tmp:
        try:
            path = download_artifact(run_id, SPEC_ARTIFACT, tmp)
        except TrackingError as exc:
            raise RegistryError(
                f"{model} v{version}: run {run_id} has no {SPEC_ARTIFACT}; runway retrains "
                "versions trained by `runway train` or `runway sweep`"
            ) from exc
        return load_spec(path)


def _with_data(
    spec: ExperimentSpec,
    data: str | None,
    extra_rows: pd.DataFrame | None,
    settings: Settings,
    name: str,
) -> ExperimentSpec:
    """The spec on ``data``, with ``extra_rows`` appended (written as a Parquet snapshot)."""
    doc = spec.model_dump(mode="json")
    if data:
        doc["data"]["source"] = data
    if extra_rows is not None and len(extra_rows):
        base = load_dataset(spec_from_dict(doc).data).frame
        extra_rows = _like(extra_rows, base, spec.data.target)
        combined = pd.concat([base, extra_rows], ignore_index=True)
        folder = Path(settings.retrain_data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.parquet"
        combined.to_parquet(path, index=False)
        log.info(
            "training data: %d original + %d labelled rows -> %s", len(base), len(extra_rows), path
        )
        doc["data"]["source"] = str(path)
    return spec_from_dict(doc)


def _like(rows: pd.DataFrame, base: pd.DataFrame, target: str) -> pd.DataFrame:
    """Labelled rows with the training data's column types (a CSV label "1" is the target 1)."""
    rows = rows.copy()
    for name in rows.columns:
        if name in base and pd.api.types.is_numeric_dtype(base[name]):
            converted = pd.to_numeric(rows[name], errors="coerce")
            if name == target and converted.isna().any():
                bad = rows[name][converted.isna()].iloc[0]
                raise DataError(
                    f"labels: {bad!r} is not a {base[name].dtype} like the target {target!r}"
                )
            rows[name] = converted.astype(base[name].dtype) if name == target else converted
        elif name in base:
            rows[name] = _like_column(rows[name], base[name])
    return rows


def _like_column(values: pd.Series, base: pd.Series) -> pd.Series:
    """A non-numeric column of labelled rows as the training data holds it.

    The prediction log keeps a datetime as a timestamp while a CSV holds ISO text:
    mixed in one column, Parquet cannot write it.
    """
    if pd.api.types.is_datetime64_any_dtype(base):
        parsed = pd.to_datetime(values, errors="coerce", utc=base.dt.tz is not None)
        return parsed.astype(base.dtype)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else v.isoformat()).astype(object)
    if values.dtype == object:
        return values.map(lambda v: v.isoformat() if isinstance(v, datetime) else v)
    return values


def _with_trials(spec: ExperimentSpec, trials: int) -> ExperimentSpec:
    doc = spec.model_dump(mode="json")
    doc["sweep"]["trials"] = trials
    return spec_from_dict(doc)
