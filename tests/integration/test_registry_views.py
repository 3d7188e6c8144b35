"""What a reviewer finds in the MLflow UI (issue 16, items 7 and 8): descriptions and links.

The UI renders Markdown (links included) in model version, registered model,
run and experiment descriptions, never in tags; runway's links are relative
(`#/experiments/<id>/runs/<run>/artifacts/<path>`), so they work on any host.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from runway.core.training.spec import spec_from_dict
from runway.errors import GateFailure, RegistryError
from runway.jobs.promote import promote
from runway.jobs.register import register_training
from runway.jobs.status import history
from runway.jobs.train import train
from runway.settings import Settings
from runway.store import tracking

pytestmark = pytest.mark.slow

MODEL = "views"
POLICY_DESCRIPTION = "Screens tumours. **Recall** is gated: a missed case costs most."
LINK = re.compile(r"\[([^\]]+)\]\((#/experiments/(\d+)/runs/([0-9a-f]{32})(?:/artifacts/(\S+))?)\)")


@pytest.fixture(scope="module")
def _trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("views")
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlruns")
    )
    tracking.configure(settings)
    spec = {
        "experiment": "views",
        "task": "classification",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["roc_auc", "accuracy"],
        "primary_metric": {"name": "roc_auc"},
        "model_name": MODEL,
    }
    return root / "mlflow.db", train(spec_from_dict(spec), settings=settings)


@pytest.fixture
def trained(_trained, mlflow_store: str, tmp_path: Path):
    """This test's store: a copy of the trained one, with a policy and nothing registered."""
    shutil.copy(_trained[0], tmp_path / "mlflow.db")
    _policy(tmp_path)
    return _trained[1]


def _policy(tmp_path: Path, threshold: str = "roc_auc >= 0.9") -> None:
    path = tmp_path / "registry" / f"{MODEL}.yaml"
    path.parent.mkdir(exist_ok=True)
    doc = {
        "model": MODEL,
        "description": POLICY_DESCRIPTION,
        "staging": {"thresholds": [threshold], "max_latency_ms": 1000},
        "production": {"reviewers": ["alice"], "four_eyes": False},
    }
    path.write_text(yaml.safe_dump(doc))


def _links(text: str) -> list[tuple[str, ...]]:
    return LINK.findall(text)


def _artifact_exists(client, run_id: str, path: str) -> bool:
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    return path in {a.path for a in client.list_artifacts(run_id, folder)}


def test_policy_description_becomes_the_registered_model_description(trained, client):
    """Item 7."""
    register_training(trained, MODEL)
    assert client.get_registered_model(MODEL).description == POLICY_DESCRIPTION


def test_model_version_description_links_every_gate_report(trained, client, tmp_path):
    """Item 8: from the model version page to the report that judged it, pass or fail."""
    version = register_training(trained, MODEL).version
    _policy(tmp_path, "roc_auc >= 0.9999")
    with pytest.raises(GateFailure):
        promote(MODEL, version, "Staging")
    _policy(tmp_path)
    promote(MODEL, version, "Staging")

    description = client.get_model_version(MODEL, version).description
    assert description.startswith(f"Trained by run [{trained.run_id[:8]}")
    reports = [link for link in _links(description) if link[4].startswith("registry/")]
    assert [(text.split(":")[0], path.endswith(".txt")) for text, _, _, _, path in reports] == [
        ("Staging gate report", True),
        ("Staging gate report", True),
    ]
    assert "FAIL" in reports[0][0] and "PASS" in reports[1][0]
    for _text, _href, experiment_id, run_id, path in reports:
        assert (run_id, experiment_id) == (trained.run_id, trained.experiment_id)
        assert _artifact_exists(client, run_id, path)


def test_audit_runs_read_well_in_the_runs_table(trained, client, tmp_path):
    """Item 8: names that start with what changed, the source run and report as links,
    a refusal that says why."""
    version = register_training(trained, MODEL).version
    _policy(tmp_path, "roc_auc >= 0.9999")
    with pytest.raises(GateFailure):
        promote(MODEL, version, "Staging", comment="first try")
    [entry] = history(MODEL)

    run = client.get_run(entry.audit_run_id)
    assert run.info.run_name == f"REFUSED v{version} None -> Staging: {MODEL}"  # issue 29, item 5
    note = run.data.tags["mlflow.note.content"]
    assert "holdout roc_auc" in note and "0.9999" in note  # why it was refused
    links = {
        text: (experiment_id, run_id, path) for text, _, experiment_id, run_id, path in _links(note)
    }
    assert links["source run"] == (trained.experiment_id, trained.run_id, "")
    assert links["gate report"][1:] == (entry.audit_run_id, "gate_report.txt")
    assert _artifact_exists(client, entry.audit_run_id, "gate_report.txt")


def test_a_refused_move_to_production_is_audited(trained, client):
    """Item 8: the README promises one audit record per attempt; None -> Production left none."""
    version = register_training(trained, MODEL).version

    with pytest.raises(RegistryError, match="promote it to Staging first"):
        promote(MODEL, version, "Production", reviewer="alice", comment="skip staging")

    [entry] = history(MODEL)
    assert (entry.action, entry.from_stage, entry.to_stage, entry.outcome) == (
        "promote",
        "None",
        "Production",
        "refused",
    )
    assert "promote it to Staging first" in entry.reason
    assert (entry.actor, entry.comment) == ("alice", "skip staging")
    assert client.get_model_version(MODEL, version).current_stage == "None"
    run = client.get_run(entry.audit_run_id)
    assert run.info.status == "FAILED" and "Staging first" in run.data.tags["mlflow.note.content"]


def test_a_dry_run_refusal_is_not_audited(trained):
    version = register_training(trained, MODEL).version
    with pytest.raises(RegistryError):
        promote(MODEL, version, "Production", reviewer="alice", dry_run=True)
    assert history(MODEL) == []
    assert (
        mlflow.search_runs(experiment_names=["runway-registry-audit"], output_format="list") == []
    )
