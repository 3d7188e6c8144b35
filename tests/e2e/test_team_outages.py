"""Team mode with a service pulled: PostgreSQL, the object store, the tracking server (issue 27,
items 8 and 9). Each command says what is down in one line with exit 4, `runway serve` keeps
answering and says so once per outage (and once when it is over), no served row is lost, no
run stays RUNNING, and an unreachable artifact store is not taken for a missing artifact.

The stack is the session's (tests/e2e/team_stack.py): every test starts what it stopped again
before it returns, in a ``finally``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer

from runway.team import procs
from tests.e2e.team_stack import EXPERIMENT, MODEL, Team, _as, _error_lines, _make, _spec
from tests.helpers import free_port, stop_process_group, wait_http

pytestmark = pytest.mark.slow

FAST = {"RUNWAY_HTTP_RETRIES": "1", "RUNWAY_HTTP_BACKOFF": "0"}  # lean: one retry, at once
STOP = {"pg": (signal.SIGINT, "postgres"), "s3": (signal.SIGTERM, "moto.server"),
        "mlflow": (signal.SIGTERM, "mlflow")}  # fmt: skip
ROWS = load_breast_cancer(as_frame=True).frame.drop(columns="target")


def _stop(team: Team, service: str) -> None:
    """Stop one service of the stack (as `runway team down` does, for that one only)."""
    sig, command = STOP[service]
    pidfile = Path(team.env["RUNWAY_TEAM_DIR"]) / "run" / f"{service}.pid"
    assert procs.stop(pidfile, sig, command) > 0, f"{service} was not running"


def _restore(team: Team) -> None:
    up = _make(team.env, "team-up", team.root)
    assert up.returncode == 0, up.stdout + up.stderr


def _wait_for(what: str, check: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return found


def _one_line(proc: subprocess.CompletedProcess, code: int = 4) -> str:
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-3000:]
    [line] = _error_lines(proc)
    return line


def _ensure_production(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Production version of the team's model (test_team.py makes one; alone, we do)."""
    client = _as(monkeypatch, team, "admin")
    found = [
        v
        for v in client.search_model_versions(f"name = '{MODEL}'")
        if v.current_stage == "Production"
    ]
    if found:
        return
    trained = team.runway("carol", "train", "spec.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    version = trained.stdout.split(f"registered {MODEL} version ")[1].split()[0]
    for stage in ("Staging", "Production"):
        moved = team.runway("alice", "registry", "promote", MODEL, version, "--to", stage)
        assert moved.returncode == 0, moved.stdout + moved.stderr


class Served:
    """`runway serve MODEL` as the service account, its own state dir and log."""

    def __init__(self, team: Team, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "serve.out"
        self.state = folder / "state"
        self.url = f"http://127.0.0.1:{self.port}"
        command = ["serve", MODEL, "--port", str(self.port), "--workers", "1"]
        env = {**team.env, **team.members["svc"], **FAST, "XDG_STATE_HOME": str(self.state)}
        env["RUNWAY_SERVE_POLL_SECONDS"] = "1"
        self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runway", *command],
            cwd=team.home("svc"),
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_http(f"{self.url}/ready", self.proc, timeout=240)
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n{self.text()[-3000:]}") from None

    def predict(self, n: int, prefix: str) -> list[int]:
        """``n`` one-row requests; their status codes."""
        codes = []
        for i in range(n):
            answer = requests.post(
                f"{self.url}/invocations",
                json={"dataframe_records": ROWS.iloc[[i]].to_dict(orient="records")},
                headers={"X-Request-Id": f"{prefix}-{i}"},
                timeout=30,
            )
            codes.append(answer.status_code)
        return codes

    def metric(self, name: str) -> float:
        page = requests.get(f"{self.url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise AssertionError(f"{name} not in /metrics")

    def held(self) -> int:
        """Rows held on disk while the prediction log is down (each file's name counts them)."""
        files = (self.state / "runway" / "predlog-buffer").glob("*/*.parquet")
        return sum(int(f.name.removesuffix(".parquet").rsplit("-", 1)[1]) for f in files)

    def text(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text()

    def lines(self, *words: str) -> list[str]:
        return [line for line in self.text().splitlines() if all(w in line for w in words)]

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._out.close()


@pytest.fixture(scope="module")
def served(team: Team, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _ensure_production(team, monkeypatch)
    server = Served(team, tmp_path_factory.mktemp("outage-serve"))
    try:
        yield server
    finally:
        server.stop()


def _running_runs(client: mlflow.MlflowClient) -> set[str]:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    return {run.info.run_id for run in runs}


def test_postgres_down_commands_say_so_serve_holds_its_rows_and_no_run_stays_running(
    team, served, monkeypatch, tmp_path
):
    """Item 8: one line and exit 4, serve answers and logs one line, rows kept, run closed."""
    client = _as(monkeypatch, team, "admin")
    home = team.home("carol")
    slow = _spec(estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 1000}})
    (home / "slow.yaml").write_text(yaml.safe_dump(slow))
    before = _running_runs(client)
    carol = {**team.env, **team.members["carol"], **FAST, "XDG_STATE_HOME": str(tmp_path)}
    trainer = subprocess.Popen(
        [sys.executable, "-m", "runway", "train", "slow.yaml"],
        cwd=home,
        env=carol,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        [run_id] = _wait_for("the training run", lambda: _running_runs(client) - before, 120)
        _stop(team, "pg")
        out, err = trainer.communicate(timeout=180)
        train = subprocess.CompletedProcess(trainer.args, trainer.returncode, out, err)
        line = _one_line(train)
        assert "the tracking server" in line and "HTTP 5" in line, line
        status = team.runway("alice", "registry", "status", **FAST)
        assert "HTTP 5" in _one_line(status)

        assert served.predict(30, "pg-down") == [200] * 30  # serving does not need the database
        _wait_for("30 rows held on disk", lambda: served.held() >= 30, 30)
        assert served.metric("runway_prediction_log_dropped_total") == 0
    finally:
        with contextlib.suppress(Exception):
            trainer.kill()
        _restore(team)

    # A held file is renamed (claimed) while it is written, so an empty folder is not yet
    # rows in the table: wait for the table itself, and for the line that reports it.
    _wait_for("the held rows written", lambda: _count(team, "pg-down") >= 30, 90)
    _wait_for("the log's back line", lambda: served.lines("prediction log", "is back"), 30)
    assert served.held() == 0
    logged = _logged(team, "pg-down")
    assert sorted(logged) == sorted(f"pg-down-{i}" for i in range(30)), len(logged)
    # The next command of hers, the database back, ends the run its outage left RUNNING.
    again = team.runway("carol", "registry", "status", XDG_STATE_HOME=str(tmp_path))
    assert again.returncode == 0, again.stderr
    run = client.get_run(run_id)
    assert run.info.status == "FAILED", run.info
    assert "runway.error" in run.data.tags

    _wait_for("the registry watch back", lambda: served.lines("registry", "is back"), 30)
    assert "Traceback" not in served.text(), served.text()[-4000:]
    assert len(served.lines("prediction log", "is unavailable")) == 1, served.text()[-4000:]
    assert len(served.lines("prediction log", "is back", "wrote")) == 1
    assert len(served.lines("registry", "is unavailable")) <= 1  # not one per poll


def _count(team: Team, prefix: str) -> int:
    """Rows logged so far (0 while the table is not there yet)."""
    try:
        return len(_logged(team, prefix))
    except Exception:
        return 0


def _logged(team: Team, prefix: str) -> list[str]:
    import sqlalchemy

    from runway.store.predlog import table_name

    engine = sqlalchemy.create_engine(team.members["admin"]["RUNWAY_PREDICTION_LOG"])
    try:
        with engine.connect() as db:
            rows = db.execute(
                sqlalchemy.text(
                    f"SELECT request_id FROM {table_name(MODEL)} WHERE request_id LIKE :p"
                ),
                {"p": f"{prefix}-%"},
            )
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def test_the_tracking_server_down_commands_say_so_and_serve_says_it_once_and_when_back(
    team, served
):
    """A stopped `mlflow server`: train and registry status in one line, serve answers on."""
    before = len(served.lines("registry", "is back"))
    try:
        _stop(team, "mlflow")
        status = team.runway("alice", "registry", "status", **FAST)
        assert "cannot reach the tracking server" in _one_line(status)
        train = team.runway("carol", "train", "spec.yaml", **FAST)
        assert "cannot reach the tracking server" in _one_line(train)
        _wait_for("serve to notice", lambda: served.lines("registry", "is unavailable"), 30)
        time.sleep(3)  # a few more polls: still said once
        assert served.predict(10, "server-down") == [200] * 10
    finally:
        _restore(team)
    _wait_for(
        "serve to say the registry is back",
        lambda: len(served.lines("registry", "is back")) > before,
        60,
    )
    assert "Traceback" not in served.text(), served.text()[-4000:]
    unavailable = served.lines("registry", "is unavailable")
    assert len(unavailable) <= 2, unavailable  # this outage's line (and the database's)


def test_an_object_store_down_is_unreachable_not_a_missing_contract(team, monkeypatch):
    """Item 9: a run whose artifacts are on S3, the S3 endpoint stopped."""
    import boto3

    admin = team.members["admin"]
    s3 = boto3.client(
        "s3",
        endpoint_url=admin["AWS_ENDPOINT_URL"],
        aws_access_key_id=admin["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=admin["AWS_SECRET_ACCESS_KEY"],
        region_name=admin["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket="outage-artifacts")
    client = _as(monkeypatch, team, "admin")
    client.create_experiment("outage-s3", artifact_location="s3://outage-artifacts/exp")
    home = team.home("admin")
    spec = _spec(experiment="outage-s3", model_name="outage-s3-model")
    (home / "s3.yaml").write_text(yaml.safe_dump(spec))
    trained = team.runway("admin", "train", "s3.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    ROWS.head(5).to_csv(home / "in.csv", index=False)
    score = ("score", "outage-s3-model", "--version", "1", "--input", "in.csv", "--output")
    ok = team.runway("admin", *score, "before.csv")
    assert ok.returncode == 0, ok.stderr  # its contract is on S3, and readable

    try:
        _stop(team, "s3")
        down = team.runway("admin", *score, "during.csv", **FAST)
        line = _one_line(down)
        assert "artifact store unreachable" in line, line
        assert admin["AWS_ENDPOINT_URL"].split("//")[1] in line  # the endpoint, named
        assert "has no contract" not in line
        assert admin["AWS_SECRET_ACCESS_KEY"] not in down.stderr
    finally:
        _restore(team)
