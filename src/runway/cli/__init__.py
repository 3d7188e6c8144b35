"""The ``runway`` command: parse, call the API, print.

Errors users can act on (:class:`~runway.errors.RunwayError`) are printed as
``error: ...`` without a traceback and exit with their class's code (the table
in :mod:`runway.errors`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from runway import __version__
from runway.cli import common, deploy, experiments, monitor, onnx, registry, team
from runway.errors import ExitCode, RunwayError, UsageError
from runway.settings import Settings, environment_problems

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


def _report(exc: RunwayError) -> int:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    return int(exc.exit_code)


def _remote(exc: Exception) -> RunwayError | None:
    """What a failure of the MLflow client means, if it is about reaching the server."""
    if type(exc).__module__.split(".")[0] not in {"mlflow", "requests", "urllib3"}:
        return None
    from runway.store.http import explain

    return explain(exc)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="runway", description="MLflow experiment-to-deployment: train, sweep, promote, serve."
    )
    parser.add_argument("--version", action="version", version=f"runway {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    experiments.add_parsers(sub)
    registry.add_parsers(sub)
    deploy.add_parsers(sub)
    monitor.add_parsers(sub)
    onnx.add_parsers(sub)
    team.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``runway`` and ``python -m runway``."""
    args = build_parser().parse_args(argv)
    common.store.cache_clear()  # one command, one configuration (tests call main() repeatedly)
    _configure_logging(-1 if args.quiet else args.verbose)
    # Our own progress lines say what is happening; MLflow's per-download bars are noise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return int(args.func(args))
    except RunwayError as exc:
        return _report(exc)
    except BrokenPipeError:  # before Exception, which it is
        return _reader_went_away()
    except ValidationError as exc:  # a RUNWAY_* variable pydantic refused: name it, no traceback
        if exc.title != Settings.__name__:
            raise
        return _report(UsageError(environment_problems(exc)))
    except Exception as exc:  # a tracking server's 401, 403, silence: one line, not a traceback
        known = _remote(exc)
        if known is None:
            raise
        return _report(known)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


def _reader_went_away() -> int:
    """``runway ... | head``: the reader closed the pipe; stop quietly, as Unix tools do.

    Python would otherwise fail again flushing stdout at exit, so stdout is
    pointed at /dev/null first (the recipe in Python's signal documentation).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return int(ExitCode.OK)
