"""Review enforced where models load, on the team stack (issue #27 items 1, 2 and 11).

An author's EDIT grant lets MLflow's own client move her version to Production;
the service account then must not score with it, and can read the audit chain
that says why. The promotion policy is the team's, stored on the server where
only a reviewer may change it, not the promoter's copy. The stack and its members are tests/e2e/team_stack.py's.
"""

from __future__ import annotations

import pytest
import yaml
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_breast_cancer

from tests.e2e.team_stack import MODEL, _as, _error_lines

pytestmark = pytest.mark.slow
DENIED = r"403|PERMISSION_DENIED|Permission denied"  # MLflow's refusal of a write


def test_a_version_the_author_forces_into_production_is_not_scored(team, monkeypatch):
    trained = team.runway("carol", "train", "spec.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    carol = _as(monkeypatch, team, "carol")
    forced = str(max(int(v.version) for v in carol.search_model_versions(f"name = '{MODEL}'")))
    carol.transition_model_version_stage(MODEL, forced, "Production")  # review bypassed
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    rows.to_csv(team.home("svc") / "review-in.csv", index=False)
    try:
        scored = team.runway(
            "svc", "score", MODEL, "--input", "review-in.csv", "--output", "review-out.csv"
        )
        assert scored.returncode == 12, scored.stdout + scored.stderr
        [line] = _error_lines(scored)
        assert f"{MODEL} v{forced} is in Production but the audit chain does not explain" in line
        assert "runway registry promote" in line and "runway registry rollback" in line
        assert not (team.home("svc") / "review-out.csv").exists()
        status = team.runway("svc", "registry", "status", MODEL)  # what the refusal points at
        assert status.returncode == 0, status.stderr
        assert "UNAUDITED: stage Production set outside runway" in status.stdout
    finally:  # as it was: the chain explains every version again, for the modules after
        _as(monkeypatch, team, "admin").transition_model_version_stage(MODEL, forced, "None")


def test_the_service_account_may_read_the_audit_chain_it_checks(team):
    """Item 11: exit 14 before (no grant on the audit experiment)."""
    status = team.runway("svc", "registry", "status", MODEL)
    assert status.returncode == 0, status.stderr
    assert MODEL in status.stdout


def test_an_author_cannot_promote_under_her_own_copy_of_the_policy(team, monkeypatch):
    """Item 2: her copy adds no four-eyes and a looser gate; the team's stored policy applies."""
    trained = team.runway("carol", "train", "spec.yaml", "--register")
    assert trained.returncode == 0, trained.stderr
    carol = _as(monkeypatch, team, "carol")
    version = str(max(int(v.version) for v in carol.search_model_versions(f"name = '{MODEL}'")))
    staged = team.runway("carol", "registry", "promote", MODEL, version, "--to", "Staging")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    file = team.home("carol") / "registry" / f"{MODEL}.yaml"
    agreed = file.read_text()
    mine = yaml.safe_load(agreed)
    mine["production"] = {"reviewers": ["carol"], "four_eyes": False}
    mine["staging"]["max_latency_ms"] = 10**9
    file.write_text(yaml.safe_dump(mine))
    try:
        promoted = team.runway(
            "carol", "registry", "promote", MODEL, version, "--to", "Production",
            "--reviewer", "carol",
        )  # fmt: skip
        assert promoted.returncode == 6, promoted.stdout + promoted.stderr
        [line] = _error_lines(promoted)
        assert "differs from the team's policy" in line
        assert f"a reviewer runs `runway registry policy push {MODEL} --file" in line
        assert carol.get_model_version(MODEL, version).current_stage == "Staging"
        pushed = team.runway("carol", "registry", "policy", "push", MODEL)
        assert pushed.returncode == 14, pushed.stdout + pushed.stderr
        [line] = _error_lines(pushed)
        assert f"carol may not change the team policy of {MODEL}" in line and "MANAGE" in line
    finally:
        file.write_text(agreed)
        archived = team.runway("alice", "registry", "promote", MODEL, version, "--to", "Archived")
        assert archived.returncode == 0, archived.stdout + archived.stderr


def test_only_a_reviewer_may_write_the_stored_policy(team, monkeypatch):
    """Authors and the service account read `<model>.runway-policy`; MLflow refuses their writes."""
    holder = f"{MODEL}.runway-policy"
    for user in ("carol", "svc"):
        shown = team.runway(user, "registry", "policy", "show", MODEL)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "# sha256 " in shown.stdout and "reviewers" in shown.stdout
        client = _as(monkeypatch, team, user)
        with pytest.raises(MlflowException, match=DENIED):
            client.set_registered_model_tag(holder, "runway.policy.sha256", "0" * 64)
        with pytest.raises(MlflowException, match=DENIED):
            client.delete_registered_model(holder)
    alice = team.runway("alice", "registry", "policy", "push", MODEL)
    assert alice.returncode == 0, alice.stdout + alice.stderr
    shown = team.runway("carol", "registry", "policy", "show", MODEL)
    assert shown.stdout.strip().splitlines()[-1].removeprefix("# sha256 ") in alice.stdout
