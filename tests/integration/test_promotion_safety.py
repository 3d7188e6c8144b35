"""The promotion lock holds while its holder works, and the input policy travels with the version.

Both on a real MLflow store: the lock test makes one promotion's gate evaluation
slower than several leases and sends a second promotion at it; the policy test
promotes under one directory's policy and scores from another directory.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from runway.core.columns.input_policy import InputPolicy
from runway.errors import LockTimeout, ScoringError, SpecError
from runway.jobs import gate_facts
from runway.jobs.promote import promote
from runway.jobs.register import register_training
from runway.jobs.status import history
from runway.jobs.train import train
from runway.scoring.batch import ScoringOptions, score_file
from runway.settings import Settings, get_settings
from runway.store import registry
from runway.store.lock import HOLDER_TAG
from tests.helpers import write_spec

MODEL = "safety"


def _policy(root: Path, **sections) -> Path:
    path = root / "registry" / f"{MODEL}.yaml"
    path.parent.mkdir(exist_ok=True)
    doc = {
        "model": MODEL,
        "staging": {"max_latency_ms": 60_000, "max_model_size_mb": 1000},
        "production": {"reviewers": ["alice"], "four_eyes": False},
        **sections,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _version(tmp_path: Path, **spec) -> str:
    from runway.core.training.spec import load_spec

    path = write_spec(tmp_path / "s.yaml", model_name=MODEL, **spec)
    return register_training(train(load_spec(path)), MODEL).version


def _lock_holder(client: mlflow.MlflowClient) -> str | None:
    try:
        return client.get_registered_model(f"{MODEL}.runway-lock").tags.get(HOLDER_TAG)
    except mlflow.exceptions.MlflowException:
        return None


def test_a_slow_holder_keeps_the_lock_past_its_lease(client, tmp_path, monkeypatch):
    _policy(tmp_path)
    a, b = _version(tmp_path), _version(tmp_path, estimator={"name": "DecisionTreeClassifier"})
    promote(MODEL, a, "Staging")
    promote(MODEL, b, "Staging")
    # A lease of 1 s, a wait of 3 s, and a gate evaluation of version a that takes 6 s.
    settings = Settings(lock_lease=1.0, lock_timeout=3.0)
    real = gate_facts.evaluate

    def slow_for_a(policy, candidate, *args, **kwargs):
        if candidate.version == a:
            time.sleep(6)
        return real(policy, candidate, *args, **kwargs)

    monkeypatch.setattr(gate_facts, "evaluate", slow_for_a)
    outcome: dict[str, object] = {}

    def attempt(version: str) -> None:
        try:
            outcome[version] = promote(
                MODEL, version, "Production", reviewer="alice", settings=settings
            )
        except Exception as exc:
            outcome[version] = exc

    first = threading.Thread(target=attempt, args=(a,))
    first.start()
    deadline = time.monotonic() + 30
    while _lock_holder(client) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = _lock_holder(client)
    assert holder, "the first promotion never took the lock"
    second = threading.Thread(target=attempt, args=(b,))
    second.start()
    holders = set()
    while second.is_alive():
        holders.add(_lock_holder(client))
        time.sleep(0.1)
    first.join(60)

    # The second neither entered nor broke the first's lock (held across 6 leases).
    assert isinstance(outcome[b], LockTimeout), outcome[b]
    assert holders == {holder}
    assert not isinstance(outcome[a], Exception), outcome[a]
    production = [
        v.version
        for v in client.search_model_versions(f"name = '{MODEL}'")
        if v.current_stage == "Production"
    ]
    assert production == [int(a)]
    assert _lock_holder(client) is None  # released by its holder
    # The attempt that gave up on the lock is in the audit trail too.
    gave_up = [e for e in history(MODEL) if e.version == b and e.to_stage == "Production"]
    assert [(e.outcome, "holds" in e.reason) for e in gave_up] == [("failed", True)]


def test_the_input_policy_travels_with_the_version(client, tmp_path, monkeypatch, caplog):
    lenient = {"unknown_columns": "pass", "unseen_categories": "pass", "missing_values": "reject"}
    _policy(tmp_path, input=lenient)
    version = _version(tmp_path)
    promote(MODEL, version, "Staging")
    promote(MODEL, version, "Production", reviewer="alice")
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(20)
    rows["comment"] = "an extra column the model never saw"
    rows.loc[3, "mean radius"] = None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rows.to_parquet(elsewhere / "in.parquet", index=False)
    monkeypatch.chdir(elsewhere)  # no registry/ folder here: the version must carry its policy

    recorded = registry.applied_input_policy(MODEL, version)
    result = score_file(MODEL, "in.parquet", "out.parquet", ScoringOptions(max_reject_rate=1.0))

    assert recorded == InputPolicy(**lenient)
    assert (result.rows_scored, result.rows_rejected) == (19, 1)  # the extra column passed
    rejects = pd.read_parquet(elsewhere / "out.rejects.parquet")
    assert rejects["row"].tolist() == [3] and "missing value" in rejects["reason"][0]
    tags = client.get_model_version(MODEL, version).tags
    assert len(tags["runway.policy.sha256"]) == 64 and "unknown_columns" in tags["runway.policy"]

    # A version promoted without a recorded policy gets the defaults, and says so.
    other = _version(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert registry.applied_input_policy(MODEL, other) == InputPolicy()
    assert "no input policy recorded" in caplog.text
    with pytest.raises(ScoringError, match="not model inputs"):
        score_file(MODEL, "in.parquet", "out2.parquet", version=other)


def test_promotion_without_a_policy_file_names_the_expected_path(client, tmp_path):
    version = _version(tmp_path)
    with pytest.raises(SpecError) as missing:
        promote(MODEL, version, "Staging")
    expected = Path(get_settings().registry_dir) / f"{MODEL}.yaml"
    assert f"{expected}: policy file not found" in str(missing.value)


def _lock_create_fails(monkeypatch, error_code: str, times: int) -> list[str]:
    """The promotion lock's client, whose first ``times`` creates fail with ``error_code``
    as a tracking server answers them (RestException); everything else is the real store."""
    from mlflow.exceptions import RestException

    from runway.store import lock as lock_module

    real, failed = lock_module.client, []

    class Client:
        def __init__(self) -> None:
            self._real = real()

        def __getattr__(self, name: str):
            return getattr(self._real, name)

        def create_registered_model(self, name: str, **kwargs):
            if len(failed) < times:
                failed.append(name)
                raise RestException({"error_code": error_code, "message": f"{name}: {error_code}"})
            return self._real.create_registered_model(name, **kwargs)

    monkeypatch.setattr(lock_module, "client", Client)
    return failed


def test_a_lock_create_that_loses_the_race_to_a_release_is_tried_again(
    client, tmp_path, monkeypatch
):
    """Seen on `mlflow server` in ~1% of conflicting creates: MLflow looks the name up
    again after the conflict, the holder has just deleted it, and the create answers
    RESOURCE_DOES_NOT_EXIST. That is a busy lock, not a failure."""
    _policy(tmp_path)
    version = _version(tmp_path)
    failed = _lock_create_fails(monkeypatch, "RESOURCE_DOES_NOT_EXIST", times=1)

    result = promote(MODEL, version, "Staging")

    assert result.applied and failed == [f"{MODEL}.runway-lock"]
    assert [e.outcome for e in history(MODEL)] == ["applied"]


def test_a_lock_the_server_will_not_create_is_one_failed_audit_record(
    client, tmp_path, monkeypatch
):
    from runway.errors import PermissionDenied

    _policy(tmp_path)
    version = _version(tmp_path)
    _lock_create_fails(monkeypatch, "PERMISSION_DENIED", times=1000)

    with pytest.raises(PermissionDenied, match="permission denied"):
        promote(MODEL, version, "Staging")

    [entry] = history(MODEL)
    assert (entry.outcome, entry.to_stage) == ("failed", "Staging")
    assert "permission denied" in entry.reason
    assert client.get_model_version(MODEL, version).current_stage == "None"


def test_records_decided_under_the_lock_are_on_the_chain_and_refusals_before_it_are_not(
    client, tmp_path, monkeypatch
):
    """Every attempt is recorded; only the lock's holder appends to the model's chain, so
    a refusal before the lock cannot fork it, and the chain still explains the registry."""
    from runway.errors import GateFailure, RegistryError
    from runway.jobs.status import verify

    _policy(tmp_path, staging={"thresholds": ["roc_auc >= 0.0"]})
    version = _version(tmp_path)
    with pytest.raises(RegistryError, match="Staging first"):
        promote(MODEL, version, "Production", reviewer="alice")  # the stage rule: no lock
    promote(MODEL, version, "Staging")
    _policy(tmp_path, staging={"thresholds": ["roc_auc >= 1.01"]})
    weak = _version(tmp_path)
    with pytest.raises(GateFailure):
        promote(MODEL, weak, "Staging")  # judged under the lock

    entries = history(MODEL)
    assert [(e.version, e.outcome, e.chained) for e in entries] == [
        (version, "refused", False),
        (version, "applied", True),
        (weak, "refused", True),
    ]
    report = verify(MODEL)
    assert report.ok, (report.records, report.versions)
    assert report.order == [entries[1].audit_run_id, entries[2].audit_run_id]


def _forced(client: mlflow.MlflowClient, tmp_path: Path) -> tuple[str, str]:
    """v1 promoted through runway; v2 put in Production with MLflow's own client (review
    bypassed, as an author with EDIT can): (audited, forced)."""
    _policy(tmp_path)
    audited, forced = _version(tmp_path), _version(tmp_path)
    promote(MODEL, audited, "Staging")
    promote(MODEL, audited, "Production", reviewer="alice")
    client.transition_model_version_stage(MODEL, forced, "Production")
    return audited, forced


def test_a_production_set_outside_runway_is_not_scored_and_serving_keeps_the_audited_one(
    client, tmp_path, monkeypatch
):
    """Issue 27 item 1 / issue 30 item 3: one rule (store.audit.resolve_audited) for
    batch scoring (refused, exit 12) and serving (the audited version stands in)."""
    from sklearn.datasets import load_breast_cancer

    from runway.errors import AuditUnverified
    from runway.store import audit

    audited, forced = _forced(client, tmp_path)
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuditUnverified) as refused:
        score_file(MODEL, "in.parquet", "out.parquet")
    assert refused.value.exit_code == 12
    assert f"v{forced} is in Production but the audit chain" in str(refused.value)
    assert "not scoring with it" in str(refused.value)
    assert not (tmp_path / "out.parquet").exists()
    # the author's own version, asked for by number, is refused the same way
    with pytest.raises(AuditUnverified):
        score_file(MODEL, "in.parquet", "out.parquet", version=forced)

    assert registry.resolve(MODEL).version == audited  # @production: the stage is a mirror
    chosen = audit.resolve_audited(MODEL, get_settings())
    assert chosen.model.version == audited
    assert f"{MODEL} v{forced} is in Production but the audit chain does not explain it" in (
        chosen.refused
    )
    assert f"runway registry rollback {MODEL}" in chosen.fix


def test_with_no_audited_version_to_stand_in_serving_and_scoring_both_refuse(
    client, tmp_path, monkeypatch
):
    from sklearn.datasets import load_breast_cancer

    from runway.errors import AuditUnverified
    from runway.store import audit

    _policy(tmp_path)
    forced = _version(tmp_path)
    client.transition_model_version_stage(MODEL, forced, "Production")
    load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3).to_parquet(
        tmp_path / "in.parquet", index=False
    )
    monkeypatch.chdir(tmp_path)
    refused = f"v{forced} is in Production but .*no audited Production version"
    with pytest.raises(AuditUnverified, match=refused):
        score_file(MODEL, "in.parquet", "out.parquet")
    with pytest.raises(AuditUnverified, match=refused):  # what serve's child raises
        audit.resolve_audited(MODEL, get_settings())


def test_rollback_of_a_forced_production_goes_back_to_the_audited_champion(client, tmp_path):
    """Recovery must not be blocked: the forced version replaced nothing in the audit trail."""
    from runway.jobs.promote import rollback
    from runway.jobs.status import verify

    audited, forced = _forced(client, tmp_path)
    done = rollback(MODEL, reviewer="alice")
    assert done.version == audited
    found = client.search_model_versions(f"name = '{MODEL}'")
    stages = {str(v.version): v.current_stage for v in found}
    assert stages == {audited: "Production", forced: "Archived"}
    report = verify(MODEL)
    assert report.champion == audited and forced not in report.versions, report


@pytest.mark.slow
def test_the_serving_child_resolves_and_fetches_the_audited_version_and_says_why(
    client, mlflow_store, tmp_path
):
    """What `runway serve` asks its prepare child, at start-up and at each registry move."""
    import asyncio

    from runway.serving import prepare

    audited, forced = _forced(client, tmp_path)
    settings = Settings(MLFLOW_TRACKING_URI=mlflow_store)
    fetched = asyncio.run(prepare.fetch(settings, MODEL, None, tmp_path / "served"))
    assert fetched.model.version == audited  # at start-up
    answer = asyncio.run(prepare.resolve(settings, MODEL))  # at each registry move
    assert answer.model.version == audited
    assert f"{MODEL} v{forced} is in Production but the audit chain" in answer.refused
    assert f"serving v{audited}" in answer.refused and fetched.refused == answer.refused


def _alias_forced(client: mlflow.MlflowClient, tmp_path: Path) -> tuple[str, str]:
    """v1 promoted through runway; then @production moved to v2 with MLflow's own client
    (the stage mirror untouched): (audited, forced)."""
    _policy(tmp_path)
    audited, forced = _version(tmp_path), _version(tmp_path)
    promote(MODEL, audited, "Staging")
    promote(MODEL, audited, "Production", reviewer="alice")
    client.set_registered_model_alias(MODEL, "production", forced)
    return audited, forced


def test_an_alias_moved_outside_runway_is_refused_like_a_forced_stage(
    client, tmp_path, monkeypatch
):
    """Issue 28 (aliases first): what runway reads is @production, so moving the alias with
    MLflow's client must be refused exactly as a forced stage is: scoring exits 12,
    serving's resolution keeps the audited version and says why."""
    from sklearn.datasets import load_breast_cancer

    from runway.errors import AuditUnverified
    from runway.store import audit

    audited, forced = _alias_forced(client, tmp_path)
    assert registry.resolve(MODEL).version == forced  # the alias is what resolve reads
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuditUnverified) as refused:
        score_file(MODEL, "in.parquet", "out.parquet")
    assert refused.value.exit_code == 12
    assert f"v{forced} is in Production but the audit chain" in str(refused.value)
    assert "alias @production set outside runway" in str(refused.value)
    assert not (tmp_path / "out.parquet").exists()
    chosen = audit.resolve_audited(MODEL, get_settings())  # what serve's child answers
    assert chosen.model.version == audited
    assert f"{MODEL} v{forced} is in Production but the audit chain" in chosen.refused


def test_an_alias_moved_outside_runway_with_no_audited_version_is_refused(client, tmp_path):
    from runway.errors import AuditUnverified
    from runway.store import audit

    _policy(tmp_path)
    forced = _version(tmp_path)
    client.set_registered_model_alias(MODEL, "production", forced)
    with pytest.raises(AuditUnverified, match=f"v{forced} is in Production but .*no audited"):
        audit.resolve_audited(MODEL, get_settings())


def test_resolve_follows_the_alias_and_falls_back_to_the_stage_without_one(
    client, tmp_path, caplog
):
    """The alias wins where the two disagree in the audited direction (a stage forced
    outside runway, the alias where runway put it); a registry from before the aliases
    (no @production) is still read by stage, with one warning line."""
    audited, forced = _forced(client, tmp_path)
    assert registry.resolve(MODEL).version == audited
    assert registry.resolve(MODEL).stage == "Production"
    client.delete_registered_model_alias(MODEL, "production")
    with caplog.at_level(logging.WARNING, logger="runway.store.registry"):
        assert registry.resolve(MODEL).version == forced  # the newest Production stage
    warned = [r.getMessage() for r in caplog.records if "@production" in r.getMessage()]
    assert len(warned) == 1 and "has no @production alias" in warned[0], warned


def test_promotion_carries_on_with_aliases_when_the_stage_api_is_gone(
    client, tmp_path, monkeypatch, caplog
):
    """The day MLflow removes stages: transition_model_version_stage fails, promotion and
    rollback still move @production (and the runway.stage tag), said once."""
    from mlflow.exceptions import MlflowException

    from runway.jobs.promote import rollback
    from runway.store import audit

    monkeypatch.setattr(registry, "_stages_gone", [], raising=False)

    def gone(self, *args, **kwargs):
        raise MlflowException("model version stages were removed in MLflow 4")

    monkeypatch.setattr(mlflow.MlflowClient, "transition_model_version_stage", gone)
    _policy(tmp_path)
    first, second = _version(tmp_path), _version(tmp_path)
    with caplog.at_level(logging.WARNING, logger="runway.store.registry"):
        for number in (first, second):
            promote(MODEL, number, "Staging")
            promote(MODEL, number, "Production", reviewer="alice")
    said = [r for r in caplog.records if "does not take stage writes" in r.getMessage()]
    assert len(said) == 1
    assert registry.aliases(MODEL) == {"production": second}
    assert audit.resolve_audited(MODEL, get_settings()).model.version == second
    assert rollback(MODEL, reviewer="alice").version == first
    assert registry.aliases(MODEL)["production"] == first
    assert audit.resolve_audited(MODEL, get_settings()).model.version == first


@pytest.mark.slow
def test_one_child_resolves_and_fetches_a_new_version_and_leaves_nothing_otherwise(
    client, mlflow_store, tmp_path
):
    """Issue 28 (a replica's switch): the child that sees a new Production version fetches
    and checks it too, so a switch imports MLflow once, not twice; for the version already
    served it fetches nothing and leaves no folder behind."""
    import asyncio

    from runway.serving import prepare

    _policy(tmp_path)
    version = _version(tmp_path)
    promote(MODEL, version, "Staging")
    promote(MODEL, version, "Production", reviewer="alice")
    settings = Settings(MLFLOW_TRACKING_URI=mlflow_store)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    same = asyncio.run(prepare.follow(settings, MODEL, runtime, served=version))
    assert same.model.version == version and same.fetched is None
    assert list(runtime.iterdir()) == []
    new = asyncio.run(prepare.follow(settings, MODEL, runtime, served=None))
    assert new.fetched is not None and new.fetched.model.version == version
    assert (new.fetched.local / "MLmodel").is_file() and new.fetched.local.is_relative_to(runtime)
    taken, folder = prepare.take(new.fetched, version, runtime)
    assert taken is new.fetched and new.fetched.local.is_relative_to(folder)
    other, fresh = prepare.take(new.fetched, "99", runtime)  # not the one to start: removed
    assert other is None and list(runtime.iterdir()) == [fresh]
