"""``runway lighten`` and ``runway export``: the ONNX twin of a version, and its edge bundle."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from runway.cli.common import store

if TYPE_CHECKING:
    from runway.jobs.onnx import LightenResult


def _lighten(args: argparse.Namespace) -> int:
    return lighten_and_print(args.model, args.version)


def lighten_and_print(model: str, version: str) -> int:
    """``runway lighten`` (also ``train --register --lighten`` and ``sweep --lighten``)."""
    from runway.jobs.onnx import lighten

    print_twin(lighten(model, version, settings=store()))
    return 0


def after_register(model: str, version: str, asked: bool) -> int:
    """``--lighten`` given, or the policy's ``lighten.on_register``: the new version's twin."""
    if asked:
        return lighten_and_print(model, version)
    from runway.jobs.register import lighten_if_asked

    done = lighten_if_asked(model, version, store())
    if done is not None and done.twin is not None:
        print("the policy asks for an ONNX twin of each new version (lighten.on_register):")
        print_twin(done.twin)
    elif done is not None and done.refused is not None:
        print(
            f"warning: {model} v{version} has no ONNX twin (the policy asks for one; it does not "
            f"require one):\n{done.refused}",
            file=sys.stderr,
        )
    return 0


def print_twin(result: LightenResult) -> None:
    """The parity report and the registered twin, with the next step."""
    print(result.report.render())
    print(
        f"registered {result.twin.name} v{result.twin.version} (stage None): the ONNX twin of "
        f"v{result.source.version}, {result.onnx_bytes / 1024:.0f} KB, sha256 "
        f"{result.onnx_sha256[:16]}..., run {result.run_id}"
    )
    print(f"next: runway registry promote {result.twin.name} {result.twin.version} --to Staging")


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runway.jobs.export import export

    result = export(
        args.model,
        Path(args.out),
        version=args.version,
        stage=None if args.version else args.stage,
        settings=store(),
    )
    print(
        f"wrote the edge bundle of {args.model} v{result.version} (ONNX twin of "
        f"v{result.source_version}) to {result.out}:"
    )
    for name in result.files:
        print(f"  {name}")
    print(f"try: python {result.out / 'predict.py'} --csv rows.csv")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``lighten`` and ``export``."""
    p = sub.add_parser(
        "lighten",
        help="convert a version to ONNX, check it scores the same, register the twin",
    )
    p.add_argument("model", help="registered model name")
    p.add_argument("version", help="the version to convert")
    p.set_defaults(func=_lighten)

    p = sub.add_parser(
        "export", help="write an edge bundle (model.onnx, contract, predict.py) of a twin"
    )
    p.add_argument("model", help="registered model name")
    p.add_argument("--version", help="a version (a twin, or a version that has one)")
    p.add_argument("--stage", default="Production", help="else the version in this stage")
    p.add_argument("--out", required=True, help="the bundle's directory (created)")
    p.set_defaults(func=_export)
