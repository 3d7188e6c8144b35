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


def test_a_readiness_probe_that_meets_itself_is_not_ready():
    """A probe of a port nothing listens on can connect to itself (TCP self-connect, when
    the port is in the ephemeral range) and read its own request back: not ready, no crash."""
    import socket
    import threading

    from runway.team.objectstore import moto_ready
    from runway.team.server import ready

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def echo() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(conn.recv(4096))

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        assert ready(f"http://127.0.0.1:{port}") is False
        assert moto_ready(f"http://127.0.0.1:{port}") is False
        thread.join(5)
