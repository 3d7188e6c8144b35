"""`runway serve`'s cold start (#31): its children start before the gateway's own imports, and
the backend zygote imports the model's flavor while the version is still being checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
            seen.append([child, [m for m in heavy if m in sys.modules]])
            print(json.dumps(seen), flush=True)
            raise OSError("probe: not starting it")
        super().__init__(args, *a, **k)

subprocess.Popen = Spy
from runway.cli import main
main(["serve", "m", "--port", sys.argv[1], "--log-dir", sys.argv[2]])
"""


@pytest.mark.slow
def test_serve_starts_its_children_before_the_gateway_imports_pandas_and_uvicorn(tmp_path):
    """The prepare child and the zygote import MLflow for seconds; the gateway's own imports
    (pandas, uvicorn, its modules: a second or more on a busy host) run meanwhile, not first."""
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(free_port()), str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-2000:]
    first, imported = json.loads(lines[0])[0]
    assert first.startswith("runway.serving."), first
    assert imported == [], f"{first} started after the gateway imported {imported}"


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
