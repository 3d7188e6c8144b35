"""The team stack's services stop as whole trees, and a stale pid file never signals a stranger."""

from __future__ import annotations

import os
import signal
import time

from runway.team import procs


def test_stop_takes_the_whole_tree_even_children_in_sessions_of_their_own(tmp_path):
    pidfile = tmp_path / "run" / "svc.pid"
    # A grandchild that calls setsid() leaves the group, as PostgreSQL's backends do.
    script = "sleep 60 & setsid sleep 61 & wait"
    proc = procs.spawn(["sh", "-c", script], tmp_path / "svc.log", pidfile)
    deadline = time.monotonic() + 10
    while len(procs.tree(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = procs.tree(proc.pid)
    assert len(members) == 3

    assert procs.stop(pidfile, signal.SIGTERM, "sh", timeout=5) == 3

    proc.wait(5)
    assert not procs.alive(members) and not pidfile.exists()
    assert procs.stop(pidfile, signal.SIGTERM) == 0  # twice is fine


def test_a_pid_file_naming_another_program_is_stale(tmp_path):
    pidfile = tmp_path / "pg.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but not PostgreSQL
    assert procs.read_pid(pidfile, "postgres") is None
    assert not pidfile.exists()
    assert procs.stop(pidfile, signal.SIGINT, "postgres") == 0  # and we are still here
