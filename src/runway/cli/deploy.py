"""``runway serve`` and ``runway score``: the Production model meets data."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from runway.cli.common import store
from runway.errors import ExitCode, UsageError
from runway.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runway.serving.launch import ServeOptions, launch

    settings = get_settings()
    model = args.model or settings.serve_model
    if not model:
        raise UsageError("runway serve needs a MODEL: give it, or set RUNWAY_SERVE_MODEL")
    workers = settings.serve_workers if args.workers is None else args.workers
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    options = ServeOptions(
        model,
        host=args.host or settings.serve_host,
        port=settings.serve_port if args.port is None else args.port,
        workers=workers,
    )
    if args.log_dir:
        options.log_dir = Path(args.log_dir)
    launched = launch(options, settings)  # its children first: they import while it does
    try:
        from runway.serving.serve import serve
    except BaseException:
        launched.abandon()
        raise
    serve(options, settings, launched)  # not store(): the gateway never imports MLflow
    return 0


def _scored_at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--scored-at: not an ISO date or time: {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _score(args: argparse.Namespace) -> int:
    from runway.jobs.interrupt import Terminated
    from runway.scoring.batch import Engine, RejectRateExceeded, ScoringOptions, score_file

    options = ScoringOptions(
        key_columns=tuple(args.key_column or ()),
        chunk_rows=args.chunk_rows,
        max_reject_rate=args.max_reject_rate,
        proba=not args.no_proba,
        scored_at=_scored_at(args.scored_at),
        progress=not args.quiet,
    )
    engine: Engine | None = None
    if args.engine == "spark":
        from runway.scoring.spark import SparkEngine

        engine = SparkEngine(args.spark_master, progress=not args.quiet)
    try:
        result = score_file(
            args.model,
            args.input,
            args.output,
            options,
            stage=None if args.version else args.stage,
            version=args.version,
            engine=engine,
            settings=store(),
        )
    except RejectRateExceeded as failed:
        print("\n".join(failed.result.summary_lines()))
        raise
    except Terminated:
        print(
            "error: runway score terminated (SIGTERM): no output written, nothing logged",
            file=sys.stderr,
        )
        return int(ExitCode.TERMINATED)
    print("\n".join(result.summary_lines()))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``serve`` and ``score``."""
    p = sub.add_parser(
        "serve", help="serve MODEL's Production version over REST; follows promotions"
    )
    p.add_argument("model", nargs="?", help="registered model name (default: $RUNWAY_SERVE_MODEL)")
    p.add_argument("--port", type=int, help="public port (default $RUNWAY_SERVE_PORT, else 8080)")
    p.add_argument(
        "--host",
        help="address to listen on (default $RUNWAY_SERVE_HOST, else 127.0.0.1 only)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="backends (single-worker scoring servers) behind the gateway; with 2 or more a "
        "crashed backend costs only its requests in flight (default $RUNWAY_SERVE_WORKERS, "
        "else 2, ~120 MB each)",
    )
    p.add_argument(
        "--log-dir",
        help="where backend logs go, owner-only (default $XDG_STATE_HOME/runway/serve, "
        "else ~/.local/state/runway/serve)",
    )
    p.set_defaults(func=_serve)
    _add_score_parser(sub)


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
    p.set_defaults(func=_score)
