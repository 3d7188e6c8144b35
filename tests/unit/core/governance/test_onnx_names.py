"""One name for ONNX: ``runway onnx``, ``--onnx``, the policy's ``onnx:``; the old names still work."""

from __future__ import annotations

import logging

import pytest

from runway.cli import build_parser
from runway.core.governance.policy import PromotionPolicy, load_policy
from runway.errors import SpecError

POLICY = {"model": "m", "production": {"reviewers": ["ci"]}}


def test_the_policy_section_is_onnx_and_lighten_is_read_as_it_with_a_note(caplog):
    assert PromotionPolicy.model_validate(
        {**POLICY, "onnx": {"on_register": True}}
    ).onnx.on_register
    with caplog.at_level(logging.WARNING):
        old = PromotionPolicy.model_validate({**POLICY, "lighten": {"required": True}})
    assert old.onnx.required and not old.onnx.on_register
    assert "`lighten:` is now `onnx:`" in caplog.text


def test_a_policy_giving_both_names_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("model: m\nproduction: {reviewers: [ci]}\nonnx: {}\nlighten: {}\n")
    with pytest.raises(SpecError, match="lighten"):
        load_policy(path)


def test_runway_onnx_convert_and_export_parse():
    args = build_parser().parse_args(["onnx", "convert", "m", "3"])
    assert (args.model, args.version) == ("m", "3")
    args = build_parser().parse_args(["onnx", "export", "m", "--out", "b", "--version", "4"])
    assert (args.model, args.version, args.out) == ("m", "4", "b")


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_the_old_lighten_flag_sets_onnx_with_a_note(command, capsys):
    assert build_parser().parse_args([command, "s.yaml", "--onnx"]).onnx
    assert not build_parser().parse_args([command, "s.yaml"]).onnx
    assert build_parser().parse_args([command, "s.yaml", "--lighten"]).onnx
    assert "--lighten is now --onnx" in capsys.readouterr().err


def test_the_old_commands_stay_out_of_the_help_but_parse():
    parser = build_parser()
    assert "lighten" not in parser.format_help()
    assert parser.parse_args(["lighten", "m", "3"]).version == "3"
    assert parser.parse_args(["export", "m", "--out", "b"]).stage == "Production"
