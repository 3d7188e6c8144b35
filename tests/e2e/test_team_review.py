"""Review enforced where models load, on the team stack (issue #27 items 1 and 11).

An author's EDIT grant lets MLflow's own client move her version to Production;
the service account then must not score with it, and can read the audit chain
that says why. The stack and its members are tests/e2e/team_stack.py's.
"""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer

from tests.e2e.team_stack import MODEL, _as, _error_lines

pytestmark = pytest.mark.slow


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
