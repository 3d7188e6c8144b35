"""A tracking server that cannot be reached, or does not answer: one line, a documented
exit code, in bounded time (MLflow's client alone retries for minutes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from runway.errors import SweepError
from runway.jobs.study import open_storage
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def _runway(uri: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNWAY_"))}
    return subprocess.run(
        [sys.executable, "-m", "runway", *args],
        env={**clean, "MLFLOW_TRACKING_URI": uri, **env},
        capture_output=True,
        text=True,
        timeout=120,  # MLflow's own retries alone take over four minutes
    )


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    return line


def test_a_server_that_is_not_running_is_one_line_with_exit_4():
    uri = f"http://127.0.0.1:{free_port()}"
    proc = _runway(uri, "registry", "status")
    assert proc.returncode == 4, proc.stderr
    line = _one_error_line(proc)
    assert f"cannot reach the tracking server {uri}" in line and "RUNWAY_HTTP_RETRIES" in line


def test_a_server_that_never_answers_times_out_per_the_settings():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        proc = _runway(uri, "registry", "status", RUNWAY_HTTP_TIMEOUT="1", RUNWAY_HTTP_RETRIES="1")
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert proc.returncode == 4, proc.stderr
    line = _one_error_line(proc)
    assert f"the tracking server {uri} did not answer within 1s" in line


def test_a_database_storage_without_its_driver_names_the_package():
    with pytest.raises(SweepError) as missing:
        open_storage("postgresql+psycopg2://u:secret@127.0.0.1:1/optuna")
    message = str(missing.value)
    assert "psycopg2" in message and "runway[team]" in message and "secret" not in message
