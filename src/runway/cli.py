"""The ``runway`` command: parse, call the API, print.

Errors users can act on (:class:`RunwayError`) are printed as ``error: ...``
without a traceback and exit non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from runway import __version__
from runway.errors import RunwayError
from runway.tables import format_table

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
    if args.register:
        from runway.registry import register_version

        version = register_version(
            spec.registered_model_name,
            result.model_uri,
            run_id=result.run_id,
            tags={"spec_hash": result.spec_hash, "source_run_id": result.run_id},
            description=f"Trained by run {result.run_id}.",
        )
        print(f"registered {version.name} version {version.version} (stage None)")
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
    if args.promote_to:
        return _promote_and_print(
            result.registered_name, result.registered_version, args.promote_to, None, "", False
        )
    return 0


def _promote_and_print(
    model: str,
    version: str,
    to: str,
    reviewer: str | None,
    comment: str,
    dry_run: bool,
    policy: str | None = None,
) -> int:
    from runway.registry import GateFailure, promote

    try:
        result = promote(
            model,
            version,
            to,
            reviewer=reviewer,
            comment=comment,
            dry_run=dry_run,
            policy_file=policy,
        )
    except GateFailure as failure:
        print(failure.report.render())
        raise
    if result.report is not None:
        print(result.report.render())
    if dry_run:
        passes = result.report is None or result.report.passed
        verdict = "would pass" if passes else "would FAIL"
        print(
            f"dry run: {model} v{version} {result.from_stage} -> {result.to_stage} {verdict}; "
            "nothing changed"
        )
        return 0 if passes else 6
    archived = f"; archived v{', v'.join(result.archived)}" if result.archived else ""
    print(
        f"{model} v{version}: {result.from_stage} -> {result.to_stage}{archived} "
        f"(audit run {result.audit_run_id})"
    )
    return 0


def _cmd_registry_promote(args: argparse.Namespace) -> int:
    return _promote_and_print(
        args.model,
        args.version,
        args.to,
        args.reviewer,
        args.comment or "",
        args.dry_run,
        args.policy,
    )


def _cmd_registry_rollback(args: argparse.Namespace) -> int:
    from runway.registry import rollback

    result = rollback(args.model, reviewer=args.reviewer, comment=args.comment or "")
    print(
        f"{args.model}: v{result.version} back in Production; archived "
        f"v{', v'.join(result.archived)} (audit run {result.audit_run_id})"
    )
    return 0


def _cmd_registry_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from runway.registry import status

    rows = status(args.model)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    if not rows:
        print("no registered models")
        return 0
    table = [
        (
            "model",
            "version",
            "stage",
            "aliases",
            "primary metric",
            "run",
            "approved by",
            "approved at",
            "audit",
        )
    ]
    for r in rows:
        metric = f"{r.metric}={r.value:.4f}" if r.value is not None else "-"
        table.append(
            (
                r.model,
                r.version,
                r.stage,
                ",".join(r.aliases) or "-",
                metric,
                (r.run_id or "-")[:12],
                r.approved_by or "-",
                r.approved_at or "-",
                f"UNAUDITED: {r.unaudited}" if r.unaudited else "ok",
            )
        )
    print("\n".join(format_table(table)))
    return 0


def _cmd_registry_history(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from runway.registry import history

    entries = history(args.model, reports=args.reports)
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=2))
        return 0
    if not entries:
        print(f"{args.model}: no recorded transitions")
        return 0
    table = [("when", "action", "version", "from", "to", "outcome", "by", "replaced", "comment")]
    for e in entries:
        table.append(
            (
                e.when,
                e.action,
                e.version,
                e.from_stage,
                e.to_stage,
                e.outcome,
                e.actor,
                e.replaced or "-",
                e.comment or "-",
            )
        )
    print("\n".join(format_table(table)))
    for e in entries:
        if e.reason:
            print(f"  {e.when} v{e.version} refused: {e.reason}")
        if e.report:
            print(
                f"\n{e.when} {e.action} v{e.version} -> {e.to_stage} (audit run {e.audit_run_id})"
            )
            print(e.report)
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


# --- serve -------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runway.serve import ServeOptions, serve

    if args.workers < 1:
        raise RunwayError(f"--workers must be at least 1, got {args.workers}")
    options = ServeOptions(args.model, host=args.host, port=args.port, workers=args.workers)
    if args.log_dir:
        options.log_dir = Path(args.log_dir)
    serve(options)
    return 0


# --- batch scoring: runway score ---------------------------------------------------------


def _cmd_score(args: argparse.Namespace) -> int:
    from datetime import datetime

    from runway.batch import RejectRateExceeded, score_file

    scored_at = None
    if args.scored_at:
        try:
            scored_at = datetime.fromisoformat(args.scored_at)
        except ValueError as exc:
            raise RunwayError(f"--scored-at: not an ISO date or time: {args.scored_at!r}") from exc
        if scored_at.tzinfo is None:
            from datetime import UTC

            scored_at = scored_at.replace(tzinfo=UTC)
    try:
        result = score_file(
            args.model,
            args.input,
            args.output,
            stage=None if args.version else args.stage,
            version=args.version,
            chunk_rows=args.chunk_rows,
            engine=args.engine,
            key_columns=args.key_column or (),
            max_reject_rate=args.max_reject_rate,
            proba=not args.no_proba,
            scored_at=scored_at,
            progress=not args.quiet,
            spark_master=args.spark_master,
        )
    except RejectRateExceeded as failed:
        print("\n".join(failed.result.summary_lines()))
        raise
    print("\n".join(result.summary_lines()))
    return 0


def _add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="batch-score a CSV/Parquet file (local or s3://) with a registered model"
    )
    p.add_argument("model", help="registered model name")
    p.add_argument(
        "--input", required=True, help="CSV or Parquet file, local path or s3://bucket/key"
    )
    p.add_argument(
        "--output", required=True, help="where scores go (.csv or .parquet, local or s3://)"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--stage",
        default="Production",
        choices=["Production", "Staging"],
        help="score with the version in this stage (default Production)",
    )
    which.add_argument("--version", help="score with this version instead of a stage")
    p.add_argument(
        "--chunk-rows",
        type=int,
        help="rows per chunk; memory grows with it (default RUNWAY_BATCH_CHUNK_ROWS or 100000)",
    )
    p.add_argument(
        "--key-column",
        action="append",
        metavar="COLUMN",
        help="carry only this input column (repeatable) into the output, not all of them",
    )
    p.add_argument(
        "--max-reject-rate",
        type=float,
        help="fail (exit 7, output not written) above this rejected fraction "
        "(default RUNWAY_BATCH_MAX_REJECT_RATE or 0.05)",
    )
    p.add_argument("--no-proba", action="store_true", help="no proba_<class> columns")
    p.add_argument(
        "--scored-at",
        help="the scored_at value, ISO time (default now); a scheduler passes its logical "
        "time so a retry writes identical output",
    )
    p.add_argument("--engine", choices=["pandas", "spark"], default="pandas", help="default pandas")
    p.add_argument(
        "--spark-master",
        default="local[*]",
        help="Spark master for --engine spark (default local[*])",
    )
    p.set_defaults(func=_cmd_score)


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
    p.add_argument(
        "--register", action="store_true", help="register the model as a new version (stage None)"
    )
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
    p.add_argument(
        "--promote-to",
        choices=["Staging"],
        help="then put the registered version through the Staging gates",
    )
    p.set_defaults(func=_cmd_sweep)

    reg = sub.add_parser("registry", help="promote, inspect and roll back registered models")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    p = reg_sub.add_parser("status", help="versions with stage, aliases, metric and approval")
    p.add_argument("model", nargs="?", help="registered model (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_registry_status)
    p = reg_sub.add_parser("promote", help="judge a version's gates and move it to a stage")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--to", required=True, help="Staging, Production or Archived")
    p.add_argument("--reviewer", help="who approves (required for Production)")
    p.add_argument("--comment", help="why; recorded in the audit trail")
    p.add_argument("--dry-run", action="store_true", help="print the gate report, change nothing")
    p.add_argument("--policy", help="policy file (default: registry/<model>.yaml)")
    p.set_defaults(func=_cmd_registry_promote)
    p = reg_sub.add_parser("rollback", help="put the previous Production version back")
    p.add_argument("model")
    p.add_argument("--reviewer", help="who rolls back (default: your user name)")
    p.add_argument("--comment", help="why; recorded in the audit trail")
    p.set_defaults(func=_cmd_registry_rollback)
    p = reg_sub.add_parser("history", help="every recorded transition of a model")
    p.add_argument("model")
    p.add_argument("--reports", action="store_true", help="print each attempt's gate report")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_registry_history)

    p = sub.add_parser(
        "serve", help="serve MODEL's Production version over REST; follows promotions"
    )
    p.add_argument("model", help="registered model name")
    p.add_argument("--port", type=int, default=8080, help="public port (default 8080)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1 only)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="single-worker `mlflow models serve` backends behind the gateway (default 1)",
    )
    p.add_argument("--log-dir", help="where backend logs go (default <tmp>/runway-serve)")
    p.set_defaults(func=_cmd_serve)

    spec = sub.add_parser("spec", help="inspect experiment specs")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True, metavar="SUBCOMMAND")
    p = spec_sub.add_parser("schema", help="print the JSON schema of a spec")
    p.set_defaults(func=_cmd_spec_schema)
    p = spec_sub.add_parser("check", help="validate a spec and the data it points at")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    p.add_argument("--no-data", action="store_true", help="validate the spec file only")
    p.set_defaults(func=_cmd_spec_check)

    _add_score_parser(sub)  # batch scoring
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``runway`` and ``python -m runway``."""
    args = build_parser().parse_args(argv)
    _configure_logging(-1 if args.quiet else args.verbose)
    # Our own progress lines say what is happening; MLflow's per-download bars are noise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return args.func(args)
    except RunwayError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
