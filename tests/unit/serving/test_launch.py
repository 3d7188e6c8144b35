"""`runway serve`'s cold start (#31): its children start before the gateway's own imports, and
the backend zygote imports the model's flavor while the version is still being checked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import runway
from runway.net import free_port
from runway.serving import zygote

# A fresh `runway serve` whose every child start is recorded (with what the gateway had
# imported by then) and refused: the first one ends the run.
PROBE = """
import json, subprocess, sys
seen = []
real = subprocess.Popen

class Spy(real):
    def __init__(self, args, *a, **k):
        child = next((str(x) for x in args if str(x).startswith("runway.serving.")), None)
        if child:
            heavy = ("pandas", "uvicorn", "runway.serving.gateway")
            seen.append([child, [m for m in heavy if m in sys.modules], list(map(str, args))])
            print(json.dumps(seen), flush=True)
            raise OSError("probe: not starting it")
        super().__init__(args, *a, **k)

subprocess.Popen = Spy
from runway.cli import main
main(["serve", "m", "--port", sys.argv[1], "--log-dir", sys.argv[2]])
"""


def _first_child(tmp_path: Path) -> tuple[str, list[str], list[str]]:
    """What a cold `runway serve` starts first: the module, what the gateway had imported
    by then, the command line."""
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(free_port()), str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        # runway's own source folder only: this process's sys.path may by now hold a model's
        # code_paths folder, whose partial `runway` package (no cli) would shadow the real one
        env={**env, "PYTHONPATH": str(Path(runway.__file__).resolve().parents[1])},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-2000:]
    first, imported, argv = json.loads(lines[0])[0]
    return first, imported, argv


@pytest.mark.slow
def test_serve_starts_its_children_before_the_gateway_imports_pandas_and_uvicorn(tmp_path):
    """The prepare child and the zygote import MLflow for seconds; the gateway's own imports
    (pandas, uvicorn, its modules: a second or more on a busy host) run meanwhile, not first."""
    first, imported, _ = _first_child(tmp_path)
    assert first.startswith("runway.serving."), first
    assert imported == [], f"{first} started after the gateway imported {imported}"


@pytest.mark.slow
def test_a_cold_start_starts_one_interpreter_that_forks_the_prepare_child(tmp_path):
    """One interpreter imports runway, pandas and MLflow for both the zygote and the prepare
    child (seconds of CPU each, on the first answer's path on a busy host)."""
    first, _, argv = _first_child(tmp_path)
    assert first == "runway.serving.zygote", first
    assert "--prepare" in argv, argv


# A zygote's stand-in: MLflow imported, it forks the prepare child and reaps it.
STAND_IN = """
import sys
from runway.serving import forked
import mlflow  # noqa: F401
forked.reap(forked.fork(sys.argv[1], []), stop=False)
"""


@pytest.mark.slow
def test_the_forked_prepare_child_answers_the_gateway_as_a_started_one_did(tmp_path):
    """Settings in over a pipe, the answer (here: the runway error it met) back over another,
    raised in the gateway as its own class."""
    from runway.errors import RunwayError
    from runway.serving import prepare
    from runway.serving.forked import Pipes
    from runway.serving.launch import child_command, settings_json
    from runway.settings import Settings

    settings = Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    which = ["--stage", "Production", "--folder", str(tmp_path / "v")]
    pipes = Pipes.open()
    spec = pipes.spec(child_command("nope", which)[3:])
    stand_in = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, spec], pass_fds=pipes.given(), cwd=tmp_path
    )
    child = pipes.handed_over(settings_json(settings))
    launched = SimpleNamespace(child=child, options=which)
    with pytest.raises(RunwayError) as raised:
        asyncio.run(prepare.launched(launched, settings, "nope"))  # type: ignore[arg-type]
    assert "nope" in str(raised.value)
    assert type(raised.value).__name__ != "ServeError", raised.value  # its own class
    assert stand_in.wait(30) == 0


def test_a_forked_child_that_hangs_is_stopped_after_the_prepare_timeout(tmp_path):
    """Its group (the zygote's) is killed: the start fails, nothing is left behind."""
    from runway.errors import ServeError
    from runway.serving import prepare
    from runway.serving.forked import Forked
    from runway.settings import Settings

    read, write = os.pipe()
    holder = subprocess.Popen(["sleep", "30"], pass_fds=[write], process_group=0)
    os.close(write)
    child = Forked(read)
    child.group = holder.pid
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}", serve_prepare_timeout=0.5
    )
    launched = SimpleNamespace(child=child, options=["--stage", "Production"])
    with pytest.raises(ServeError, match=r"took over 0.5s and was stopped.*PREPARE_TIMEOUT"):
        asyncio.run(prepare.launched(launched, settings, "m"))  # type: ignore[arg-type]
    assert holder.wait(10) == -signal.SIGKILL


def test_a_hint_outside_the_known_flavors_imports_nothing():
    """The hint is read from a file no check has seen yet: only allow-listed names load."""
    zygote.preload("runway_no_such_module.anything")  # imported, it would raise
    zygote.preload(None)


def _mapped(pid: int) -> bool:
    try:
        return "/sklearn/" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/<pid>/maps")
def test_a_zygote_given_the_hint_imports_scikit_learn_before_its_folder_arrives(tmp_path):
    from runway.serving.backends import spawn_group

    pending = spawn_group("m", tmp_path, tmp_path / "logs", 30, 1, preload="mlflow.sklearn")
    try:
        deadline = time.monotonic() + 90
        while not _mapped(pending.zygote.pid) and time.monotonic() < deadline:
            assert pending.zygote.poll() is None, (tmp_path / "logs").iterdir()
            time.sleep(0.1)
        assert _mapped(pending.zygote.pid)
    finally:
        pending.cancel()
    assert pending.zygote.returncode == 1  # no folder: it exits, loading nothing
