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


def _entry_point_args(name: str, **params: str):
    """Parse an MLproject entry point's command, with these parameters, by runway's own CLI."""
    from runway.cli import build_parser

    entry = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"][name]
    argv = entry["command"].format(**params).split("python -m runway ", 1)[1]
    # What the shell makes of $(test -n 'v' && echo --flag 'v'): the flag only when v is set.
    argv = re.sub(
        r"\$\(test -n '([^']*)' && echo (--[\w-]+) '[^']*'\)",
        lambda m: f"{m.group(2)} {m.group(1)}" if m.group(1) else "",
        argv,
    )
    return build_parser().parse_args(shlex.split(argv))


def test_mlproject_promote_entry_point_parses_as_a_cli_command():
    args = _entry_point_args(
        "promote", model="m", version="3", stage="Production", reviewer="alice", comment="ok"
    )
    assert (args.model, args.version, args.to, args.reviewer, args.comment) == (
        "m",
        "3",
        "Production",
        "alice",
        "ok",
    )


def test_mlproject_score_entry_point_parses_as_a_cli_command():
    args = _entry_point_args(
        "score", model="m", input="in.csv", output="o.parquet", version="3", chunk_rows=""
    )
    assert (args.command, args.model, args.input, args.output, args.version) == (
        "score",
        "m",
        "in.csv",
        "o.parquet",
        "3",
    )
    assert args.chunk_rows is None


def test_mlproject_serve_entry_point_parses_as_a_cli_command():
    args = _entry_point_args("serve", model="m", port="9000", workers="2")
    assert (args.command, args.model, args.port, args.workers) == ("serve", "m", 9000, 2)


def test_mlproject_monitor_and_retrain_entry_points_parse_as_cli_commands():
    args = _entry_point_args("monitor", model="m", since="2026-11-01", window="1d", labels="")
    assert (args.command, args.model, args.since, args.window, args.labels) == (
        "monitor",
        "m",
        "2026-11-01",
        "1d",
        None,
    )
    args = _entry_point_args("retrain", model="m", data="fresh.csv")
    assert (args.command, args.model, args.data) == ("retrain", "m", "fresh.csv")
