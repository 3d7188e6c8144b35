"""Registry promotion on a real MLflow store: gates, reviewers, aliases, audit, rollback, races."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml
from pydantic import SecretStr

from runway.core.training.spec import spec_from_dict
from runway.errors import GateFailure, RegistryError, SpecError
from runway.jobs.promote import promote, rollback
from runway.jobs.status import history, status, verify
from runway.jobs.train import train
from runway.serving import prepare
from runway.settings import Settings
from runway.store import registry, served, tracking

MODEL = "cancer"


def _spec(estimator: str, params: dict) -> dict:
    return {
        "experiment": "registry-tests",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": estimator, "params": params},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["roc_auc", "accuracy"],
        "primary_metric": {"name": "roc_auc"},
        "model_name": MODEL,
    }


@dataclass(frozen=True)
class Trained:
    db: Path
    weak: str  # run ids
    strong: str
    other: str


@pytest.fixture(scope="session")
def _trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Three runs trained once: a weak stump, a strong and a second strong model."""
    root = tmp_path_factory.mktemp("trained")
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "mlruns"),
    )
    tracking.configure(settings)  # the session's store; each test then points at its copy
    runs = [
        train(spec_from_dict(_spec(name, params)), settings=settings).run_id
        for name, params in [
            ("DecisionTreeClassifier", {"max_depth": 1, "random_state": 0}),
            ("LogisticRegression", {"max_iter": 500}),
            ("LogisticRegression", {"max_iter": 500, "C": 0.5}),
        ]
    ]
    return Trained(root / "mlflow.db", *runs)


@pytest.fixture
def store(_trained: Trained, mlflow_store: str, tmp_path: Path) -> Trained:
    """This test's store: a copy of the trained one (artifacts stay shared, read-only)."""
    shutil.copy(_trained.db, tmp_path / "mlflow.db")
    return _trained


def _register(run_id: str) -> str:
    client = mlflow.MlflowClient()
    model_id = client.get_run(run_id).outputs.model_outputs[0].model_id
    return registry.register_version(MODEL, f"models:/{model_id}", tags={}).version


def _policy(tmp_path: Path, **staging) -> Path:
    path = tmp_path / "registry" / f"{MODEL}.yaml"
    path.parent.mkdir(exist_ok=True)
    doc = {
        "model": MODEL,
        "staging": {"max_latency_ms": 1000, "max_model_size_mb": 50, **staging},
        "production": {"reviewers": ["alice", "bob"], "four_eyes": True},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _snapshot(client: mlflow.MlflowClient) -> tuple:
    versions = client.search_model_versions(f"name = '{MODEL}'")
    stages = sorted((int(v.version), v.current_stage) for v in versions)
    return stages, dict(client.get_registered_model(MODEL).aliases)


def _assert_aliases_match_stages(client: mlflow.MlflowClient) -> None:
    versions = client.search_model_versions(f"name = '{MODEL}'")
    production = [v.version for v in versions if v.current_stage == "Production"]
    assert len(production) <= 1
    aliases = client.get_registered_model(MODEL).aliases
    for stage, alias in registry.ALIASES.items():
        latest = client.get_latest_versions(MODEL, [stage])
        if latest:
            # models:/M/<Stage> and models:/M@<alias> name the same version
            assert str(aliases.get(alias)) == str(latest[0].version), (stage, aliases)
        else:
            assert alias not in aliases


def test_failing_threshold_stays_put_and_is_recorded(store, client, tmp_path):
    _policy(tmp_path, thresholds=["roc_auc >= 0.97"])
    weak = _register(store.weak)
    before = _snapshot(client)

    with pytest.raises(GateFailure) as failure:
        promote(MODEL, weak, "Staging")

    assert [r.name for r in failure.value.report.failures] == ["holdout roc_auc"]
    assert _snapshot(client) == before
    [entry] = history(MODEL)
    assert (entry.outcome, entry.to_stage, entry.version) == ("refused", "Staging", weak)
    assert "holdout roc_auc" in entry.reason
    [with_report] = history(MODEL, reports=True)
    assert "result: FAIL" in with_report.report and "holdout roc_auc" in with_report.report
    reports = [a.path for a in client.list_artifacts(store.weak, "registry")]
    assert any(p.endswith(".txt") for p in reports) and any(p.endswith(".json") for p in reports)


def test_passing_candidate_reaches_staging_with_its_alias(store, client, tmp_path):
    _policy(tmp_path, thresholds=["roc_auc >= 0.97", "accuracy >= 0.9"])
    strong = _register(store.strong)

    result = promote(MODEL, strong, "Staging", comment="looks good")

    assert result.applied and result.report.passed
    rules = {r.name: r for r in result.report.rules}
    assert float(rules["holdout roc_auc"].candidate) >= 0.97
    assert "ms" in rules["latency p50, 1 row"].candidate
    assert client.get_model_version(MODEL, strong).current_stage == "Staging"
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == strong
    _assert_aliases_match_stages(client)


def test_dry_run_reports_and_changes_nothing(store, client, tmp_path):
    _policy(tmp_path, thresholds=["roc_auc >= 0.97"])
    weak = _register(store.weak)
    before = _snapshot(client)
    result = promote(MODEL, weak, "Staging", dry_run=True)
    assert not result.applied and not result.report.passed
    assert _snapshot(client) == before
    assert history(MODEL) == []


def test_production_requires_a_listed_reviewer_other_than_the_author(store, client, tmp_path):
    _policy(tmp_path)
    strong = _register(store.strong)
    promote(MODEL, strong, "Staging")
    before = _snapshot(client)
    author = client.get_run(store.strong).data.tags["mlflow.user"]

    for reviewer, message in [
        (None, "pass --reviewer NAME"),
        ("mallory", "'mallory' is not listed"),
    ]:
        with pytest.raises(RegistryError, match=message):
            promote(MODEL, strong, "Production", reviewer=reviewer)
    four_eyes = _policy(tmp_path)
    doc = yaml.safe_load(four_eyes.read_text())
    doc["production"]["reviewers"].append(author)
    four_eyes.write_text(yaml.safe_dump(doc))
    with pytest.raises(RegistryError, match="four-eyes"):
        promote(MODEL, strong, "Production", reviewer=author)
    assert _snapshot(client) == before

    result = promote(MODEL, strong, "Production", reviewer="alice", comment="ship it")

    assert result.applied
    mv = client.get_model_version(MODEL, strong)
    assert mv.current_stage == "Production"
    assert (mv.tags["approved_by"], mv.tags["approval_comment"]) == ("alice", "ship it")
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == strong
    _assert_aliases_match_stages(client)


def _to_production(version: str) -> None:
    promote(MODEL, version, "Staging")
    promote(MODEL, version, "Production", reviewer="alice")


def test_better_model_replaces_champion_then_rollback_restores_it(store, client, tmp_path):
    _policy(tmp_path, improvement={"min_absolute": 0.01})
    weak, strong = _register(store.weak), _register(store.strong)
    _to_production(weak)
    promote(MODEL, strong, "Staging")

    result = promote(MODEL, strong, "Production", reviewer="bob")

    assert result.archived == [weak]
    rules = {r.name: r for r in result.report.rules}
    assert result.report.baseline_version == weak
    assert rules["improvement in roc_auc"].passed
    assert client.get_model_version(MODEL, weak).current_stage == "Archived"
    _assert_aliases_match_stages(client)

    approval = {k: v for k, v in client.get_model_version(MODEL, weak).tags.items() if "appro" in k}
    back = rollback(MODEL, reviewer="bob", comment="strong misbehaves")

    assert (back.version, back.archived) == (weak, [strong])
    assert client.get_model_version(MODEL, weak).current_stage == "Production"
    assert client.get_model_version(MODEL, strong).current_stage == "Archived"
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == weak
    _assert_aliases_match_stages(client)
    last = history(MODEL)[-1]
    assert (last.action, last.version, last.replaced, last.actor) == (
        "rollback",
        weak,
        strong,
        "bob",
    )
    # issue 29, item 5: the version that came back keeps its approval and says it came back
    came_back = client.get_model_version(MODEL, weak)
    assert approval["approved_by"] == "alice"
    assert {k: v for k, v in came_back.tags.items() if "appro" in k} == approval
    assert (came_back.tags["rolled_back_by"], came_back.tags["rolled_back_from"]) == ("bob", strong)
    assert "Rolled back to Production by bob (" in came_back.description
    assert came_back.description.rstrip().endswith(f"replacing v{strong}.")
    assert all(not row.unaudited for row in status(MODEL))


def test_a_worse_candidate_cannot_replace_the_champion(store, client, tmp_path):
    _policy(tmp_path, improvement={"min_absolute": 0.0})
    weak, strong = _register(store.weak), _register(store.strong)
    _to_production(strong)
    with pytest.raises(GateFailure) as failure:
        promote(MODEL, weak, "Staging")
    rule = {r.name: r for r in failure.value.report.rules}["improvement in roc_auc"]
    assert not rule.passed and rule.detail.startswith("worse by ")
    assert client.get_model_version(MODEL, strong).current_stage == "Production"


def test_bad_input_is_refused_and_changes_nothing(store, client, tmp_path):
    policy = _policy(tmp_path)
    weak, strong = _register(store.weak), _register(store.strong)
    promote(MODEL, strong, "Staging")
    before = _snapshot(client)
    cases = [
        (lambda: promote("nope", "1", "Staging"), RegistryError, "unknown model 'nope'"),
        (lambda: promote(MODEL, "99", "Staging"), RegistryError, "has no version '99'"),
        (lambda: promote(MODEL, strong, "Staging"), RegistryError, "already in Staging"),
        (lambda: promote(MODEL, weak, "Live"), RegistryError, "unknown stage 'Live'"),
        (
            lambda: promote(MODEL, weak, "Production", reviewer="alice"),
            RegistryError,
            "promote it to Staging first",
        ),
        (lambda: rollback(MODEL), RegistryError, "no Production version"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message):
            call()
    policy.write_text(policy.read_text() + "gates: {}\n")
    with pytest.raises(SpecError, match="gates: unknown field"):
        promote(MODEL, weak, "Staging")
    policy.unlink()
    with pytest.raises(SpecError, match="policy file not found"):
        promote(MODEL, weak, "Staging")
    assert _snapshot(client) == before


def test_rollback_needs_a_previous_champion_and_the_champion_stays(store, client, tmp_path):
    _policy(tmp_path)
    strong = _register(store.strong)
    _to_production(strong)
    before = _snapshot(client)
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(MODEL)
    for stage in ("Staging", "Archived"):  # the champion only leaves by being replaced
        with pytest.raises(RegistryError, match="is the Production version"):
            promote(MODEL, strong, stage)
    assert _snapshot(client) == before


def test_transition_outside_runway_is_flagged_unaudited(store, client, tmp_path):
    _policy(tmp_path)
    strong, other = _register(store.strong), _register(store.other)
    promote(MODEL, strong, "Staging")
    client.transition_model_version_stage(MODEL, other, "Production")  # e.g. in the MLflow UI

    rows = {r.version: r for r in status(MODEL)}

    assert rows[strong].unaudited == ""
    assert "Production set outside runway" in rows[other].unaudited
    assert rows[strong].aliases == ("staging",) and rows[strong].metric == "roc_auc"


@pytest.mark.slow
def test_racing_promotions_end_with_one_production_version(store, client, tmp_path):
    _policy(tmp_path)
    a, b = _register(store.strong), _register(store.other)
    promote(MODEL, a, "Staging")
    promote(MODEL, b, "Staging")
    command = [sys.executable, "-m", "runway", "-q", "registry", "promote", MODEL]
    procs = [
        subprocess.Popen(
            [*command, v, "--to", "Production", "--reviewer", "alice"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in (a, b)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]

    production = client.get_latest_versions(MODEL, ["Production"])
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [v.current_stage for v in versions].count("Production") == 1, outputs
    attempts = [e for e in history(MODEL) if e.to_stage == "Production"]
    assert sorted(e.version for e in attempts) == sorted([a, b])
    # Each process's exit code agrees with what the history says happened to it.
    for version, code in zip((a, b), codes, strict=True):
        [entry] = [e for e in attempts if e.version == version]
        assert (entry.outcome == "applied") == (code == 0), outputs
    winner = str(production[0].version)
    applied = [e for e in attempts if e.outcome == "applied"]
    assert applied[-1].version == winner
    if len(applied) == 2:  # the second replaced the first, which is now Archived
        assert applied[1].replaced == applied[0].version
        assert client.get_model_version(MODEL, applied[0].version).current_stage == "Archived"
    _assert_aliases_match_stages(client)
    assert all(not row.unaudited for row in status(MODEL))
    assert not [m for m in client.search_registered_models() if m.name.endswith("lock")]


def test_sweep_promote_to_staging_chains_the_gates(client, tmp_path, capsys):
    from runway.cli import main
    from tests.helpers import write_spec

    space = {"model__C": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    spec = write_spec(tmp_path / "s.yaml", model_name=MODEL, sweep={"trials": 2, "space": space})
    _policy(tmp_path, thresholds=["roc_auc >= 0.9"])

    assert main(["-q", "sweep", str(spec), "--promote-to", "Staging"]) == 0

    out = capsys.readouterr().out
    assert f"registered {MODEL} version 1" in out and "result: PASS" in out
    assert client.get_model_version(MODEL, "1").current_stage == "Staging"

    _policy(tmp_path, thresholds=["roc_auc >= 0.9999"])
    assert (
        main(["-q", "sweep", str(spec), "--promote-to", "Staging", "--trials", "3", "--resume"])
        == 6
    )
    captured = capsys.readouterr()
    assert "result: FAIL" in captured.out and "stays in its stage" in captured.err
    assert client.get_model_version(MODEL, "2").current_stage == "None"


def test_a_stage_and_approval_forged_with_plain_mlflow_calls_are_flagged(store, client, tmp_path):
    """The MLflow REST API (here its client) moves a version to Production and writes the
    tags runway writes on approval: status and history --verify say the chain does not explain it."""
    from runway.cli import main

    _policy(tmp_path)
    strong, other = _register(store.strong), _register(store.other)
    _to_production(strong)
    assert all(not row.unaudited for row in status(MODEL))

    client.transition_model_version_stage(
        MODEL, other, "Production", archive_existing_versions=True
    )
    client.set_model_version_tag(MODEL, other, "approved_by", "alice")
    client.set_model_version_tag(MODEL, other, "runway.stage", "Production")
    client.set_model_version_tag(MODEL, strong, "runway.stage", "Archived")
    client.set_registered_model_alias(MODEL, "production", other)

    rows = {r.version: r for r in status(MODEL)}
    assert "Production set outside runway (the audit chain says None)" in rows[other].unaudited
    assert "Archived set outside runway (the audit chain says Production)" in rows[strong].unaudited
    assert main(["registry", "history", MODEL, "--verify"]) == 12


def test_forged_approval_tag_and_alias_alone_are_flagged(store, client, tmp_path):
    _policy(tmp_path)
    strong, other = _register(store.strong), _register(store.other)
    _to_production(strong)
    promote(MODEL, other, "Staging")

    client.set_model_version_tag(MODEL, strong, "approved_by", "mallory")
    rows = {r.version: r for r in status(MODEL)}
    assert "approved_by='mallory' set outside runway" in rows[strong].unaudited

    client.set_model_version_tag(MODEL, strong, "approved_by", "alice")
    client.set_registered_model_alias(MODEL, "production", other)
    rows = {r.version: r for r in status(MODEL)}
    assert rows[strong].unaudited == ""
    assert "alias @production set outside runway" in rows[other].unaudited


def test_an_altered_or_removed_audit_record_breaks_the_chain(store, client, tmp_path):
    from runway.store.audit import AUDIT

    _policy(tmp_path)
    strong = _register(store.strong)
    _to_production(strong)
    first, second = history(MODEL)
    assert verify(MODEL).ok and verify(MODEL).order == [first.audit_run_id, second.audit_run_id]

    client.set_tag(second.audit_run_id, f"{AUDIT}actor", "mallory")  # rewrite who approved
    report = verify(MODEL)
    assert "altered" in report.records[second.audit_run_id]
    assert "set outside runway (the audit chain says Staging)" in report.versions[strong]

    client.set_tag(second.audit_run_id, f"{AUDIT}actor", "alice")
    assert verify(MODEL).ok
    client.delete_run(first.audit_run_id)  # remove a record from the middle
    report = verify(MODEL)
    assert "not reachable" in report.records[second.audit_run_id]
    assert strong in report.versions


def test_with_an_audit_key_a_record_forged_without_it_is_flagged(
    store, client, tmp_path, monkeypatch
):
    """Plain SHA-256 shows edits; only a key outside the store stops an appended forgery."""
    from runway.settings import get_settings
    from runway.store import audit
    from runway.store.audit import Attempt

    monkeypatch.setenv("RUNWAY_AUDIT_KEY", "k" * 32)
    _policy(tmp_path)
    strong, other = _register(store.strong), _register(store.other)
    _to_production(strong)
    assert verify(MODEL).ok

    # A forger appends a well-formed record with the plain hash, then moves the stage.
    forger = get_settings().model_copy(update={"audit_key": SecretStr("")})
    mv = registry.get_version(MODEL, other)
    audit.record(forger, mv, Attempt("promote", "Staging", "applied", "mallory"))
    client.transition_model_version_stage(MODEL, other, "Staging")
    client.set_model_version_tag(MODEL, other, "runway.stage", "Staging")

    report = verify(MODEL)
    assert any("not sealed with RUNWAY_AUDIT_KEY" in p for p in report.records.values())
    assert "set outside runway" in report.versions[other]
    monkeypatch.delenv("RUNWAY_AUDIT_KEY")
    assert any("set RUNWAY_AUDIT_KEY" in p for p in verify(MODEL).records.values())


def test_the_gateways_fingerprint_moves_with_the_models_versions_and_nothing_else(
    store, client, mlflow_store, tmp_path
):
    """What ``runway serve`` polls instead of MLflow: it must change on every stage move."""
    _policy(tmp_path)
    before = served.fingerprint(mlflow_store, MODEL)
    assert before is not None  # a SQLite store: read directly
    weak = _register(store.weak)
    registered = served.fingerprint(mlflow_store, MODEL)
    assert registered != before
    client.log_metric(store.strong, "unrelated", 1.0)  # runs and other models: no change
    client.create_registered_model("another")
    assert served.fingerprint(mlflow_store, MODEL) == registered
    seen = {registered}
    for stage in ("Staging", "Production", "Archived"):
        registry.transition(MODEL, weak, stage)
        now = served.fingerprint(mlflow_store, MODEL)
        assert now not in seen, stage
        seen.add(now)
    # not a SQLite file: the gateway asks MLflow instead
    assert served.fingerprint("http://127.0.0.1:5000", MODEL) is None
    assert served.fingerprint(f"sqlite:///{tmp_path / 'missing.db'}", MODEL) is None


@pytest.mark.slow
def test_resolve_and_fetch_in_a_child_give_mlflows_answer_and_runway_errors(
    store, mlflow_store, tmp_path, monkeypatch
):
    """The gateway's MLflow work runs in a child; its errors keep their class (and exit code)."""
    monkeypatch.setenv("RUNWAY_AUDIT_KEY", "k")  # the promotion seals with the key the child has
    settings = Settings(MLFLOW_TRACKING_URI=mlflow_store, audit_key=SecretStr("k"))
    _policy(tmp_path)
    strong = _register(store.strong)
    with pytest.raises(RegistryError, match="has no Production version"):
        asyncio.run(prepare.resolve(settings, MODEL))
    _to_production(strong)

    resolved = asyncio.run(prepare.resolve(settings, MODEL)).model
    assert resolved == registry.resolve(MODEL, "Production")
    fetched = asyncio.run(prepare.fetch(settings, MODEL, None, tmp_path / "served"))
    assert fetched.model == resolved
    assert fetched.local.is_relative_to(tmp_path / "served")
    assert (fetched.local / "MLmodel").is_file()
    assert fetched.contract == tracking.load_contract(store.strong)
    assert fetched.policy == registry.applied_input_policy(MODEL, strong)
    assert set(fetched.input_types) == set(fetched.contract.columns)
    with pytest.raises(RegistryError, match="unknown model 'nope'"):
        asyncio.run(prepare.fetch(settings, "nope", "1", tmp_path / "served"))
