"""The ``runway`` command: parse, call the API, print.

Errors users can act on (:class:`RunwayError`) are printed as ``error: ...``
without a traceback and exit non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from runway import __version__
from runway.errors import RunwayError

log = logging.getLogger("runway")

_QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "matplotlib", "PIL", "skops", "git")


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _cmd_train(args: argparse.Namespace) -> int:
    from runway.spec import load_spec, parse_overrides
    from runway.train import train

    spec = load_spec(args.spec, parse_overrides(args.set or []))
    result = train(spec, spec_path=args.spec, run_name=args.run_name)
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
        mean, std = result.metrics[f"cv_{metric}_mean"], result.metrics[f"cv_{metric}_std"]
        print(f"  {f'cv_{metric}':<{width}}  {mean:.4f} ± {std:.4f}  ({spec.split.cv_folds} folds)")
    print(f"model  {result.model_uri}")
    print(f"look   make ui, then {result.url}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from runway.spec import load_spec, parse_overrides
    from runway.sweep import sweep

    overrides = parse_overrides(args.set or [])
    if args.trials is not None:
        overrides["sweep.trials"] = args.trials
    if args.timeout is not None:
        overrides["sweep.timeout"] = args.timeout
    spec = load_spec(args.spec, overrides)
    result = sweep(
        spec,
        spec_path=args.spec,
        workers=args.workers,
        resume=args.resume,
        study_name=args.study_name,
        storage=args.storage,
    )
    trials = ", ".join(f"{n} {state.lower()}" for state, n in sorted(result.trials.items()))
    print(f"sweep {result.study_name!r}: {trials}")
    print(f"  parent run  {result.parent_run_id}")
    print(
        f"  best trial  #{result.best_trial}  cv_{spec.primary_metric.name}={result.best_value:.4f}"
    )
    print(f"  params      {result.best_params}")
    for name, value in result.holdout.items():
        print(f"  {name:<11} {value:.4f}")
    print(f"registered {result.registered_name} version {result.registered_version} (stage None)")
    return 0


def _cmd_spec_schema(args: argparse.Namespace) -> int:
    from runway.spec import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


def _cmd_spec_check(args: argparse.Namespace) -> int:
    from runway.data import load_dataset, prepare
    from runway.spec import load_spec, parse_overrides

    spec = load_spec(args.spec, parse_overrides(args.set or []))
    print(f"{args.spec}: spec ok (hash {spec.spec_hash()[:12]})")
    if args.no_data:
        return 0
    split = prepare(spec, load_dataset(spec.data))
    if spec.sweep is not None:
        from runway.sweep import check_space

        check_space(spec, split)
    print(
        f"{spec.data.source}: data ok, {len(split.X_train)} training + {len(split.X_holdout)} "
        f"holdout rows; numeric: {_columns(split.numeric)}; categorical: {_columns(split.categorical)}"
    )
    return 0


def _columns(names: list[str], limit: int = 8) -> str:
    if not names:
        return "-"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="runway", description="MLflow experiment-to-deployment: train, sweep, promote, serve."
    )
    parser.add_argument("--version", action="version", version=f"runway {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    set_help = "override a spec field, e.g. --set estimator.params.max_depth=4 (repeatable)"

    p = sub.add_parser("train", help="train one spec as one MLflow run")
    p.add_argument("spec", help="experiment spec (experiments/*.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    p.add_argument("--run-name", help="MLflow run name (default: generated)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sweep", help="Optuna sweep of a spec's search space; registers the best")
    p.add_argument("spec", help="experiment spec with a sweep section")
    p.add_argument("--trials", type=int, help="number of trials (overrides sweep.trials)")
    p.add_argument("--timeout", type=float, help="time budget in seconds (overrides sweep.timeout)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on one study")
    p.add_argument("--resume", action="store_true", help="continue the study of this spec")
    p.add_argument("--study-name", help="study name (default: <experiment>-<spec hash>)")
    p.add_argument(
        "--storage",
        help="Optuna storage: journal file or RDB URL "
        "(default: RUNWAY_OPTUNA_STORAGE or optuna.journal)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    p.set_defaults(func=_cmd_sweep)

    spec = sub.add_parser("spec", help="inspect experiment specs")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True, metavar="SUBCOMMAND")
    p = spec_sub.add_parser("schema", help="print the JSON schema of a spec")
    p.set_defaults(func=_cmd_spec_schema)
    p = spec_sub.add_parser("check", help="validate a spec and the data it points at")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    p.add_argument("--no-data", action="store_true", help="validate the spec file only")
    p.set_defaults(func=_cmd_spec_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``runway`` and ``python -m runway``."""
    args = build_parser().parse_args(argv)
    _configure_logging(-1 if args.quiet else args.verbose)
    try:
        return args.func(args)
    except RunwayError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
