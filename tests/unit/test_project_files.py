"""The environment descriptions agree with each other and with the code."""

from __future__ import annotations

import re
import shlex
import tomllib

import yaml

from tests.conftest import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_conda_env_pins_match_the_lock():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    lock = _lock()
    for requirement in pip_section:
        name, version = requirement.split("==")
        assert lock[name.lower()] == version, requirement


def test_every_runtime_dependency_is_pinned_in_the_lock_and_conda_env():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    conda_text = (REPO / "conda.yaml").read_text().lower()
    lock = _lock()
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        assert name in lock, name
        assert f"{name}==" in conda_text, name


def test_mlproject_entry_points_call_the_cli():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert project["conda_env"] == "conda.yaml"
    for name in ("main", "train"):
        entry = project["entry_points"][name]
        assert "spec" in entry["parameters"]
        assert "python -m runway train {spec}" in entry["command"]
    sweep = project["entry_points"]["sweep"]
    assert {"spec", "trials", "workers"} <= set(sweep["parameters"])
    assert "python -m runway sweep {spec}" in sweep["command"]


def test_mlproject_promote_entry_point_parses_as_a_cli_command():
    from runway.cli import build_parser

    entry = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["promote"]
    command = entry["command"].format(
        model="m", version="3", stage="Production", reviewer="alice", comment="ok"
    )
    argv = command.split("python -m runway ", 1)[1]
    argv = argv.replace("$(test -n 'alice' && echo --reviewer 'alice')", "--reviewer alice")
    args = build_parser().parse_args(shlex.split(argv))
    assert (args.model, args.version, args.to, args.reviewer, args.comment) == (
        "m",
        "3",
        "Production",
        "alice",
        "ok",
    )
