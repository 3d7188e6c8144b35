"""What `runway sweep` prints on a 120-column terminal (issue 29, item 8).

A real sweep in a subprocess whose stdout and stderr are a pseudo-terminal (what a
person sees, bar and all): one short line per trial (trial, value, best so far,
ETA), no params dict, no library chatter, the registration said once.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_spec

pytestmark = pytest.mark.slow

SPACE = {
    "trials": 3,
    "seed": 1,
    "pruning": False,
    "space": {"model__C": {"type": "float", "low": 0.05, "high": 5, "log": True}},
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with a pty as stdout and stderr; its exit code and screen text."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, b"".join(chunks).decode(errors="replace")


def _screen_lines(text: str) -> list[str]:
    """The lines a terminal shows: a carriage return redraws the line it is on."""
    lines = []
    for raw in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        lines.append(raw.split("\r")[-1] if raw.strip("\r") else "")
    return [line for line in lines if line.strip()]


def test_a_sweep_reads_one_line_per_trial_at_120_columns(tmp_path, mlflow_store):
    spec = write_spec(tmp_path / "term.yaml", sweep=SPACE, model_name="term-model")
    env = {
        **os.environ,
        "COLUMNS": "120",
        "LINES": "40",
        "TERM": "xterm",
        "MLFLOW_TRACKING_URI": mlflow_store,
    }
    code, text = _on_a_terminal([sys.executable, "-m", "runway", "sweep", str(spec)], tmp_path, env)
    screen = _screen_lines(text)
    shown = "\n".join(screen)
    assert code == 0, shown
    assert "A new study created" not in text and "Successfully registered" not in text, shown
    assert "Created version" not in text, shown
    assert len(re.findall(r"registered term-model version 1\b", shown)) == 1, shown
    trial_lines = [line for line in screen if re.search(r"\btrial \d+/3\b", line)]
    assert len(trial_lines) == 3, shown  # one per trial, each on its own line
    for line in trial_lines:
        assert len(line) <= 100, line  # fits 120 columns with room to spare
        assert "best" in line and "ETA" in line, line
        assert "{" not in line, line  # no params dict
    # every log line starts a line of its own (none glued to a bar)
    assert all(line.count(" INFO ") <= 1 for line in screen), shown
