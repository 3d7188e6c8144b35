"""N replicas, one registry (issue 28): two `runway serve` processes on the team stack's
tracking server, one round-robin client, a promotion and a rollback through runway.

Every answer is a 200; each replica serves the new version within a bound derived from its
own settings; every prediction-log row names the replica that answered it, and each
replica's ``/metrics`` names itself. The switch times are printed (``-s``) for the README.

It runs after tests/e2e/test_team.py (file order), whose tests number the shared stack's
versions from 1; it takes whatever Production it finds.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import mlflow
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer

from runway.settings import Settings
from tests.e2e.team_stack import MODEL, Team, _as
from tests.helpers import free_port, stop_process_group, wait_http

pytestmark = pytest.mark.slow

REPLICAS = 2
# The replicas' own settings; the switch bound below is derived from them, as the
# blue/green test does: a poll or two (three allowed) to see the move, then two children
# (resolve, then fetch and check), each within the prepare timeout, then the start.
SETTINGS = {
    "RUNWAY_SERVE_POLL_SECONDS": "2",  # the poll of the host where one replica took 55-61 s
    "RUNWAY_SERVE_PREPARE_TIMEOUT": "45",
    "RUNWAY_SERVE_START_TIMEOUT": "60",
}
SWITCH_POLLS = 3
ROW = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(1)


def _bound(env: dict[str, str]) -> float:
    """Seconds a switch may take by the replicas' own settings."""
    with mock.patch.dict(os.environ, env, clear=True):
        settings = Settings()
    return (
        SWITCH_POLLS * settings.serve_poll_seconds
        + 2 * settings.serve_prepare_timeout
        + settings.serve_start_timeout
    )


class Replica:
    """`runway serve MODEL` as the service account, on its own port, state and log."""

    def __init__(self, team: Team, folder: Path, env: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"{socket.gethostname()}:{self.port}"  # the default replica id
        self.log = folder / "serve.out"
        self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        command = ["serve", MODEL, "--port", str(self.port), "--workers", "1"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "-v", *command, "--log-dir", str(folder / "logs")],
            cwd=team.home("svc"),
            env={**env, "XDG_STATE_HOME": str(folder / "state")},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> None:
        try:
            wait_http(f"{self.url}/ready", self.proc, timeout=300)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log.read_text()[-3000:]}") from None

    def replica_label(self) -> str:
        page = requests.get(f"{self.url}/metrics", timeout=10).text
        families = {f.name: f for f in text_string_to_metric_families(page)}
        [sample] = families["runway_replica_info"].samples
        return sample.labels["replica"]

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._out.close()


class RoundRobin:
    """One client thread sending single rows to each replica in turn, back to back."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.results: list[tuple[float, int, int, str]] = []  # (when, replica, status, version)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        sessions = [requests.Session() for _ in self.replicas]
        body = {"dataframe_records": ROW.to_dict(orient="records")}
        for n in itertools.count():
            if self.stop.is_set():
                return
            i = n % len(self.replicas)
            try:
                answer = sessions[i].post(
                    f"{self.replicas[i].url}/invocations",
                    json=body,
                    headers={"X-Request-Id": f"rr-{n}"},
                    timeout=30,
                )
            except requests.RequestException as exc:
                self.errors.append(f"replica {i}: {exc!r}")
                continue
            version = answer.headers.get("X-Runway-Model-Version", "")
            self.results.append((time.monotonic(), i, answer.status_code, version))
            if answer.status_code != 200:
                self.errors.append(f"replica {i}: {answer.status_code} {answer.text[:200]}")

    def switch_times(self, version: str, since: float, limit: float) -> list[float]:
        """Per replica, seconds from ``since`` to its first answer naming ``version``."""
        deadline = since + limit
        while True:
            firsts = [
                min((at for at, r, _, v in self.results if r == i and v == version and at >= since),
                    default=None)
                for i in range(len(self.replicas))
            ]  # fmt: skip
            if all(f is not None for f in firsts) or time.monotonic() > deadline:
                return [f - since if f is not None else float("inf") for f in firsts]
            time.sleep(0.2)


def _production(team: Team, monkeypatch: pytest.MonkeyPatch) -> str:
    """The version @production names, a fresh one through runway if there is none."""
    client = _as(monkeypatch, team, "admin")
    aliases = client.get_registered_model(MODEL).aliases if _registered(client) else {}
    if "production" in aliases:
        return str(aliases["production"])
    version = _train(team)
    for stage in ("Staging", "Production"):
        moved = team.runway("alice", "registry", "promote", MODEL, version, "--to", stage)
        assert moved.returncode == 0, moved.stdout + moved.stderr
    return version


def _registered(client: mlflow.MlflowClient) -> bool:
    try:
        client.get_registered_model(MODEL)
    except mlflow.exceptions.MlflowException:  # no model yet
        return False
    return True


def _train(team: Team) -> str:
    trained = team.runway("carol", "train", "spec.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    return trained.stdout.split(f"registered {MODEL} version ")[1].split()[0]


def _phases(log: str) -> str:
    """The watcher's lines of one replica's log (time-stamped): what a switch spent where."""
    wanted = ("Production is now", "switched to", "stopped v", "not serving", "failed", "watch")
    return "\n".join(line for line in log.splitlines() if any(w in line for w in wanted))


@pytest.mark.timeout(1500)
def test_replicas_follow_one_registry_through_a_promotion_and_a_rollback(
    team, monkeypatch, tmp_path
):
    champion = _production(team, monkeypatch)
    candidate = _train(team)
    staged = team.runway("alice", "registry", "promote", MODEL, candidate, "--to", "Staging")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    env = {**team.env, **team.members["svc"], **SETTINGS}
    assert env.get("RUNWAY_PREDICTION_LOG", "").startswith("postgresql")  # the team's one log
    limit = _bound(env)
    replicas = [Replica(team, tmp_path / f"replica-{i}", env) for i in range(REPLICAS)]
    client = RoundRobin(replicas)
    try:
        for replica in replicas:
            replica.ready()
        assert [r.replica_label() for r in replicas] == [r.name for r in replicas]
        client.thread.start()
        time.sleep(2)
        promoted = team.runway(
            "alice", "registry", "promote", MODEL, candidate, "--to", "Production"
        )
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        up = client.switch_times(candidate, time.monotonic(), limit)
        rolled = team.runway("alice", "registry", "rollback", MODEL, "--reviewer", "alice")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        back = client.switch_times(champion, time.monotonic(), limit)
        time.sleep(2)  # the old backends drain under traffic
    finally:
        client.stop.set()
        if client.thread.is_alive():
            client.thread.join(60)
        for replica in replicas:
            replica.stop()
    logs = [r.log.read_text() for r in replicas]
    figures = (
        f"switch to v{candidate} per replica: {[round(s, 1) for s in up]} s; back to "
        f"v{champion}: {[round(s, 1) for s in back]} s; bound {limit:g} s; "
        f"{len(client.results)} requests, {len(client.errors)} failed; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(figures)
    for i, text in enumerate(logs):
        print(f"--- replica {i} ---\n{_phases(text)}")
    assert client.errors == [], (figures, client.errors[:5])
    assert max(up + back) <= limit, (figures, *(_phases(t) for t in logs))
    assert {r for _, r, _, _ in client.results} == set(range(REPLICAS))

    # each replica's rows in the team's prediction log name it
    from runway.store.predlog import read_predictions

    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", env["RUNWAY_PREDICTION_LOG"])
    logged = read_predictions(MODEL, env["RUNWAY_PREDICTION_LOG"])
    ours = logged[logged["request_id"].astype(str).str.match(r"rr-\d+$")]
    assert len(ours) >= len(client.results) * 0.9, (len(ours), len(client.results))
    for _, row in ours.iterrows():
        n = int(re.sub(r"\D", "", row["request_id"]))
        assert row["replica"] == replicas[n % REPLICAS].name, row.to_dict()
