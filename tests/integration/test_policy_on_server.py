"""Issue #27 item 2: the promotion policy a promotion applies, and its hash sealed.

On the embedded store the policy is still the file; its hash is sealed into the
audit record and ``history --verify`` compares it with the version's
``runway.policy.sha256`` tag. In team mode (here: the team-mode switch turned on
over a SQLite store; the team e2e runs it on the real server) the policy is the
one stored in ``<model>.runway-policy``, and a local file that differs is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runway.cli import main
from runway.errors import ExitCode, RegistryError
from runway.jobs.promote import promote
from runway.store import audit, registry
from runway.store.tracking import client
from tests.helpers import ship
from tests.integration.test_lighten import churn_spec

MODEL = "churn-classifier"
LR = {"max_iter": 300}


def _use_store(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """CLI commands in this process reach the store ``ship`` made under ``root``."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(root / "registry"))


def test_the_applied_policy_hash_is_sealed_and_verify_checks_the_tag(
    tmp_path, churn_csv, monkeypatch, capsys
):
    settings, version, _ = ship(tmp_path, churn_spec("LogisticRegression", **LR))
    tagged = registry.get_version(MODEL, version).tags[registry.POLICY_HASH_TAG]
    sealed = [e.policy_sha256 for e in audit.history(MODEL, settings) if e.outcome == "applied"]
    assert sealed == [tagged, tagged]  # Staging and Production, the file's policy
    assert audit.verify(MODEL, settings).ok
    # someone with EDIT on the model retags the version with another policy's hash
    client().set_model_version_tag(MODEL, version, registry.POLICY_HASH_TAG, "0" * 64)
    _use_store(monkeypatch, tmp_path)
    capsys.readouterr()
    assert main(["registry", "history", MODEL, "--verify"]) == ExitCode.TRUST
    out = capsys.readouterr().out
    assert f"v{version}: tag runway.policy.sha256='000000000000' is not the policy" in out


def test_in_team_mode_only_the_stored_policy_is_applied(tmp_path, churn_csv, monkeypatch, capsys):
    from runway.jobs import policy as policy_jobs  # new with #27-2

    settings, version, _ = ship(tmp_path, churn_spec("LogisticRegression", **LR), production=False)
    monkeypatch.setattr(policy_jobs, "team_mode", lambda settings: True)
    _use_store(monkeypatch, tmp_path)
    with pytest.raises(RegistryError, match="no team policy on the tracking server") as none:
        promote(MODEL, version, "Staging", settings=settings)
    assert f"runway registry policy push {MODEL}" in str(none.value)

    assert main(["registry", "policy", "push", MODEL]) == 0
    pushed = capsys.readouterr().out
    file = tmp_path / "registry" / f"{MODEL}.yaml"
    team_doc = yaml.safe_load(file.read_text())
    # the author's own copy: herself a reviewer, no four eyes, a looser latency gate
    mine = team_doc | {
        "production": {"reviewers": ["carol"], "four_eyes": False},
        "staging": {"max_latency_ms": 10**9},
    }
    file.write_text(yaml.safe_dump(mine))
    with pytest.raises(RegistryError, match="differs from the team's policy") as differs:
        promote(MODEL, version, "Staging", settings=settings)
    assert f"a reviewer runs `runway registry policy push {MODEL} --file {file}`" in str(
        differs.value
    )
    assert registry.get_version(MODEL, version).stage == "None"

    file.unlink()  # no local copy: the team's policy applies
    result = promote(MODEL, version, "Staging", settings=settings)
    assert result.applied
    assert main(["registry", "policy", "show", MODEL]) == 0
    shown = capsys.readouterr().out
    digest = shown.strip().splitlines()[-1].removeprefix("# sha256 ")
    assert digest in pushed and "reviewers" in shown
    assert audit.history(MODEL, settings)[-1].policy_sha256 == digest
    assert registry.get_version(MODEL, version).tags[registry.POLICY_HASH_TAG] == digest
