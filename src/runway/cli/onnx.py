"""``runway onnx convert`` and ``runway onnx export``: a version as ONNX, and its edge bundle.

``runway lighten`` and ``runway export``, the names before, still work, with a note.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runway.cli.common import store

if TYPE_CHECKING:
    from runway.jobs.onnx import LightenResult


def _convert(args: argparse.Namespace) -> int:
    return lighten_and_print(args.model, args.version)


def lighten_and_print(model: str, version: str) -> int:
    """``runway onnx convert`` (also ``train --register --onnx`` and ``sweep --onnx``)."""
    from runway.jobs.onnx import lighten

    print_twin(lighten(model, version, settings=store()))
    return 0


def after_register(model: str, version: str, asked: bool) -> int:
    """``--onnx`` given, or the policy's ``onnx.on_register``: the new version as ONNX."""
    if asked:
        return lighten_and_print(model, version)
    from runway.jobs.register import lighten_if_asked

    done = lighten_if_asked(model, version, store())
    if done is not None and done.twin is not None:
        print("the policy asks for an ONNX version of each new version (onnx.on_register):")
        print_twin(done.twin)
    elif done is not None and done.refused is not None:
        print(
            f"warning: {model} v{version} has no ONNX version (the policy asks for one; it does not "
            f"require one):\n{done.refused}",
            file=sys.stderr,
        )
    return 0


def print_twin(result: LightenResult) -> None:
    """The parity report and the registered twin, with the next step."""
    print(result.report.render())
    print(
        f"registered {result.twin.name} v{result.twin.version} (stage None): the ONNX version of "
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
        f"wrote the edge bundle of {args.model} v{result.version} (ONNX version of "
        f"v{result.source_version}) to {result.out}:"
    )
    for name in result.files:
        print(f"  {name}")
    print(f"try: python {result.out / 'predict.py'} --csv rows.csv")
    return 0


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: sets the new one's destination, with a one-line note."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any):
        self.new = new
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        print(f"note: {option} is now {self.new}; the old spelling still works", file=sys.stderr)
        setattr(namespace, self.dest, True)


def add_onnx_flag(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--onnx`` (and the deprecated ``--lighten``) on ``train`` and ``sweep``."""
    p.add_argument("--onnx", action="store_true", help=help_text)
    p.add_argument(
        "--lighten", action=DeprecatedFlag, dest="onnx", new="--onnx", help=argparse.SUPPRESS
    )


def _deprecated(old: str, new: str, func: Callable[[argparse.Namespace], int]) -> Any:
    def run(args: argparse.Namespace) -> int:
        print(
            f"note: `runway {old}` is now `runway {new}`; the old name still works", file=sys.stderr
        )
        return func(args)

    return run


def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name")
    p.add_argument("version", help="the version to convert")


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name")
    p.add_argument("--version", help="a version (an ONNX one, or a version that has one)")
    p.add_argument("--stage", default="Production", help="else the version in this stage")
    p.add_argument("--out", required=True, help="the bundle's directory (created)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``onnx convert`` and ``onnx export`` (and the old ``lighten`` and ``export``)."""
    group = sub.add_parser("onnx", help="a version as ONNX: convert it, export its edge bundle")
    onnx_sub = group.add_subparsers(dest="onnx_command", required=True, metavar="COMMAND")
    p = onnx_sub.add_parser(
        "convert",
        help="convert a version to ONNX, check it scores the same, register it as a new version",
    )
    _convert_args(p)
    p.set_defaults(func=_convert)
    p = onnx_sub.add_parser(
        "export", help="write an edge bundle (model.onnx, contract, predict.py) of an ONNX version"
    )
    _export_args(p)
    p.set_defaults(func=_export)

    # The names before `runway onnx` (no help: they stay out of the command list).
    p = sub.add_parser("lighten")
    _convert_args(p)
    p.set_defaults(func=_deprecated("lighten", "onnx convert", _convert))
    p = sub.add_parser("export")
    _export_args(p)
    p.set_defaults(func=_deprecated("export", "onnx export", _export))
