"""``runway lighten`` and ``runway export``: the ONNX twin of a version, and its edge bundle."""

from __future__ import annotations

import argparse

from runway.cli.common import store


def _lighten(args: argparse.Namespace) -> int:
    return lighten_and_print(args.model, args.version)


def lighten_and_print(model: str, version: str) -> int:
    """``runway lighten`` (also ``train --register --lighten`` and ``sweep --lighten``)."""
    from runway.jobs.lighten import lighten

    result = lighten(model, version, settings=store())
    print(result.report.render())
    print(
        f"registered {result.twin.name} v{result.twin.version} (stage None): the ONNX twin of "
        f"v{result.source.version}, {result.onnx_bytes / 1024:.0f} KB, sha256 "
        f"{result.onnx_sha256[:16]}..., run {result.run_id}"
    )
    print(f"next: runway registry promote {result.twin.name} {result.twin.version} --to Staging")
    return 0


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
