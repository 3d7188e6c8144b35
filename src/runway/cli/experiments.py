"""``runway train``, ``runway sweep`` and ``runway spec``: the data scientist's commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runway.cli.common import add_set_option, columns, store
from runway.cli.onnx import add_onnx_flag
from runway.errors import UsageError
from runway.jobs.interrupt import Interrupted, Terminated, interruption
from runway.settings import is_server_url


def _train(args: argparse.Namespace) -> int:
    from runway.core.training.spec import load_spec, parse_overrides
    from runway.jobs.register import register_training
    from runway.jobs.train import train

    if args.onnx and not args.register:
        raise UsageError("--onnx needs --register (the ONNX version is made of a registered one)")
    spec = load_spec(args.spec, parse_overrides(args.set or []))
    try:
        result = train(
            spec,
            spec_path=args.spec,
            run_name=args.run_name,
            settings=store(),
            overrides=args.set or (),
        )
    except Interrupted as stop:
        return _stopped(stop, "its run ended KILLED")
    primary = f"holdout_{result.primary_metric}"
    print(f"run {result.run_id} FINISHED in experiment {result.experiment_name!r}")
    width = max(len(k) for k in result.metrics)
    for name in [
        primary,
        *sorted(k for k in result.metrics if k.startswith("holdout_") and k != primary),
    ]:
        note = f"  (primary, {spec.primary_metric.direction})" if name == primary else ""
        print(f"  {name:<{width}}  {result.metrics[name]:.4f}{note}")
    for metric in spec.metrics:
        mean, std = result.metrics[f"cv_{metric}"], result.metrics[f"cv_{metric}_std"]
        print(f"  {f'cv_{metric}':<{width}}  {mean:.4f} ± {std:.4f}  ({spec.split.cv_folds} folds)")
    print(f"model  {result.model_uri}")
    if args.register:
        version = register_training(result, spec.registered_model_name)
        print(f"registered {version.name} version {version.version} (stage None)")
    _print_links(result.experiment_id, result.run_id)
    if args.register:
        from runway.cli.onnx import after_register

        return after_register(version.name, version.version, args.onnx)
    return 0


NO_SWEEP = (
    "{path}: the spec has no `sweep:` section; add one naming what to search, e.g. "
    "`sweep: {{trials: 20, space: {{model__C: {{type: float, low: 0.01, high: 10, log: true}}}}}}` "
    "(`runway spec schema` lists every field)"
)


def _has_sweep_section(path: str, overrides: dict[str, Any]) -> None:
    """A spec without ``sweep:`` is told so, not that "the search space is empty"
    (which is what ``--trials`` or ``--timeout`` would make of it)."""
    from pathlib import Path

    from runway.core.validation import read_mapping
    from runway.errors import SpecError

    searched = any(k.startswith(("sweep.space", "sweep.estimators")) for k in overrides)
    if "sweep" not in read_mapping(Path(path), "spec file not found") and not searched:
        raise SpecError(NO_SWEEP.format(path=path))


def _sweep(args: argparse.Namespace) -> int:
    from runway.cli.registry import promote_and_print
    from runway.core.training.spec import load_spec, parse_overrides
    from runway.jobs.register import register_sweep
    from runway.jobs.sweep import sweep

    overrides: dict[str, Any] = parse_overrides(args.set or [])
    _has_sweep_section(args.spec, overrides)
    if args.trials is not None:
        overrides["sweep.trials"] = args.trials
    if args.timeout is not None:
        overrides["sweep.timeout"] = args.timeout
    spec = load_spec(args.spec, overrides)
    if args.join:
        return _join(args, spec)
    try:
        result = sweep(
            spec,
            settings=store(),
            spec_path=args.spec,
            workers=args.workers,
            resume=args.resume,
            study_name=args.study_name,
            storage=args.storage,
        )
    except (Interrupted, Exception) as exc:
        return _sweep_stopped(exc, f"runway sweep {args.spec} --resume")
    version = register_sweep(result)
    trials = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.trials.items()))
    print(f"sweep {result.study_name!r}: {trials}")
    print(f"  parent run  {result.parent_run_id}")
    print(
        f"  best trial  #{result.best_trial}  cv_{spec.primary_metric.name}={result.best_value:.4f}"
    )
    print(f"  params      {result.best_params}")
    for name, value in result.holdout.items():
        print(f"  {name:<11} {value:.4f}")
    print(f"registered {version.name} version {version.version} (stage None)")
    _print_links(result.experiment_id, result.parent_run_id)
    from runway.cli.onnx import after_register

    after_register(version.name, version.version, args.onnx)
    if args.promote_to:
        return promote_and_print(version.name, version.version, args.promote_to, None, "", False)
    return 0


def _join(args: argparse.Namespace, spec: Any) -> int:
    from runway.errors import UsageError
    from runway.jobs.join import join

    if args.resume or args.promote_to:
        raise UsageError("--join runs trials only; --resume and --promote-to are the owner's")
    try:
        result = join(
            spec,
            settings=store(),
            workers=args.workers,
            study_name=args.study_name,
            storage=args.storage,
        )
    except (Interrupted, Exception) as exc:
        return _sweep_stopped(exc, f"runway sweep {args.spec} --join")
    trials = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.trials.items()))
    print(f"joined sweep {result.study_name!r} (parent run {result.parent_run_id}): {trials}")
    print("  the study's owner refits and registers the best trial")
    return 0


def _stopped(stop: Interrupted, what: str) -> int:
    """One line for a job a signal or an outage stopped, and its exit code."""
    print(f"error: {stop.message}: {what}", file=sys.stderr)
    return int(stop.exit_code)


def _sweep_stopped(exc: BaseException, again: str) -> int:
    """A sweep SIGTERM or an absent tracking store stopped (also when its runs could not
    be ended KILLED because the store was away); anything else is raised again."""
    stop = interruption(exc)
    if stop is None:
        raise exc
    what = "the sweep's runs ended KILLED" if isinstance(stop, Terminated) else "the sweep stopped"
    return _stopped(stop, f"{what}; {again} runs the rest")


def _print_links(experiment_id: str, run_id: str) -> None:
    """Where to look in the MLflow UI: the runs table, and the run."""
    from runway.store import tracking

    ui = store().ui_url
    # A tracking server serves its own UI; a local store's is what `make ui` starts.
    served = is_server_url(tracking.tracking_uri())
    print(
        f"look   {'' if served else 'make ui, then '}{tracking.experiment_url(experiment_id, ui)}"
    )
    print(f"run    {tracking.run_url(run_id, experiment_id, ui)}")


def _spec_schema(args: argparse.Namespace) -> int:
    from runway.core.training.spec import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


def _spec_check(args: argparse.Namespace) -> int:
    from runway.core.columns.kinds import KINDS
    from runway.core.training.data import load_dataset, prepare
    from runway.core.training.spec import load_spec, parse_overrides

    spec = load_spec(args.spec, parse_overrides(args.set or []))
    print(f"{args.spec}: spec ok (hash {spec.spec_hash()[:12]})")
    if args.no_data:
        return 0
    split = prepare(spec, load_dataset(spec.data))
    if spec.sweep is not None:
        from runway.jobs.sweep import check_space

        check_space(spec, split)
    kinds = "; ".join(f"{kind}: {columns(split.kind(kind))}" for kind in KINDS if split.kind(kind))
    print(
        f"{spec.data.source}: data ok, {len(split.X_train)} training + {len(split.X_holdout)} "
        f"holdout rows; {kinds}"
    )
    if split.target is not None and split.target.positive is not None:
        positive = split.target.positive
        print(f"  positive class: {split.target.shown(positive)}")
    for note in split.notes:
        print(f"  note: {note}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``train``, ``sweep`` and ``spec check|schema``."""
    p = sub.add_parser("train", help="train one spec as one MLflow run")
    p.add_argument("spec", help="experiment spec (experiments/*.yaml)")
    add_set_option(p)
    p.add_argument("--run-name", help="MLflow run name (default: generated)")
    p.add_argument(
        "--register", action="store_true", help="register the model as a new version (stage None)"
    )
    add_onnx_flag(
        p, "then convert it to ONNX (runway onnx convert), registered as the next version"
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("sweep", help="Optuna sweep of a spec's search space; registers the best")
    p.add_argument("spec", help="experiment spec with a sweep section")
    p.add_argument("--trials", type=int, help="number of trials (overrides sweep.trials)")
    p.add_argument("--timeout", type=float, help="time budget in seconds (overrides sweep.timeout)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on one study")
    p.add_argument("--resume", action="store_true", help="continue the study of this spec")
    p.add_argument(
        "--join",
        action="store_true",
        help="add workers to this spec's study running elsewhere (same RDB storage): "
        "trials only, no refit or registration",
    )
    p.add_argument("--study-name", help="study name (default: <experiment>-<spec hash>)")
    p.add_argument(
        "--storage",
        help="Optuna storage: journal file or RDB URL "
        "(default: RUNWAY_OPTUNA_STORAGE or optuna.journal)",
    )
    add_set_option(p)
    p.add_argument(
        "--promote-to",
        choices=["Staging"],
        help="then put the registered version through the Staging gates",
    )
    add_onnx_flag(p, "convert the registered version to ONNX too (runway onnx convert)")
    p.set_defaults(func=_sweep)

    spec = sub.add_parser("spec", help="inspect experiment specs")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True, metavar="SUBCOMMAND")
    p = spec_sub.add_parser("schema", help="print the JSON schema of a spec")
    p.set_defaults(func=_spec_schema)
    p = spec_sub.add_parser("check", help="validate a spec and the data it points at")
    p.add_argument("spec")
    add_set_option(p)
    p.add_argument("--no-data", action="store_true", help="validate the spec file only")
    p.set_defaults(func=_spec_check)
