"""Team mode on the real stack: PostgreSQL, `mlflow server` with basic-auth, moto's S3.

The stack and its members are tests/e2e/team_stack.py's, started once per session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import requests
import yaml
from sklearn.datasets import load_breast_cancer

from runway.team.procs import tree
from tests.conftest import REPO
from tests.e2e.team_stack import (
    MODEL,
    VENV,
    Team,
    _as,
    _error_lines,
    _history,
    _make,
    _spec,
)
from tests.helpers import free_port, stop_process_group, wait_http

pytestmark = pytest.mark.slow


def test_team_up_again_changes_nothing_and_the_server_is_lean(team):
    again = _make(team.env, "team-up", team.root)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 3, again.stdout
    status = subprocess.run(
        ["runway", "team", "status"], env=team.env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stdout
    mlflow_line = next(line for line in status.stdout.splitlines() if line.startswith("mlflow"))
    processes = int(mlflow_line.split(" processes")[0].split()[-1])
    assert 1 <= processes <= 3, mlflow_line  # `mlflow server`'s defaults start 13


def test_anonymous_and_unknown_users_get_one_line_with_exit_13(team):
    anonymous = team.runway(None, "registry", "status")
    assert anonymous.returncode == 13, anonymous.stderr
    [line] = _error_lines(anonymous)
    assert "not authenticated" in line and "MLFLOW_TRACKING_USERNAME" in line

    wrong = team.runway("carol", "registry", "status", MLFLOW_TRACKING_PASSWORD="not-her-password")
    assert wrong.returncode == 13, wrong.stderr
    assert len(_error_lines(wrong)) == 1


def test_the_author_trains_and_registers_as_herself(team, monkeypatch):
    for _ in range(2):  # versions 1 and 2
        trained = team.runway("carol", "train", "spec.yaml", "--register")
        assert trained.returncode == 0, trained.stderr
        assert "View run" not in trained.stdout  # MLflow's per-run links stay quiet
    server = team.members["carol"]["MLFLOW_TRACKING_URI"].rstrip("/")
    assert f"look   {server}/#/experiments/" in trained.stdout  # the server's own UI
    run_id = trained.stdout.split()[1]
    client = _as(monkeypatch, team, "admin")
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.user"] == "carol"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server
    on_disk = Path(team.env["RUNWAY_TEAM_DIR"]) / "artifacts" / run.info.experiment_id / run_id
    assert (on_disk / "artifacts" / "contract").is_dir()  # to the stack's folder, not to moto
    assert [v.version for v in client.search_model_versions(f"name = '{MODEL}'")] != []


SWEEP_MODEL, SWEEP_TRIALS = "team-sweep", 12


def _sweep_spec(folder: Path) -> Path:
    space = {
        "model__n_estimators": {"type": "int", "low": 200, "high": 300},
        "model__max_depth": {"type": "int", "low": 2, "high": 8},
    }
    doc = _spec(
        model_name=SWEEP_MODEL,
        estimator={"name": "RandomForestClassifier", "params": {"n_jobs": 1}},
        metrics=["roc_auc"],
        sweep={"trials": SWEEP_TRIALS, "seed": 5, "pruning": False, "space": space},
    )
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _study(team: Team) -> optuna.Study | None:
    storage = optuna.storages.RDBStorage(team.members["carol"]["RUNWAY_OPTUNA_STORAGE"])
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return None
    return optuna.load_study(study_name=summaries[0].study_name, storage=storage)


def _wait_for(what: str, check, timeout: float = 300.0, *procs: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited {proc.returncode} before {what}"
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:g}s")


def _start(team: Team, user: str, folder: Path, *args: str) -> subprocess.Popen:
    log = open(folder / "sweep.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "runway", *args],
        cwd=folder,
        env={**team.env, **team.members[user]},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_second_machine_joins_a_running_sweep_and_a_killed_worker_loses_no_trial(
    team, monkeypatch
):
    first, second = team.root / "machine-a", team.root / "machine-b"
    for folder in (first, second):
        folder.mkdir()
        _sweep_spec(folder)  # the spec file travels (git); nothing else is shared
    owner = _start(team, "carol", first, "sweep", "sweep.yaml")
    joiner = None
    try:
        _wait_for(
            "study with a parent run",
            lambda: (s := _study(team)) and s.user_attrs.get("mlflow_parent_run_id"),
            300,
            owner,
        )
        joiner = _start(team, "carol", second, "sweep", "sweep.yaml", "--join")

        def joiners_trial() -> int | None:
            study = _study(team)
            for trial in study.get_trials(deepcopy=False) if study else []:
                worker = str(trial.user_attrs.get("runway.worker", ""))
                if trial.state.name == "RUNNING" and worker.endswith(f":{joiner.pid}"):
                    return trial.number
            return None

        killed = _wait_for("trial on the joining machine", joiners_trial, 300, owner, joiner)
        os.kill(joiner.pid, signal.SIGKILL)  # mid-trial: no handler runs, no run is ended
        joiner.wait(30)
        assert owner.wait(600) == 0, (first / "sweep.log").read_text()[-3000:]
    finally:
        for proc in (owner, joiner):
            if proc is not None:
                stop_process_group(proc)

    study = _study(team)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(numbers)))  # none lost, none twice
    states = {t.number: t.state.name for t in trials}
    assert states[killed] == "FAIL"
    [retry] = [t for t in trials if killed in (t.system_attrs.get("retry_history") or [])]
    assert retry.state.name == "COMPLETE" and retry.params == trials[killed].params
    assert set(states.values()) <= {"COMPLETE", "FAIL"}
    assert sum(s == "COMPLETE" for s in states.values()) >= SWEEP_TRIALS
    ran_by = {str(t.user_attrs.get("runway.worker", "")).rsplit(":", 1)[-1] for t in trials}
    assert str(joiner.pid) in ran_by and str(owner.pid) in ran_by

    client = _as(monkeypatch, team, "admin")
    parent = study.user_attrs["mlflow_parent_run_id"]
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        max_results=1000,
    )
    by_number = sorted(int(c.data.tags["optuna.trial_number"]) for c in children)
    assert by_number == numbers  # one run per trial
    run_states = {int(c.data.tags["optuna.trial_number"]): c.info.status for c in children}
    assert run_states[killed] == "KILLED"
    assert "RUNNING" not in run_states.values()
    log_a, log_b = (first / "sweep.log").read_text(), (second / "sweep.log").read_text()
    assert f"registered {SWEEP_MODEL} version 1" in log_a and "registered" not in log_b
    assert "View run" not in log_a
    assert [str(v.version) for v in client.search_model_versions(f"name = '{SWEEP_MODEL}'")] == [
        "1"
    ]


def test_four_eyes_compares_the_logged_in_reviewer_with_the_author(team, monkeypatch):
    staged = team.runway("carol", "registry", "promote", MODEL, "1", "--to", "Staging")
    assert staged.returncode == 0, staged.stderr

    claimed = team.runway(
        "carol", "registry", "promote", MODEL, "1", "--to", "Production", "--reviewer", "alice"
    )
    assert claimed.returncode == 6, claimed.stdout + claimed.stderr
    [line] = _error_lines(claimed)
    assert "logged in" in line and "'carol'" in line
    herself = team.runway("carol", "registry", "promote", MODEL, "1", "--to", "Production")
    assert herself.returncode == 6
    assert "four-eyes" in _error_lines(herself)[0]

    client = _as(monkeypatch, team, "admin")
    assert client.get_model_version(MODEL, "1").current_stage == "Staging"
    records = _history(client, "1")
    seen = [
        (r.data.tags["runway.audit.to_stage"], r.data.tags["runway.audit.outcome"]) for r in records
    ]
    assert seen == [("Staging", "applied"), ("Production", "refused"), ("Production", "refused")]
    assert {r.data.tags["runway.audit.actor"] for r in records} == {"carol"}
    assert {r.data.tags["mlflow.user"] for r in records} == {"carol"}


def test_a_reviewer_with_the_documented_grants_promotes_to_staging_and_production(
    team, monkeypatch
):
    staged = team.runway("alice", "registry", "promote", MODEL, "2", "--to", "Staging")
    assert staged.returncode == 0, staged.stderr
    promoted = team.runway(
        "alice", "registry", "promote", MODEL, "1", "--to", "Production", "--comment", "ok"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "result: PASS" in promoted.stdout

    client = _as(monkeypatch, team, "admin")
    version = client.get_model_version(MODEL, "1")
    assert version.current_stage == "Production" and version.tags["approved_by"] == "alice"
    last = _history(client, "1")[-1]
    assert last.data.tags["runway.audit.outcome"] == "applied"
    assert last.data.tags["mlflow.user"] == last.data.tags["runway.audit.actor"] == "alice"
    assert version.tags["runway.audit_run_id"] == last.info.run_id
    assert [a.path for a in client.list_artifacts(last.info.run_id)] == [
        "gate_report.json",
        "gate_report.txt",
    ]
    # She may only read carol's run, so the version links the audit record's copy.
    assert f"runs/{last.info.run_id}/artifacts/gate_report.txt" in version.description
    history = team.runway("alice", "registry", "history", MODEL, "--verify")
    assert history.returncode == 0, history.stdout + history.stderr
    assert "alice" in history.stdout
    # Applied records (and what was decided under the lock) are on the chain; refusals
    # before the lock (carol's two) are recorded off it.
    assert (
        "audit chain: 3 records on an intact chain; 2 refusals recorded before the lock, "
        "off the chain by design"
    ) in history.stdout
    assert "explains every version's stage, aliases and approval" in history.stdout


def test_a_write_the_server_refuses_is_recorded_as_failed(team, monkeypatch):
    refused = team.runway("dave", "registry", "promote", MODEL, "2", "--to", "Archived")
    assert refused.returncode == 14, refused.stdout + refused.stderr
    [line] = _error_lines(refused)
    assert line.startswith("error: permission denied") and "dave" in line

    client = _as(monkeypatch, team, "admin")
    assert client.get_model_version(MODEL, "2").current_stage == "Staging"  # nothing moved
    last = _history(client, "2")[-1]
    assert last.data.tags["runway.audit.to_stage"] == "Archived"
    assert last.data.tags["runway.audit.outcome"] == "failed"
    assert "permission denied" in last.data.tags["runway.audit.reason"]
    assert last.data.tags["runway.audit.actor"] == "dave"


def test_rounds_of_two_racing_production_promotions_keep_one_champion(team, monkeypatch, tmp_path):
    from runway.jobs.promote import promote
    from runway.store import registry

    home = team.home("alice")
    monkeypatch.chdir(home)  # the policy file is in registry/ here
    client = _as(monkeypatch, team, "carol")
    source = client.get_model_version(MODEL, "1").source
    # Four rounds (each ~13 s on 2 cores): every round races two promoters through the lock.
    versions = [registry.register_version(MODEL, source, tags={}).version for _ in range(8)]
    for version in versions:  # set-up: the author's versions in Staging (the gates ran above)
        registry.transition(MODEL, version, "Staging")
        registry.set_version_tags(MODEL, version, {registry.STAGE_TAG: "Staging"})
    client = _as(monkeypatch, team, "alice")
    for first, second in zip(versions[::2], versions[1::2], strict=True):
        outcome: dict[str, object] = {}

        def attempt(version: str, outcome: dict[str, object] = outcome) -> None:
            try:
                outcome[version] = promote(MODEL, version, "Production", comment="race")
            except Exception as exc:
                outcome[version] = exc

        threads = [threading.Thread(target=attempt, args=(v,)) for v in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        stages = [v.current_stage for v in client.search_model_versions(f"name = '{MODEL}'")]
        assert stages.count("Production") == 1, (outcome, stages)
        for version in (first, second):
            records = [
                r
                for r in _history(client, version)
                if r.data.tags["runway.audit.to_stage"] == "Production"
            ]
            assert len(records) == 1, (version, outcome)
            applied = records[0].data.tags["runway.audit.outcome"] == "applied"
            assert applied == (not isinstance(outcome[version], Exception)), outcome
    assert not [m for m in client.search_registered_models() if m.name.endswith(".runway-lock")]
    # Eight racing writers under the lock still leave one linear chain, which explains
    # every version (the set-up's moves to Staging are superseded by audited ones).
    verified = team.runway("alice", "registry", "history", MODEL, "--verify")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr
    assert "explains every version's stage, aliases and approval" in verified.stdout


def test_a_read_only_service_account_serves_and_scores_from_s3(team, monkeypatch):
    import boto3

    from runway.store.predlog import read_predictions

    s3env = team.members["svc"]
    s3 = boto3.client(
        "s3",
        endpoint_url=s3env["AWS_ENDPOINT_URL"],
        aws_access_key_id=s3env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3env["AWS_SECRET_ACCESS_KEY"],
        region_name=s3env["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket="team-data")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(40)
    local = team.home("svc") / "in.csv"
    rows.to_csv(local, index=False)
    s3.upload_file(str(local), "team-data", "in/day1.csv")

    scored = team.runway(
        "svc",
        "score",
        MODEL,
        "--input",
        "s3://team-data/in/day1.csv",
        "--output",
        "s3://team-data/out/day1.parquet",
    )
    assert scored.returncode == 0, scored.stderr
    s3.download_file("team-data", "out/day1.parquet", str(team.home("svc") / "out.parquet"))
    out = pd.read_parquet(team.home("svc") / "out.parquet")
    assert len(out) == 40 and set(out["model_version"].astype(str)) == {
        _production(team, monkeypatch)
    }

    logs = team.home("svc") / "serve-logs"
    assert len(_serve_and_predict(team, rows.head(3), logs)) == 3
    assert list(logs.glob("backend-*.log"))  # its backend, on a Unix socket
    # Batch and served rows in the one prediction log, the team database's.
    logged = read_predictions(MODEL, team.members["svc"]["RUNWAY_PREDICTION_LOG"])
    assert len(logged) == 43, logged.tail()
    # #27-10: the monitor judges that log, batch and served rows in one window, as an author
    # (read on the log) would; it crashed on pandas 3's read-only arrays before.
    # (a policy file of its own: registry/ holds the team's promotion policy, left as agreed)
    policy = yaml.safe_load((team.home("carol") / "registry" / f"{MODEL}.yaml").read_text())
    watch = team.home("carol") / "watch.yaml"
    watch.write_text(yaml.safe_dump(policy | {"monitor": {"min_rows": 10}}))
    judge = ["monitor", MODEL, "--window", "1d", "--no-action", "--policy", str(watch)]
    judged = team.runway("carol", *judge)
    assert "Traceback" not in judged.stderr, judged.stderr[-3000:]
    assert judged.returncode in (0, 10), judged.stdout + judged.stderr
    assert "43 scored" in judged.stdout, judged.stdout
    # Read-only: the same account may not change the registry.
    archived = team.runway("svc", "registry", "promote", MODEL, "2", "--to", "Archived")
    assert archived.returncode == 14, archived.stderr


def _serve_and_predict(team: Team, rows: pd.DataFrame, logs: Path) -> list:
    """`runway serve MODEL` as the service account: the Production version's predictions."""
    port = free_port()
    command = ["serve", MODEL, "--port", str(port), "--workers", "1", "--log-dir", str(logs)]
    out = open(team.home("svc") / "serve.out", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "runway", *command],
        cwd=team.home("svc"),
        env={**team.env, **team.members["svc"]},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", proc, timeout=240)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{out.name}:\n{Path(out.name).read_text()[-3000:]}"
            ) from None
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": rows.to_dict(orient="records")},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]
    finally:
        stop_process_group(proc)
        out.close()


def _production(team: Team, monkeypatch: pytest.MonkeyPatch) -> str:
    client = _as(monkeypatch, team, "admin")
    [champion] = [
        v
        for v in client.search_model_versions(f"name = '{MODEL}'")
        if v.current_stage == "Production"
    ]
    return str(champion.version)


def test_the_database_uri_instead_of_the_server_names_the_real_cause(team):
    database = team.members["admin"]["RUNWAY_OPTUNA_STORAGE"].rsplit("/", 1)[0] + "/mlflow"
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_csv(team.home("admin") / "in.csv", index=False)
    direct = team.runway(
        "admin",
        "score",
        MODEL,
        "--input",
        "in.csv",
        "--output",
        "out.csv",
        MLFLOW_TRACKING_URI=database,
    )
    assert direct.returncode == 4, direct.stderr
    [line] = _error_lines(direct)
    assert "mlflow-artifacts" in line and "http" in line and "contract.json" not in line


def test_team_down_leaves_nothing_running_and_up_finds_the_artifacts(team):
    run_dir = Path(team.env["RUNWAY_TEAM_DIR"]) / "run"
    pids = [int(p.read_text()) for p in run_dir.glob("*.pid")]
    trees = {pid for root in pids for pid in tree(root)}
    assert len(pids) == 3 and len(trees) > 3

    down = _make(team.env, "team-down", team.root)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "nothing left running" in down.stdout
    assert not [pid for pid in trees if _alive(pid)]
    base = int(team.env["RUNWAY_TEAM_PORT_BASE"])
    for port in range(base, base + 3):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, port
    assert _make(team.env, "team-down", team.root).returncode == 0  # twice is fine

    up = _make(team.env, "team-up", team.root)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "artifacts in " in up.stdout
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_csv(team.home("svc") / "again.csv", index=False)
    scored = team.runway("svc", "score", MODEL, "--input", "again.csv", "--output", "again.parquet")
    assert scored.returncode == 0, scored.stderr  # the model's files are still on disk


def test_a_version_registered_before_the_whole_stack_is_killed_still_serves(team, monkeypatch):
    """A crash (kill -9 of every process of the stack) loses no artifact PostgreSQL points at."""
    trained = team.runway("carol", "train", "spec.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    version = trained.stdout.split(f"registered {MODEL} version ")[1].split()[0]
    for stage in ("Staging", "Production"):
        moved = team.runway("alice", "registry", "promote", MODEL, version, "--to", stage)
        assert moved.returncode == 0, moved.stdout + moved.stderr

    roots = [int(p.read_text()) for p in (Path(team.env["RUNWAY_TEAM_DIR"]) / "run").glob("*.pid")]
    assert len(roots) == 3
    killed = _kill_9(roots)
    assert len(killed) > 3
    # Gone and reaped, as after a reboot: PostgreSQL takes a zombie for a live postmaster.
    _wait_for("the stack's processes to go", lambda: not [p for p in killed if _exists(p)], 60)

    up = _make(team.env, "team-up", team.root)
    assert up.returncode == 0, up.stdout + up.stderr
    assert _production(team, monkeypatch) == version
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3)
    assert len(_serve_and_predict(team, rows, team.home("svc") / "crash-logs")) == 3


def _kill_9(roots: list[int]) -> set[int]:
    """SIGKILL the process trees of ``roots`` (stopped first, so none forks in between)."""
    frozen: set[int] = set()
    while found := {pid for root in roots for pid in tree(root)} - frozen:
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= found
    for pid in frozen:  # no handler runs: nothing is saved, flushed or shut down
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return frozen


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _alive(pid: int) -> bool:
    from runway.team.procs import alive

    return bool(alive([pid]))


def test_make_ui_with_a_server_uri_points_at_the_servers_own_ui(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:15402"}
    proc = subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), "ui", f"VENV={VENV}", "INSTALL="],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "serves its own MLflow UI: open http://127.0.0.1:15402" in proc.stdout
