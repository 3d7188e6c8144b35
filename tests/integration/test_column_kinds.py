"""The columns a tabular user brings, through training, the contract, the gates and batch.

Most tests use the session's delivery model (tests/conftest.py ``delivery``: a
CSV with a float and an integer, a True/False column, ISO timestamps, a 4-level
and a 60-level category, a column name with a space, gaps; features inferred),
trained, registered and promoted once. Each test works on a copy of its store.
"""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import threadpoolctl

from runway.cli import main
from runway.core.columns.contract import infer_contract
from runway.core.columns.input_policy import InputPolicy
from runway.jobs import gate_facts
from runway.scoring.batch import ScoringOptions, score_file
from runway.settings import Settings
from runway.store import tracking
from tests.conftest import Shipped
from tests.helpers import delivery_frame, ship

MODEL = "delivery"


@pytest.fixture
def store(delivery: Shipped, mlflow_store: str, tmp_path) -> Shipped:
    """This test's store: a copy of the session's (artifacts stay shared, read-only)."""
    shutil.copy(delivery.db, tmp_path / "mlflow.db")
    return delivery


def _pyfunc(version: str = "1"):
    return mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")


def _rows(shipped: Shipped, n: int = 5) -> pd.DataFrame:
    """Feature rows as the training CSV holds them (read back as a user would)."""
    frame = pd.read_csv(shipped.data).drop(columns=["minutes", "late"])
    return frame.dropna().head(n).reset_index(drop=True)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows as a pandas user scores them in-process: real booleans and timestamps."""
    typed = rows.copy()
    typed["express"] = typed["express"].astype(object)
    typed["ordered_at"] = pd.to_datetime(typed["ordered_at"]).astype("datetime64[us]")
    typed["items"] = typed["items"].astype("float64")
    return typed


# --- 1. booleans from CSV --------------------------------------------------------------------


def test_booleans_in_every_usual_spelling_are_scored_in_batch(store, tmp_path):
    rows = _rows(store)
    spelled = rows.assign(express=["True", "true", "TRUE", "1", "0"])
    spelled.insert(0, "order", range(5))
    spelled.to_csv(tmp_path / "in.csv", index=False)

    result = score_file(
        MODEL, tmp_path / "in.csv", tmp_path / "out.csv", ScoringOptions(key_columns=["order"])
    )

    assert (result.rows_scored, result.rows_rejected) == (5, 0)
    expected = _pyfunc().predict(_typed(rows.assign(express=[True, True, True, True, False])))
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["prediction"], expected, rtol=1e-12)


def test_a_boolean_in_no_usual_spelling_is_rejected_naming_it(store, tmp_path):
    rows = _rows(store, 3).assign(express=["yes", "True", "2"])
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = score_file(
        MODEL, tmp_path / "in.csv", tmp_path / "out.csv", ScoringOptions(max_reject_rate=1.0)
    )
    assert (result.rows_scored, result.rows_rejected) == (1, 2)
    reasons = pd.read_csv(tmp_path / "out.rejects.csv")["reason"].tolist()
    assert reasons == [
        "column 'express': expected true or false (or 1/0), got 'yes'",
        "column 'express': expected true or false (or 1/0), got '2'",
    ]


# --- 2. a missing boolean is imputed, the same way everywhere ---------------------------------


def test_a_missing_boolean_is_imputed_in_process_and_in_batch(store, tmp_path):
    rows = _rows(store, 1)
    model = _pyfunc()
    missing = model.predict(_typed(rows.assign(express=[None])))
    false = model.predict(_typed(rows.assign(express=[False])))
    true = model.predict(_typed(rows.assign(express=[True])))
    assert missing[0] != false[0] and missing[0] != true[0]  # imputed, not read as False
    rows.assign(express=[None]).to_csv(tmp_path / "in.csv", index=False)
    score_file(MODEL, tmp_path / "in.csv", tmp_path / "out.parquet")
    assert pd.read_parquet(tmp_path / "out.parquet")["prediction"].tolist() == missing.tolist()


def test_a_boolean_with_gaps_in_training_trains_and_imputes(tmp_path):
    frame = delivery_frame(300, seed=4, boolean_gaps=True)
    assert frame["express"].isna().any()
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    spec = {
        "experiment": "gaps",
        "task": "classification",
        "model_name": "gaps",
        "data": {"source": str(tmp_path / "gaps.csv"), "target": "late", "drop": ["minutes"]},
        "preprocessing": {"categorical": {"many_levels": {"threshold": 20, "encode": "target"}}},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.3, "cv_folds": 2, "seed": 1},
        "metrics": ["roc_auc", "recall"],
        "primary_metric": {"name": "roc_auc"},
    }
    _, version, run_id = ship(tmp_path, spec, production=False)
    contract = tracking.load_contract(run_id)
    assert contract.columns["express"].kind == "boolean"
    assert contract.columns["express"].required is False
    assert contract.target is not None
    assert contract.target.to_json_dict() == {
        "classes": ["no", "yes"],
        "class_names": ["no", "yes"],
        "positive_class": "yes",
    }
    model = mlflow.sklearn.load_model(f"models:/gaps/{version}")
    branches = dict(
        (name, columns) for name, _, columns in model.named_steps["preprocess"].transformers_
    )
    assert branches["many"] == ["courier id"] and branches["bool"] == ["express"]
    row = frame.drop(columns=["minutes", "late"]).dropna().head(1)
    rows = pd.concat([row] * 5, ignore_index=True)
    rows["ordered_at"] = pd.to_datetime(rows["ordered_at"])
    # a missing value, however a container holds it; then False and True
    rows["express"] = pd.Series([None, np.nan, pd.NA, False, True], dtype=object)
    proba = model.predict_proba(rows)
    assert (proba[0] == proba[1]).all() and (proba[0] == proba[2]).all()
    assert not (proba[0] == proba[3]).all() and not (proba[0] == proba[4]).all()


# --- 4. timestamps are a kind of their own ---------------------------------------------------


def test_iso_timestamps_are_inferred_as_datetime_and_expanded_inside_the_model(store):
    contract = tracking.load_contract(store.run_id)
    assert contract.columns["ordered_at"].kind == "datetime"
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    names = list(model.named_steps["preprocess"].get_feature_names_out())
    assert [n for n in names if "ordered_at" in n] == [
        "dt__ordered_at_hour",
        "dt__ordered_at_dayofweek",
        "dt__ordered_at_month",
        "dt__ordered_at_elapsed_days",
    ]
    # AnyType in MLflow's signature (pandas reads ISO text as str, which `datetime` refuses);
    # runway's declared type is in the MLmodel's metadata (issue 25, 14)
    metadata = _pyfunc().metadata
    inputs = metadata.get_input_schema().to_dict()
    assert {c["name"]: c["type"] for c in inputs}["ordered_at"] == "any"
    assert metadata.metadata["runway_input_types"]["ordered_at"] == "datetime"


def test_spec_check_says_what_infer_decided_and_warns_about_many_levels(store, tmp_path, capsys):
    spec = tmp_path / "delivery.yaml"
    spec.write_text(
        json.dumps(
            {
                "experiment": "delivery",
                "task": "regression",
                "data": {"source": str(store.data), "target": "minutes", "drop": ["late"]},
                "estimator": {"name": "Ridge"},
                "metrics": ["rmse"],
                "primary_metric": {"name": "rmse"},
            }
        )
    )
    assert main(["spec", "check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "datetime: ordered_at" in out and "boolean: express" in out
    assert "column 'ordered_at': ISO 8601 timestamps, inferred as datetime" in out
    assert "column 'courier id': 60 distinct values in 480 training rows (more than 50)" in out
    assert "many_levels.encode: target" in out and "min_frequency" in out


# --- 5. every level the encoder knows is in the contract -------------------------------------


def test_the_contract_keeps_every_level_so_an_unseen_one_is_always_caught():
    train = pd.DataFrame({"code": [f"k{i:04d}" for i in range(1500)], "x": range(1500)})
    contract = infer_contract(train, {"code": "categorical", "x": "numeric"})
    entry = contract.columns["code"]
    assert len(entry.categories or []) == 1500 and entry.categories_truncated is False
    from runway.core.columns.contract import check_frame, check_records

    new = pd.DataFrame({"code": ["k1499", "k9999"], "x": [1.0, 2.0]})
    result = check_frame(new, contract, InputPolicy())
    assert list(result.rejected) == [1]
    assert "category 'k9999' never seen in training" in result.rejected[1][0]
    _, rejected = check_records(new.to_dict("records"), contract, InputPolicy())
    assert list(rejected) == [1]


def test_the_delivery_contract_lists_all_sixty_couriers(store):
    entry = tracking.load_contract(store.run_id).columns["courier id"]
    assert len(entry.categories or []) == 60 and not entry.categories_truncated


# --- 6. one definition of optional ------------------------------------------------------------


def test_an_optional_column_may_be_left_out_of_a_batch_file(store, tmp_path):
    rows = _rows(store, 3)
    rows.drop(columns=["zone"]).to_csv(tmp_path / "in.csv", index=False)
    result = score_file(MODEL, tmp_path / "in.csv", tmp_path / "out.csv")
    assert result.rows_scored == 3
    expected = _pyfunc().predict(_typed(rows.assign(zone=None)))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], expected)
    rows.drop(columns=["items"]).to_csv(tmp_path / "no-items.csv", index=False)
    with pytest.raises(Exception, match=r"required column\(s\) \['items'\] missing"):
        score_file(MODEL, tmp_path / "no-items.csv", tmp_path / "out2.csv")


def test_the_signature_and_the_contract_agree_on_optional_columns(store):
    contract = tracking.load_contract(store.run_id).columns
    inputs = {c["name"]: c for c in _pyfunc().metadata.get_input_schema().to_dict()}
    assert set(inputs) == set(contract)
    for name, entry in contract.items():
        assert inputs[name].get("required", True) == entry.required, name
    assert [n for n, e in contract.items() if not e.required] == [
        "distance_km",
        "ordered_at",
        "zone",
    ]


def test_the_gate_report_counts_every_input_column(store, tmp_path):
    client = mlflow.MlflowClient()
    reports = [
        a.path for a in client.list_artifacts(store.run_id, "registry") if a.path.endswith(".json")
    ]
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{store.run_id}/{reports[0]}"))
    rule = next(r for r in report["rules"] if r["name"] == "input signature")
    assert (
        rule["candidate"] == "6 columns; optional (may be left out): distance_km, ordered_at, zone"
    )


# --- 7. threads --------------------------------------------------------------------------------


def test_the_latency_gate_is_a_warm_median_measured_with_threads_pinned(
    store, tmp_path, monkeypatch
):
    local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path))
    seen: list[int] = []
    real_load = gate_facts.models.load_pyfunc

    class Watched:
        def __init__(self, model):
            self.model = model

        def predict(self, rows):
            pools = threadpoolctl.threadpool_info()
            seen.append(max(p["num_threads"] for p in pools))
            return self.model.predict(rows)

    monkeypatch.setattr(gate_facts.models, "load_pyfunc", lambda path: Watched(real_load(path)))
    rows = _typed(_rows(store))
    with threadpoolctl.threadpool_limits(limits=2):  # the caller's own pools stay untouched
        latency = gate_facts.latency_ms(type(tmp_path)(local), rows)
        after = max(p["num_threads"] for p in threadpoolctl.threadpool_info())
    assert latency > 0
    assert len(seen) >= gate_facts.LATENCY_WARMUP_CALLS + gate_facts.LATENCY_MIN_CALLS
    assert set(seen) == {1}
    assert after == 2


def test_batch_scoring_predicts_with_the_threads_it_is_given(store, tmp_path, monkeypatch):
    from runway.scoring import model as scoring_model

    seen: list[int] = []
    real = scoring_model.LoadedModel.predict

    def watched(self, X):
        seen.append(max(p["num_threads"] for p in threadpoolctl.threadpool_info()))
        return real(self, X)

    monkeypatch.setattr(scoring_model.LoadedModel, "predict", watched)
    _rows(store).to_csv(tmp_path / "in.csv", index=False)
    settings = Settings(threads=1)
    score_file(MODEL, tmp_path / "in.csv", tmp_path / "out.csv", settings=settings)
    assert seen == [1]


# --- 10. inference-time parallelism --------------------------------------------------------------


def test_a_forest_trained_with_all_cores_is_logged_to_predict_one_row_at_a_time(tmp_path):
    spec = {
        "experiment": "forest",
        "task": "classification",
        "model_name": "forest",
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {
            "name": "RandomForestClassifier",
            "params": {"n_estimators": 10, "max_depth": 3, "n_jobs": -1},
        },
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 1},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    _, version, run_id = ship(tmp_path, spec, production=False)
    model = mlflow.sklearn.load_model(f"models:/forest/{version}")
    assert model.named_steps["model"].n_jobs == 1
    assert mlflow.get_run(run_id).data.params["model__n_jobs"] == "-1"  # as trained
    from runway.scoring.model import load_model

    batch = load_model("forest", version=version, workdir=tmp_path / "batch", threads=2).estimator
    assert batch.named_steps["model"].n_jobs == 2  # batch predicts big chunks in parallel
    assert batch.named_steps["preprocess"].n_jobs is None  # never a process pool per chunk


# --- 8. the positive class ------------------------------------------------------------------


def test_the_shipped_breast_cancer_spec_gates_malignant_recall(tmp_path):
    import yaml
    from sklearn.metrics import recall_score

    from runway.core.training.data import load_dataset, prepare
    from runway.core.training.spec import spec_from_dict
    from runway.jobs.promote import promote
    from tests.conftest import EXPERIMENTS, REPO

    doc = yaml.safe_load((EXPERIMENTS / "breast_cancer.yaml").read_text())
    doc.pop("sweep")
    doc["estimator"]["params"].update(n_estimators=30)
    doc["split"]["cv_folds"] = 2
    doc["metrics"] = [*doc["metrics"], "recall"]
    settings, version, run_id = ship(tmp_path, doc, production=False)
    shutil.copy(REPO / "registry" / f"{doc['model_name']}.yaml", tmp_path / "registry")
    promote(doc["model_name"], version, "Staging", settings=settings)  # the shipped policy

    split = prepare(spec_from_dict(doc), load_dataset(spec_from_dict(doc).data))
    model = mlflow.sklearn.load_model(f"models:/{doc['model_name']}/{version}")
    predicted = model.predict(split.X_holdout)
    malignant = recall_score(split.y_holdout, predicted, pos_label=0)
    benign = recall_score(split.y_holdout, predicted, pos_label=1)
    assert malignant != benign
    assert mlflow.get_run(run_id).data.metrics["holdout_recall"] == pytest.approx(malignant)
    contract = tracking.load_contract(run_id)
    assert contract.target is not None
    assert contract.target.to_json_dict() == {
        "classes": [0, 1],
        "class_names": ["malignant", "benign"],
        "positive_class": 0,
    }
    client = mlflow.MlflowClient()
    reports = [
        a.path for a in client.list_artifacts(run_id, "registry") if a.path.endswith(".json")
    ]
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{reports[-1]}"))
    assert "positive class 0 (malignant)" in report["evaluation"]
    gated = next(r for r in report["rules"] if r["name"] == "holdout recall")
    assert float(gated["candidate"]) == pytest.approx(malignant, abs=1e-4)
    assert gated["limit"] == ">= 0.9" and gated["passed"]
