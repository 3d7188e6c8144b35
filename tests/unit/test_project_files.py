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


def test_the_readme_shows_the_grants_each_role_is_given():
    from runway.team import grants

    readme = (REPO / "README.md").read_text()
    missing = [line for line in grants.markdown() if line not in readme]
    assert not missing, missing


def test_the_exit_codes_in_the_readme_are_the_ones_in_errors_py():
    from runway.errors import ExitCode

    readme = (REPO / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == {int(code) for code in ExitCode}


def test_the_team_extra_is_pinned_in_the_lock():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in extras["team"]} == {
        "psycopg",
        "mlflow",
        "moto",
    }
    lock = _lock()
    # psycopg[binary] and mlflow[auth] bring these: without them a postgresql:// store or the
    # basic-auth server fail at start.
    assert {"psycopg", "psycopg-binary", "flask-wtf", "moto"} <= set(lock)


def test_the_distribution_is_not_the_unrelated_runway_on_the_index():
    """`runway` on PyPI is someone else's project: nothing may install the bare name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "runway-mlops"
    bare = re.compile(r"pip install\s+(?:-\S+\s+)*['\"]?runway(?:\[|['\"\s]|$)", re.MULTILINE)
    for doc in ("README.md", "ARCHITECTURE.md", "Makefile", "conda.yaml", "MLproject"):
        assert not bare.search((REPO / doc).read_text()), doc


def test_every_file_the_package_reads_beside_its_modules_is_in_the_wheel():
    """A non-editable install carries the package data (the trust check reads the allow-list)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {
        (package.replace(".", "/"), pattern)
        for package, patterns in setuptools["package-data"].items()
        for pattern in patterns
    }
    src = REPO / "src"
    data = [
        path
        for path in (src / "runway").rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert data, "the allow-list at least"
    for path in data:
        relative = path.relative_to(src)
        assert any(
            relative.parent.as_posix() == folder and relative.match(pattern)
            for folder, pattern in declared
        ), f"{relative} is not in [tool.setuptools.package-data]"


def test_every_setting_has_a_row_in_a_readme_settings_table():
    """The settings table (or the batch/monitoring one) names every variable runway reads."""
    from runway.settings import Settings

    table = (REPO / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = alias if isinstance(alias, str) else f"RUNWAY_{name.upper()}"
        assert f"| `{variable}` |" in table, variable
