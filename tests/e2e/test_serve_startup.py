"""`runway serve` listens before its model is loaded, and logs where its start-up time went (#31).

Until the first version is loaded, `/ready` and `/invocations` answer 503 with
Retry-After (a load balancer or client sees "not yet", not "connection refused");
once loaded, the serve log holds one line a start-up phase.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests

from tests.helpers import free_port, stop_process_group

PHASES = (
    "interpreter + runway imports",  # before the children start: they start first (#31)
    "MLflow import",
    "resolve (audited)",
    "download + verify",
    "backend import + model load",
    "first 200 (warm-up request)",
    "total",
    "gateway imports + set-up",  # while the children work
)


def _answers(url: str, proc: subprocess.Popen, timeout: float = 180) -> list[int]:
    """The status of every /ready poll that got an answer, until the first 200."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = requests.get(f"{url}/ready", timeout=2).status_code
        except requests.ConnectionError:
            time.sleep(0.05)
            continue
        if not seen:  # the first answer, while loading: the scoring path says so too
            early = requests.post(f"{url}/invocations", json={}, timeout=2)
            seen.append(early.status_code if early.headers.get("retry-after") else -1)
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"no 200 from {url}/ready: {seen}")


def test_ready_answers_503_until_loaded_then_the_log_has_the_timeline(delivery, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "serve", "delivery", "--port", str(port)],
            cwd=tmp_path,
            env=delivery.env(RUNWAY_PREDICTION_LOG="off"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        seen = _answers(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            stop_process_group(proc)
    text = log.read_text()
    assert seen[:2] == [503, 503] and seen[-1] == 200, (seen, text[-2000:])
    for phase in PHASES:
        assert f"start-up  {phase}" in text, text[-2000:]
