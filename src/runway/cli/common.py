"""What every command shares: settings read once, MLflow configured once."""

from __future__ import annotations

import argparse
import functools

from runway.settings import Settings, get_settings

SET_HELP = "override a spec field, e.g. --set estimator.params.max_depth=4 (repeatable)"


@functools.cache
def store() -> Settings:
    """The settings, with MLflow pointed at their store: once per process, on first need.

    Commands that never touch MLflow (``spec schema``, ``--help``) do not pay
    for importing it.
    """
    from runway.store import tracking, unclosed

    settings = tracking.configure(get_settings())
    unclosed.close_remembered()  # runs a store outage left RUNNING, now that it may be back
    return settings


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set key.path=value`` (repeatable)."""
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)


def columns(names: list[str], limit: int = 8) -> str:
    """Column names for one line of output, the rest counted."""
    if not names:
        return "-"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"
