"""Gathering the facts the gates judge: both versions scored on the same holdout rows.

The candidate's holdout is rebuilt from the spec its run logged; the candidate
and the current Production version are downloaded, loaded and scored on it,
then :func:`runway.core.governance.gates.judge` decides. Nothing here writes.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from runway.core.governance.gates import GateReport, ModelFacts, judge
from runway.core.governance.policy import PromotionPolicy
from runway.core.threads import limit, threads_for
from runway.core.training.catalog import BINARY_ONLY_METRICS, METRICS
from runway.core.training.data import Split, load_dataset, prepare
from runway.core.training.evaluate import holdout_metrics
from runway.core.training.spec import SPEC_ARTIFACT, ExperimentSpec, load_spec
from runway.errors import RegistryError, RunwayError, TrackingError, UntrustedModel
from runway.jobs.onnx import check_conversion, load_for_scoring
from runway.settings import Settings
from runway.store import models, onnx_models, trust
from runway.store.registry import Stage, VersionInfo, get_version, run_author
from runway.store.tracking import download_artifact

# The latency gate: a warm median of enough single-row calls that measuring the same
# version twice gives the same verdict (measured with threads pinned, as serving runs).
LATENCY_WARMUP_CALLS = 10
LATENCY_MIN_CALLS = 50
LATENCY_MAX_CALLS = 500
LATENCY_BUDGET_SECONDS = 1.0


def evaluate(
    policy: PromotionPolicy,
    candidate: VersionInfo,
    baseline: VersionInfo | None,
    target: Stage,
    reviewer: str | None,
    comment: str,
    settings: Settings,
) -> GateReport:
    """Load both versions, score them on the candidate's holdout, judge the policy.

    Both are checked (:func:`runway.store.trust.fetch_verified`) before they
    are loaded: an untrusted candidate raises :class:`UntrustedModel`; an
    untrusted champion is not loaded and counts as unable to score. The latency
    gate measures with BLAS/OpenMP threads pinned as serving pins them
    (``RUNWAY_THREADS``, :func:`runway.core.threads.threads_for`).
    """
    if not candidate.run_id:
        raise RegistryError(f"{candidate.name} v{candidate.version} has no source run to gate")
    with tempfile.TemporaryDirectory(prefix="runway-gates-") as tmp:
        try:
            spec_file = download_artifact(candidate.run_id, SPEC_ARTIFACT, tmp)
        except TrackingError as exc:
            raise RegistryError(
                f"{candidate.name} v{candidate.version}: run {candidate.run_id} has no "
                f"{SPEC_ARTIFACT}; runway gates versions trained by `runway train`/`sweep`"
            ) from exc
        spec = load_spec(spec_file)
        split = prepare(spec, load_dataset(spec.data))
        X, y = split.X_holdout, split.y_holdout
        evaluation = (
            f"{len(X)} holdout rows of {spec.data.source} (seed {spec.split.seed}, "
            f"holdout {spec.split.holdout:g}) from the candidate's spec"
        )
        metrics = gate_metrics(spec, policy, y)
        if split.target is not None and split.target.positive is not None:
            positive = split.target.positive
            evaluation += f"; positive class {split.target.shown(positive)}"
        threads = threads_for("gate", settings.threads)
        # its promotion seals what this checked (the audit record does not exist yet)
        local = trust.fetch_verified(
            candidate, Path(tmp) / "candidate", settings, onnx_hash="conversion"
        )
        source = _twin_source(candidate, local, Path(tmp), settings)
        facts = _facts(candidate, local, spec, metrics, split, threads)
        base = _baseline_facts(baseline, spec, metrics, split, threads, Path(tmp), settings)
        evaluation += _twin_note(candidate, source, facts, split.X_holdout, threads)
    rules = judge(policy, target, facts, base, spec.primary_metric.name, reviewer)
    return GateReport(
        model=candidate.name,
        version=candidate.version,
        target=target,
        baseline_version=baseline.version if baseline else None,
        evaluation=evaluation,
        rules=rules,
        reviewer=reviewer,
        comment=comment,
    )


def _twin_source(
    candidate: VersionInfo, local: Path, tmp: Path, settings: Settings
) -> tuple[str, Path] | None:
    """For an ONNX version: its source version's number and checked folder, once the
    twin's graph is shown to be runway's conversion of it (:func:`check_conversion`)."""
    source = candidate.tags.get(onnx_models.SOURCE_TAG)
    if candidate.tags.get(onnx_models.KIND_TAG) != onnx_models.TWIN_KIND or not source:
        return None
    mv = get_version(candidate.name, source)
    source_local = trust.fetch_verified(mv, tmp / "source", settings)
    check_conversion(candidate, local, mv, source_local)
    return source, source_local


def _twin_note(
    candidate: VersionInfo,
    source: tuple[str, Path] | None,
    facts: ModelFacts,
    X: pd.DataFrame,
    threads: int,
) -> str:
    """For an ONNX version: its source version's latency beside its own (what converting bought)."""
    if source is None:
        return ""
    number, source_local = source
    try:
        source_ms = latency_ms(source_local, X, threads)
    except (RunwayError, OSError) as exc:
        return f"; ONNX version of v{number} (its latency not measured: {exc})"
    mine = f"{facts.latency_ms:.2f} ms" if facts.latency_ms is not None else "n/a"
    return (
        f"; ONNX version of v{number}: single-row latency {mine} (ONNX) vs "
        f"{source_ms:.2f} ms (v{number})"
    )


def gate_metrics(spec: ExperimentSpec, policy: PromotionPolicy, y: pd.Series) -> list[str]:
    """The spec's metrics plus those the policy gates on, where they apply to the task."""
    wanted = [*spec.metrics, *(t.metric for t in policy.staging.thresholds)]
    improvement = policy.staging.improvement
    if improvement is not None and improvement.metric:
        wanted.append(improvement.metric)
    binary = y.nunique() == 2
    return [
        m
        for m in dict.fromkeys(wanted)
        if METRICS[m].task == spec.task and (binary or m not in BINARY_ONLY_METRICS)
    ]


def _baseline_facts(
    baseline: VersionInfo | None,
    spec: ExperimentSpec,
    metrics: list[str],
    split: Split,
    threads: int,
    tmp: Path,
    settings: Settings,
) -> ModelFacts | None:
    if baseline is None:
        return None
    try:
        local = trust.fetch_verified(baseline, tmp / "baseline", settings)
    except UntrustedModel as exc:  # never loaded; the improvement gate says why
        return ModelFacts(baseline.version, baseline.stage, baseline.run_id, score_error=str(exc))
    return _facts(baseline, local, spec, metrics, split, threads)


def _facts(
    mv: VersionInfo,
    local: Path,
    spec: ExperimentSpec,
    metrics: list[str],
    split: Split,
    threads: int,
) -> ModelFacts:
    scores: dict[str, float] = {}
    latency = error = None
    try:
        model = load_for_scoring(local)  # the pipeline, or an ONNX version
        X, y = split.X_holdout, split.y_holdout
        measured = holdout_metrics(spec, model, X, y, metrics, pos_label=split.pos_label)
        scores = {k.removeprefix("holdout_"): v for k, v in measured.items()}
        latency = latency_ms(local, X, threads)
    except Exception as exc:  # the baseline may not read the candidate's columns
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return ModelFacts(
        version=mv.version,
        stage=mv.stage,
        run_id=mv.run_id,
        author=run_author(mv.run_id),
        metrics=scores,
        score_error=error,
        inputs=models.signature_inputs(local),
        required=tuple(models.signature_inputs(local, required_only=True)),
        latency_ms=latency,
        size_mb=models.size_mb(local),
    )


def latency_ms(local: Path, X: Any, threads: int = 1) -> float:
    """Median in-process single-row predict time through pyfunc (schema checks included).

    Warm (the first calls pay caches and lazy imports), with BLAS/OpenMP pinned to
    ``threads`` as a serving backend runs, without the garbage collector in the
    timed calls, over at least :data:`LATENCY_MIN_CALLS` calls (more while the
    budget lasts): the same version measured twice gets the same verdict.
    """
    model = models.load_pyfunc(local)
    row = X.head(1)
    with limit(threads):
        for _ in range(LATENCY_WARMUP_CALLS):
            model.predict(row)
        gc.collect()
        gc.disable()
        try:
            times = _timed_calls(lambda: model.predict(row))
        finally:
            gc.enable()
    return statistics.median(times)


def _timed_calls(call: Callable[[], object]) -> list[float]:
    """Each call's milliseconds on an idle core: the lesser of its wall and CPU time.

    On a busy host a call waits for a core and its wall time grows while its CPU
    time does not (a fast model measured 64-86 ms against 50 on a loaded 2-core
    host, #31); a call spread over several threads costs more CPU than wall.
    Process CPU time counts the BLAS/OpenMP threads the call uses.
    """
    times: list[float] = []
    deadline = time.perf_counter() + LATENCY_BUDGET_SECONDS
    while len(times) < LATENCY_MIN_CALLS or (
        len(times) < LATENCY_MAX_CALLS and time.perf_counter() < deadline
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        times.append(min(wall, cpu) * 1000)
    return times
