"""`runway retrain` on every column kind, from the champion's own parameters (issue 25, 7 and 8)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
import yaml

from runway.cli import main
from runway.core.training.spec import spec_from_dict
from runway.jobs.promote import promote
from runway.jobs.register import register_sweep
from runway.jobs.retrain import retrain
from runway.jobs.sweep import sweep
from runway.scoring.batch import ScoringOptions, score_file
from runway.settings import Settings
from tests.conftest import Shipped
from tests.helpers import delivery_frame, delivery_spec


@pytest.fixture
def delivery_store(
    delivery: Shipped, mlflow_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Shipped:
    """A copy of the session's delivery store (datetime, boolean, categories, gaps)."""
    shutil.copy(delivery.db, tmp_path / "mlflow.db")
    shutil.copytree(delivery.root / "registry", tmp_path / "registry")
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", str(tmp_path / "predictions"))
    monkeypatch.setenv("RUNWAY_RETRAIN_DATA_DIR", str(tmp_path / "retrain-data"))
    return delivery


def test_retrain_with_labels_on_a_model_with_a_datetime_column(delivery_store, client, tmp_path):
    rows = delivery_frame(200, seed=11)
    rows.insert(0, "order", [f"o{i}" for i in range(len(rows))])
    rows.drop(columns=["minutes", "late"]).to_csv(tmp_path / "day.csv", index=False)
    when = datetime(2026, 11, 20, 12, tzinfo=UTC)
    score_file(
        "delivery",
        tmp_path / "day.csv",
        tmp_path / "scores.csv",
        ScoringOptions(("order",), scored_at=when),
    )
    rows[["order", "minutes"]].to_csv(tmp_path / "labels.csv", index=False)

    code = main(
        [
            *("-q", "retrain", "delivery", "--labels", str(tmp_path / "labels.csv")),
            *("--key-column", "order", "--since", "2026-11-20", "--window", "1d"),
        ]
    )

    assert code == 0
    new = client.get_model_version("delivery", "2")
    assert new.tags["runway.retrain.from_version"] == "1"
    assert new.current_stage == "Staging"


HGB_SPACE = {
    "trials": 3,
    "space": {
        "model__learning_rate": {"type": "float", "low": 0.05, "high": 0.3},
        "model__max_leaf_nodes": {"type": "int", "low": 8, "high": 20},
    },
}


def _params(client: mlflow.MlflowClient, run_id: str) -> dict[str, str]:
    params = client.get_run(run_id).data.params
    return {k: params[k] for k in ("model__learning_rate", "model__max_leaf_nodes")}


def test_a_train_mode_retrain_keeps_the_swept_champions_parameters(
    mlflow_store, client, tmp_path, monkeypatch
):
    data = tmp_path / "delivery.csv"
    delivery_frame(300, seed=4).to_csv(data, index=False)
    spec = delivery_spec(
        data,
        model_name="delivery-hgb",
        estimator={"name": "HistGradientBoostingRegressor", "params": {"max_iter": 30}},
        sweep=HGB_SPACE,
    )
    (tmp_path / "registry").mkdir()
    policy = {"model": "delivery-hgb", "production": {"reviewers": ["ci"], "four_eyes": False}}
    (tmp_path / "registry" / "delivery-hgb.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(tmp_path / "registry"))
    settings = Settings()
    swept = sweep(spec_from_dict(spec), settings=settings)
    version = register_sweep(swept).version
    promote("delivery-hgb", version, "Staging", settings=settings)
    promote("delivery-hgb", version, "Production", reviewer="ci", settings=settings)
    champion = _params(client, swept.parent_run_id)
    assert champion != {"model__learning_rate": "0.1", "model__max_leaf_nodes": "31"}

    result = retrain("delivery-hgb", settings=settings)

    assert _params(client, result.run_id) == champion
    tags = client.get_model_version("delivery-hgb", result.version).tags
    assert tags["runway.retrain.params"] == "champion"
