"""The zygote ties its life to the gateway's itself, first thing (no ``preexec_fn``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

# A middle process (the gateway's stand-in) starts a child that calls die_with(its parent
# as given), writes its pid to a file once tied, and sleeps.
MIDDLE = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]])
time.sleep(60)
"""
CHILD = """
import os, sys, time
from runway.serving.zygote import die_with
if not die_with(int(sys.argv[1])):
    sys.exit(3)
with open(sys.argv[2] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_process_tied_with_die_with_gets_sigterm_when_its_parent_is_killed(tmp_path):
    marker = tmp_path / "tied"
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, CHILD, str(marker)])
    try:
        assert _wait(marker.exists, 60), "the child never tied itself to its parent"
        child = int(marker.read_text())
        middle.kill()  # SIGKILL: no chance to pass anything on
        middle.wait(10)
        assert _wait(lambda: not _alive(child), 10), "the child outlived its killed parent"
    finally:
        middle.kill()
        middle.wait(10)


def test_a_parent_that_died_before_the_signal_was_set_is_noticed(tmp_path):
    """The race: the gateway died before the zygote set the signal, so the zygote was
    re-parented and the signal will never come; it must see that and exit."""
    someone_else = subprocess.Popen(["sleep", "30"])
    try:
        gone = subprocess.run(
            [sys.executable, "-c", CHILD, str(someone_else.pid), str(tmp_path / "never")],
            timeout=60,
        )
    finally:
        someone_else.kill()
        someone_else.wait()
    assert gone.returncode == 3 and not (tmp_path / "never").exists()
