"""`runway serve` over real HTTP: a gateway and real `mlflow models serve` backends on loopback.

One deployment per module (training and backend start-up take seconds): two
versions of a churn model trained on a Parquet copy of data/churn.csv whose
integer columns are int32, version 1 in Production, the server started with
`python -m runway serve`. Promotions and rollbacks go through the CLI, as a
reviewer would run them.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runway.settings import Settings
from runway.store.served import BACKEND_APP
from tests.conftest import REPO, REPO_PYTHONPATH
from tests.helpers import forge_production, free_port, ship, stop_process_group, wait_http

# A backend's command line names the app it serves (its zygote's, forked).
BACKEND = BACKEND_APP.split(":")[0].encode()

pytestmark = pytest.mark.slow

MODEL = "churn-serve"
TOKEN = "s3cret-token"
FEATURES = {
    "age": "numeric",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "contract": "categorical",
    "payment_method": "categorical",
    "region": "categorical",
}
MAX_BODY_MB = 0.25
POLL_SECONDS = 1  # how often the deployment's gateway looks for a new Production version
# A blue/green switch: the gateway sees the new version within a poll or two (three
# allowed), then prepares it and starts its backends, each bounded by its own timeout.
# Past the sum the switch has failed by the server's own rules; before it, a slow
# host is not a failure.
SWITCH_POLLS = 3


def _switch_limit(settings: Settings) -> float:
    """Seconds a switch may take by ``settings`` (those the deployment's server runs with)."""
    return (
        SWITCH_POLLS * settings.serve_poll_seconds
        + settings.serve_prepare_timeout
        + settings.serve_start_timeout
    )


def _server_settings(env: dict[str, str]) -> Settings:
    """The settings a process started with ``env`` reads."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]
    url: str
    proc: subprocess.Popen
    rows: pd.DataFrame  # feature rows to score
    expected: dict[str, list]  # version -> in-process predictions of `rows`
    log: Path

    def post(self, body: bytes | str, content_type: str | None = "application/json", **kw):
        headers = {"Authorization": f"Bearer {TOKEN}", **kw.pop("headers", {})}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return requests.post(
            f"{self.url}/invocations", data=body, headers=headers, timeout=30, **kw
        )

    def runway(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "runway", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def _records(rows: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready records (NaN -> null, numpy scalars -> Python)."""
    return json.loads(rows.to_json(orient="records"))


def _spec(data: Path, c: float) -> dict:
    return {
        "experiment": "serving-tests",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(data), "target": "churned", "features": FEATURES},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300, "C": c}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 5},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serving")
    frame = pd.read_csv(REPO / "data" / "churn.csv")
    frame = frame.astype({"tenure_months": "int32", "support_calls": "int32"})
    data = root / "churn.parquet"
    frame.to_parquet(data, index=False)
    rules = {"unseen_categories": "reject", "unknown_columns": "reject"}
    versions = [
        ship(root, _spec(data, c), production=(c == 1.0), reviewer="alice", input_policy=rules)[1]
        for c in (1.0, 0.01)  # two versions; the first in Production
    ]
    uri = f"sqlite:///{root / 'mlflow.db'}"

    rows = frame.drop(columns=["churned", "customer_id"]).iloc[[0, 1, 2, 5, 8, 13]]
    rows = rows.reset_index(drop=True)
    expected = {
        v: mlflow.pyfunc.load_model(f"models:/{MODEL}/{v}").predict(rows).tolist() for v in versions
    }

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        "RUNWAY_SERVE_POLL_SECONDS": str(POLL_SECONDS),
        "RUNWAY_SERVE_TOKENS": f"other-token,{TOKEN}",
        "RUNWAY_SERVE_MAX_BODY_MB": str(MAX_BODY_MB),
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    port = free_port()
    log = root / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runway",
                "serve",
                MODEL,
                "--port",
                str(port),
                "--log-dir",
                str(root / "logs"),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        yield Deployment(root, env, url, proc, rows, expected, log)
    finally:
        backends = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # as a service manager (or Ctrl-C) stops it
        try:
            code = proc.wait(60)
        finally:
            stop_process_group(proc)
        # The gateway stops its backends before it exits: none outlives it.
        assert code == 0, deployment_log(log)
        assert backends and not set(backends) & set(_descendants(1, all_=True)), backends


def deployment_log(log: Path) -> str:
    return log.read_text()[-3000:]


def _descendants(pid: int, all_: bool = False) -> list[int]:
    """Processes below ``pid`` (every process when ``all_``)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines()[1:]]
    if all_:
        return [child for child, _ in pairs]
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in pairs if ppid == parent]
        found += children
        frontier += children
    return found


def _scoring_servers(deployment: Deployment) -> list[int]:
    """The uvicorn scoring-server processes under this deployment's gateway."""
    found = []
    for pid in _descendants(deployment.proc.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if BACKEND in command:
            found.append(pid)
    return found


def _version(response: requests.Response) -> str:
    return response.headers["X-Runway-Model-Version"]


def test_start_up_prints_the_url_version_and_a_curl_line(deployment):
    text = deployment.log.read_text()
    assert f"serving {MODEL} v1 at {deployment.url}/invocations" in text
    assert "curl -s" in text and "Content-Type: application/json" in text
    assert f"{deployment.url}/ (what is served" in text and f"{deployment.url}/docs" in text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ready = requests.get(f"{deployment.url}/ready", headers=auth, timeout=5)
    assert ready.json() == {"status": "ready", "model": MODEL, "version": "1", "backends": 2}
    # A load balancer's probe (no token) learns that it is ready, not which model it is.
    anonymous = requests.get(f"{deployment.url}/ready", timeout=5)
    assert anonymous.json() == {"status": "ready", "backends": 2}
    assert "X-Runway-Model" not in anonymous.headers


def _formats(rows: pd.DataFrame) -> dict[str, tuple[bytes, str]]:
    records = _records(rows)
    columns = list(rows.columns)
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
    columnar = {c: [r[c] for r in records] for c in columns}
    parquet = io.BytesIO()
    rows.to_parquet(parquet, index=False)
    return {
        "dataframe_split": (json.dumps({"dataframe_split": split}).encode(), "application/json"),
        "dataframe_records": (
            json.dumps({"dataframe_records": records}).encode(),
            "application/json",
        ),
        "instances": (json.dumps({"instances": records}).encode(), "application/json"),
        "inputs (columns)": (json.dumps({"inputs": columnar}).encode(), "application/json"),
        "inputs (records)": (json.dumps({"inputs": records}).encode(), "application/json"),
        "csv": (rows.to_csv(index=False).encode(), "text/csv"),
        "parquet": (parquet.getvalue(), "application/vnd.apache.parquet"),
    }


def test_every_input_format_scores_like_the_model_in_process(deployment):
    for name, (body, content_type) in _formats(deployment.rows).items():
        response = deployment.post(body, content_type)
        assert response.status_code == 200, (name, response.text)
        assert response.headers["X-Runway-Model"] == MODEL
        version = _version(response)
        assert response.json() == {"predictions": deployment.expected[version]}, name


def _good(deployment: Deployment) -> None:
    response = deployment.post(json.dumps({"dataframe_records": _records(deployment.rows)}))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == deployment.expected[_version(response)]


def _one(deployment: Deployment, **changes) -> bytes:
    record = {**_records(deployment.rows.head(1))[0], **changes}
    return json.dumps({"dataframe_records": [record]}).encode()


def _without(deployment: Deployment, column: str) -> bytes:
    record = _records(deployment.rows.head(1))[0]
    record.pop(column)
    return json.dumps({"dataframe_records": [record]}).encode()


def test_rows_read_from_the_training_csv_score_alike_as_parquet_and_csv(deployment):
    """The churn rows as pandas reads data/churn.csv (int64 columns), sent as Parquet and as CSV."""
    rows = pd.read_csv(REPO / "data" / "churn.csv").drop(columns=["churned", "customer_id"])
    rows = rows.iloc[[0, 1, 2, 5, 8, 13]].reset_index(drop=True)
    assert rows["tenure_months"].dtype == "int64"
    parquet = io.BytesIO()
    rows.to_parquet(parquet, index=False)
    as_parquet = deployment.post(parquet.getvalue(), "application/vnd.apache.parquet")
    as_csv = deployment.post(rows.to_csv(index=False), "text/csv")
    assert as_parquet.status_code == 200, as_parquet.text
    assert as_csv.status_code == 200, as_csv.text
    assert as_parquet.json()["predictions"] == as_csv.json()["predictions"]
    assert as_parquet.json()["predictions"] == deployment.expected[_version(as_parquet)]


BAD_INPUTS = [
    # (name, body or callable(deployment) -> body, content type, extra, status, message)
    ("malformed JSON", b'{"dataframe_records": [', "application/json", {}, 400, "malformed JSON"),
    ("top-level list", b"[1, 2]", "application/json", {}, 400, "expected a JSON object"),
    ("unknown format key", b'{"rows": []}', "application/json", {}, 400, "expected exactly one of"),
    (
        "two format keys",
        b'{"inputs": [], "instances": []}',
        "application/json",
        {},
        400,
        "exactly one",
    ),
    ("empty body", b"", "application/json", {}, 400, "empty request body"),
    ("no rows", b'{"dataframe_records": []}', "application/json", {}, 400, "no rows to score"),
    ("missing Content-Type", lambda d: _one(d), None, {}, 415, "missing Content-Type"),
    (
        "wrong Content-Type",
        lambda d: _one(d),
        "text/plain",
        {},
        415,
        "unsupported Content-Type 'text/plain'",
    ),
    (
        "non-UTF-8 charset",
        lambda d: _one(d),
        "application/json; charset=latin-1",
        {},
        415,
        "charset",
    ),
    (
        "body over the limit",
        b"x" * int(MAX_BODY_MB * 1024 * 1024 + 10),
        "application/json",
        {},
        413,
        "over",
    ),
    (
        "missing required column",
        lambda d: _without(d, "region"),
        "application/json",
        {},
        422,
        "column 'region': required",
    ),
    (
        "unknown column",
        lambda d: _one(d, coupon="X1"),
        "application/json",
        {},
        422,
        "column 'coupon': unknown",
    ),
    (
        "text in a numeric column",
        lambda d: _one(d, monthly_charges="cheap"),
        "application/json",
        {},
        422,
        "column 'monthly_charges': expected a number, got text 'cheap'",
    ),
    (
        "boolean in a numeric column",
        lambda d: _one(d, age=True),
        "application/json",
        {},
        422,
        "column 'age': expected a number, got a boolean",
    ),
    (
        "fraction in an integer column",
        lambda d: _one(d, tenure_months=1.7),
        "application/json",
        {},
        422,
        "column 'tenure_months': expected an integer, got 1.7",
    ),
    (
        "int32 out of range",
        lambda d: _one(d, support_calls=3_000_000_000),
        "application/json",
        {},
        422,
        "column 'support_calls': 3000000000 is out of range for int32",
    ),
    (
        "infinity",
        lambda d: _one(d, monthly_charges=float("inf")),
        "application/json",
        {},
        422,
        "column 'monthly_charges': expected a finite number",
    ),
    (
        "unseen category",
        lambda d: _one(d, region="mars"),
        "application/json",
        {},
        422,
        "column 'region': category 'mars' never seen in training",
    ),
    (
        "list as a category",
        lambda d: _one(d, contract=["one-year"]),
        "application/json",
        {},
        422,
        "column 'contract': expected a category (text), got list",
    ),
    (
        "split row too short",
        b'{"dataframe_split": {"columns": ["age", "region"], "data": [[1]]}}',
        "application/json",
        {},
        400,
        "dataframe_split.data[0]: expected 2 values",
    ),
    (
        "record not an object",
        b'{"dataframe_records": [[1, 2]]}',
        "application/json",
        {},
        400,
        "dataframe_records[0]: expected an object",
    ),
    (
        "CSV with text in a number column",
        b"age,tenure_months,monthly_charges,support_calls,contract,payment_method,region\nold,1,2.0,0,one-year,card,east\n",
        "text/csv",
        {},
        422,
        "column 'age': expected a number, got text 'old'",
    ),
    (
        "missing token",
        lambda d: _one(d),
        "application/json",
        {"headers": {"Authorization": ""}},
        401,
        "bearer token",
    ),
    (
        "wrong token",
        lambda d: _one(d),
        "application/json",
        {"headers": {"Authorization": "Bearer nope"}},
        401,
        "bearer token",
    ),
    (
        "Host not allowed",
        lambda d: _one(d),
        "application/json",
        {"headers": {"Host": "evil.example"}},
        400,
        "Host 'evil.example' is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "extra", "status", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gets_a_clean_4xx_and_the_server_stays_healthy(
    deployment, body, content_type, extra, status, message
):
    body = body(deployment) if callable(body) else body
    response = deployment.post(body, content_type, **extra)
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["message"], error
    assert set(error) <= {"error_code", "message", "errors"}
    assert "Traceback" not in response.text and "stack_trace" not in response.text
    assert requests.get(f"{deployment.url}/health", timeout=5).status_code == 200
    _good(deployment)


def _raw(
    deployment: Deployment, head: list[tuple[str, str]], body: bytes
) -> tuple[int, dict, bytes]:
    """POST /invocations with exactly these headers (repeats kept): status, headers, body."""
    import http.client

    conn = http.client.HTTPConnection(deployment.url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/invocations", skip_host=True, skip_accept_encoding=True)
    for name, value in [*head, ("Content-Length", str(len(body)))]:
        conn.putheader(name, value)
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


@pytest.mark.parametrize(
    "content_type",
    ["APPLICATION/JSON", 'application/json; charset="utf-8"', "application/json; foo=bar"],
)
def test_content_types_the_gateway_accepts_score_in_the_backend(deployment, content_type):
    """Spellings MLflow itself refuses (415) reach it as the plain media type."""
    response = deployment.post(_one(deployment), content_type)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


@pytest.mark.parametrize(
    "repeated",
    [
        [("Host", "127.0.0.1"), ("Host", "evil.example")],
        [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer nope")],
        [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {TOKEN}")],
    ],
    ids=["host", "authorization", "authorization-last-valid"],
)
def test_a_duplicate_host_or_authorization_header_is_refused(deployment, repeated):
    head = [("Content-Type", "application/json"), *repeated]
    if not any(name == "Host" for name, _ in repeated):
        head.append(("Host", "127.0.0.1"))
    if not any(name == "Authorization" for name, _ in repeated):
        head.append(("Authorization", f"Bearer {TOKEN}"))
    status, _, body = _raw(deployment, head, _one(deployment))
    assert status == 400, body
    assert f"duplicate {repeated[0][0].lower()} header" in json.loads(body)["message"]


def test_replies_to_unauthenticated_clients_do_not_name_the_model(deployment):
    replies = [
        deployment.post(_one(deployment), headers={"Authorization": "Bearer nope"}),
        deployment.post(_one(deployment), headers={"Host": "evil.example"}),
        requests.get(f"{deployment.url}/metrics", timeout=5),
        requests.get(f"{deployment.url}/nope", timeout=5),
    ]
    assert [r.status_code for r in replies] == [401, 400, 401, 404]
    for reply in replies:
        assert (
            "X-Runway-Model" not in reply.headers and "X-Runway-Model-Version" not in reply.headers
        )
        assert MODEL not in reply.text
    named = deployment.post(b"{}")  # a token holder's error names the version it reached
    assert named.status_code == 400 and named.headers["X-Runway-Model"] == MODEL


def test_an_error_echoes_a_huge_value_only_briefly(deployment):
    huge = "x" * 200_000
    response = deployment.post(_one(deployment, region=huge))
    assert response.status_code == 422
    assert len(response.content) < 2000, len(response.content)
    assert "xxxxxxxxxx" in response.text and huge[:1000] not in response.text


def test_wrong_method_and_path_are_clean_and_missing_values_are_imputed(deployment):
    get = requests.get(f"{deployment.url}/invocations", timeout=5)
    assert get.status_code == 405 and get.headers["Allow"] == "POST"
    missing = requests.get(f"{deployment.url}/nope", timeout=5)
    assert missing.status_code == 404
    # A missing value passes by the policy's default: the pipeline imputes it.
    response = deployment.post(_one(deployment, tenure_months=None, region=None))
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_metrics_count_requests_and_name_the_version(deployment):
    _good(deployment)
    assert deployment.post(_one(deployment, not_a_column=1)).status_code == 422
    unauthenticated = requests.get(f"{deployment.url}/metrics", timeout=5)
    assert unauthenticated.status_code == 401
    text = requests.get(
        f"{deployment.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {
        s.labels["code"]
        for s in families["runway_requests"].samples
        if s.labels["path"] == "/invocations" and s.value > 0
    }
    assert {"200", "422"} <= codes
    [info] = families["runway_model_info"].samples
    assert info.labels["model"] == MODEL and info.value == 1
    [count] = [
        s
        for s in families["runway_request_duration_seconds"].samples
        if s.name == "runway_request_duration_seconds_count"
    ]
    assert count.value > 0


def test_predictions_are_logged_for_monitoring(deployment):
    from runway.store.predlog import read_predictions

    _good(deployment)
    target = str(deployment.root / "predictions")
    deadline = time.monotonic() + 15
    logged = read_predictions(MODEL, target)
    while len(logged) < len(deployment.rows) and time.monotonic() < deadline:
        time.sleep(0.5)
        logged = read_predictions(MODEL, target)
    assert len(logged) >= len(deployment.rows)
    assert {"timestamp", "model", "version", "request_id", "input.region", "prediction"} <= set(
        logged.columns
    )
    assert set(logged["model"]) == {MODEL}
    assert set(logged["source"]) == {"serve"}


class Traffic:
    """Clients sending good requests back to back, recording status and version."""

    def __init__(self, deployment: Deployment, clients: int) -> None:
        self.deployment = deployment
        self.stop = threading.Event()
        self.results: list[tuple[float, int, str]] = []
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        session = requests.Session()
        body = json.dumps({"dataframe_records": _records(self.deployment.rows.head(1))})
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                r = session.post(
                    f"{self.deployment.url}/invocations", data=body, headers=headers, timeout=30
                )
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                continue
            self.latencies.append(time.perf_counter() - started)
            self.results.append(
                (time.monotonic(), r.status_code, r.headers.get("X-Runway-Model-Version", ""))
            )
            if r.status_code != 200:
                self.errors.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def wait_for_version(self, version: str, since: float, limit: float = 180.0) -> float:
        """Seconds from ``since`` until responses name ``version`` (inf: not within ``limit``,
        or the server logged that the version failed to start).

        ``limit`` is how long to wait before calling it a failure, not a speed target:
        a new backend's start-up time depends on the machine's load.
        """
        deadline = since + limit
        failed = f"v{version} failed to start"
        while time.monotonic() < deadline:
            for at, _, v in list(self.results):
                if v == version and at >= since:
                    return at - since
            if failed in self.deployment.log.read_text():
                return float("inf")
            time.sleep(0.2)
        return float("inf")


# Two switches, each as long as the default settings allow, and the rest of the test.
@pytest.mark.timeout(2 * _switch_limit(Settings(serve_poll_seconds=POLL_SECONDS)) + 300)
def test_promotion_and_rollback_switch_versions_under_load_without_failing_a_request(deployment):
    limit = _switch_limit(_server_settings(deployment.env))
    with Traffic(deployment, clients=2) as traffic:
        time.sleep(1)
        promoted = deployment.runway("registry", "promote", MODEL, "2", "--to", "Staging")
        assert promoted.returncode == 0, promoted.stderr
        promoted = deployment.runway(
            "registry", "promote", MODEL, "2", "--to", "Production", "--reviewer", "alice"
        )
        assert promoted.returncode == 0, promoted.stderr
        # Two backends warm up side by side on a shared 2-core host: as long as the server may.
        switched = traffic.wait_for_version("2", since=time.monotonic(), limit=limit)
        rolled = deployment.runway("registry", "rollback", MODEL, "--reviewer", "alice")
        assert rolled.returncode == 0, rolled.stderr
        back = traffic.wait_for_version("1", since=time.monotonic(), limit=limit)
        time.sleep(2)  # the old backend drains and stops while traffic goes on
    assert switched != float("inf") and back != float("inf"), (switched, back, limit)
    assert traffic.errors == []
    versions = [v for _, _, v in traffic.results]
    assert Counter(versions)["2"] > 0 and versions[-1] == "1"
    assert len(traffic.results) > 50
    text = deployment.log.read_text()
    assert "switched to" in text


def _log_for_the_registry(deployment: Deployment, make) -> str:
    """Log ``make()``'s model (with v1's contract) in a new run and register it: a new version."""
    uri = deployment.env["MLFLOW_TRACKING_URI"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    contract_run = client.get_model_version(MODEL, "1").run_id
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = client.get_experiment_by_name("serving-tests").experiment_id
    with mlflow.start_run(experiment_id=experiment):
        contract = mlflow.artifacts.load_dict(f"runs:/{contract_run}/contract/contract.json")
        mlflow.log_dict(contract, "contract/contract.json")
        info = make()
    return str(mlflow.register_model(info.model_uri, MODEL).version)


def _switch_and_watch(deployment: Deployment, version: str, expect: str) -> Traffic:
    """Set Production to ``version`` outside runway, with a forged audit record that explains
    it (so only the start-up checks stand), under traffic; wait for ``expect`` in the log."""
    uri = deployment.env["MLFLOW_TRACKING_URI"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    with Traffic(deployment, clients=1) as traffic:
        forge_production(uri, MODEL, version)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and expect not in deployment.log.read_text():
            time.sleep(0.5)
        time.sleep(1)
    # Put v1 back in Production for the tests that follow.
    client.transition_model_version_stage(MODEL, "1", "Production", archive_existing_versions=True)
    client.set_registered_model_alias(MODEL, "production", "1")  # what serving resolves
    return traffic


@pytest.mark.filterwarnings("ignore::UserWarning")  # MLflow's hints about the toy model
def test_a_new_version_that_cannot_score_leaves_traffic_on_the_old_one(deployment):
    """A trusted model whose predict fails on its own input example: traffic stays on v1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    numeric = ["age", "tenure_months", "monthly_charges", "support_calls"]
    train = pd.read_csv(REPO / "data" / "churn.csv").dropna()
    numbers_only = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    numbers_only.fit(train[numeric].astype("float64"), train["churned"])

    def make():  # its example has the text columns the pipeline never saw: predict fails
        return mlflow.sklearn.log_model(
            numbers_only,
            name="model",
            serialization_format="skops",
            skops_trusted_types=[],
            input_example=deployment.rows.head(2),
            pip_requirements=[],
        )

    broken = _log_for_the_registry(deployment, make)
    expect = f"v{broken} failed to start; traffic stays on v1"
    traffic = _switch_and_watch(deployment, broken, expect)
    assert expect in deployment.log.read_text()
    assert "failed to score its input example" in deployment.log.read_text()
    assert traffic.errors == []
    assert {v for _, _, v in traffic.results} == {"1"}
    assert _metric(deployment, "runway_model_switch_failures_total") == 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_new_version_that_runs_code_is_refused_and_traffic_stays(deployment, tmp_path):
    """A custom pyfunc (its own Python code) set to Production outside runway is never started."""
    marker = tmp_path / "ran"
    source = tmp_path / "custom.py"
    source.write_text(
        "import mlflow.pyfunc\n"
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "class Custom(mlflow.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        return [0] * len(model_input)\n"
        "mlflow.models.set_model(Custom())\n"
    )

    def make():
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(source),
            input_example=deployment.rows.head(2),
            pip_requirements=[],
        )

    custom = _log_for_the_registry(deployment, make)  # logging ran it here, in the test
    marker.unlink()  # from here on, only a load would write it
    expect = f"v{custom} failed to start; traffic stays on v1: refusing {MODEL} v{custom}"
    traffic = _switch_and_watch(deployment, custom, expect)
    assert expect in deployment.log.read_text()
    assert not marker.exists()
    assert traffic.errors == []
    assert {v for _, _, v in traffic.results} == {"1"}


def _metrics(deployment: Deployment) -> str:
    return requests.get(
        f"{deployment.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    ).text


def _metric(deployment: Deployment, sample: str) -> float:
    """One unlabelled sample's value, as Prometheus parses the page."""
    for family in text_string_to_metric_families(_metrics(deployment)):
        for s in family.samples:
            if s.name == sample and not s.labels:
                return s.value
    raise AssertionError(f"{sample} not on /metrics")


def test_crashed_backends_are_replaced(deployment):
    """Both backends die (the worst case): requests get 503 until replacements answer."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    version = requests.get(f"{deployment.url}/ready", headers=auth, timeout=5).json()["version"]
    pids = _scoring_servers(deployment)
    assert len(pids) == 2, pids
    for pid in pids:  # the scoring servers themselves die, as a crash in predict would take them
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    status = 0
    while time.monotonic() < deadline:
        try:
            status = deployment.post(_one(deployment)).status_code
        except requests.RequestException:
            status = -1
        if status == 200:
            break
        assert status in (503, -1) or status == 200, status  # never a hang or a 500
        time.sleep(0.5)
    assert status == 200
    ready = requests.get(f"{deployment.url}/ready", headers=auth, timeout=5).json()
    assert ready["version"] == version
    deadline = time.monotonic() + 120
    while _metric(deployment, "runway_backend_restarts_total") < 2:
        assert time.monotonic() < deadline, _metrics(deployment)
        time.sleep(0.5)
    assert not set(pids) & set(_scoring_servers(deployment))


def test_eight_clients_for_ten_seconds_get_no_errors(deployment):
    with Traffic(deployment, clients=8) as traffic:
        time.sleep(10)
    assert traffic.errors == []
    assert len(traffic.results) > 100
    p99 = float(np.percentile(traffic.latencies, 99)) * 1000
    print(f"8 clients x 10 s: {len(traffic.results)} requests, p99 {p99:.1f} ms")
