"""`runway monitor` and `runway retrain` on a real store: windows of batch-scored rows, judged.

One model is trained and promoted per session; each test gets a copy of that
store, its own prediction log and its own policy, and scores its own windows.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from runway.cli import main
from runway.scoring.batch import ScoringOptions, score_file
from runway.settings import Settings
from tests.helpers import ship

MODEL = "cancer-monitored"
SHIFTED = ("mean radius", "worst texture")
SPEC = {
    "experiment": "monitor-tests",
    "task": "classification",
    "model_name": MODEL,
    "data": {"source": "sklearn:breast_cancer", "target": "target"},
    "estimator": {"name": "LogisticRegression", "params": {"max_iter": 2000}},
    "split": {"holdout": 0.25, "cv_folds": 3, "seed": 1},
    "metrics": ["roc_auc", "accuracy"],
    "primary_metric": {"name": "roc_auc"},
}


@pytest.fixture(scope="session")
def _shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitored")
    ship(root, SPEC)
    return root


@pytest.fixture
def env(_shipped: Path, mlflow_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's copy of the shipped store, a fresh prediction log, and a policy to edit."""
    shutil.copy(_shipped / "mlflow.db", tmp_path / "mlflow.db")
    shutil.copytree(_shipped / "registry", tmp_path / "registry")
    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", str(tmp_path / "predictions"))
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(tmp_path / "registry"))
    _policy(tmp_path, min_rows=100, features={"drift_share": 0.05})
    return tmp_path


def _policy(root: Path, **monitor) -> None:
    path = root / "registry" / f"{MODEL}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["monitor"] = monitor
    path.write_text(yaml.safe_dump(doc))


def _rows(n: int = 400, seed: int = 3, shift: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    rows = frame.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for column in shift:
        rows[column] = rows[column] + 3 * frame[column].std()
    rows.insert(0, "id", [f"r{seed}-{i}" for i in range(n)])
    return rows


def _score(root: Path, rows: pd.DataFrame, day: int) -> None:
    path = root / f"day{day}.parquet"
    rows.drop(columns="target").to_parquet(path, index=False)
    when = datetime(2026, 11, day, 12, tzinfo=UTC)
    score_file(MODEL, path, root / f"scores{day}.parquet", ScoringOptions(("id",), scored_at=when))


def _monitor(day: int, *extra: str) -> int:
    return main(["-q", "monitor", MODEL, "--since", f"2026-11-{day:02d}", "--window", "1d", *extra])


def _summary(run_id: str) -> dict:
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/summary.json"))


def _windows(client: mlflow.MlflowClient) -> list:
    experiment = client.get_experiment_by_name(Settings().monitor_experiment)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_a_shifted_window_flags_exactly_the_shifted_features(env, client, capsys):
    _score(env, _rows(shift=SHIFTED), day=20)

    assert _monitor(20) == 10  # threshold crossed

    out = capsys.readouterr().out
    [run] = _windows(client)
    summary = _summary(run.info.run_id)
    assert sorted(summary["drifted"]) == sorted(SHIFTED)
    assert run.data.tags["runway.monitor.outcome"] == "crossed"
    assert run.data.metrics["psi.mean radius"] > 1 and run.data.metrics["psi.mean texture"] < 0.1
    assert run.data.metrics["drift_share"] == pytest.approx(2 / 30)
    report = next(line.split(None, 1)[1] for line in out.splitlines() if line.startswith("report"))
    page = Path(report).read_text()
    assert "threshold crossed" in page and "worst texture" in page
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "summary.json"} <= artifacts


def test_a_window_without_shift_is_healthy_and_nothing_is_retrained(env, client, capsys):
    _policy(env, min_rows=100, features={"drift_share": 0.05}, action="retrain")
    _score(env, _rows(seed=4), day=21)

    assert _monitor(21) == 0

    summary = _summary(_windows(client)[0].info.run_id)
    assert summary["drifted"] == [] and summary["breaches"] == []
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    assert "outcome    healthy" in capsys.readouterr().out


def test_a_window_judged_again_is_counted_early_to_the_same_figures(env, client, monkeypatch):
    """#31: the second run counts the window while MLflow loads, over the reference the first
    remembered; the registry's reference is the same, so the early counts are used, and every
    figure, metric and tag of the run is the first run's."""
    from runway.monitoring import early

    used = []
    counted = early.EarlyCount.counted

    def spy(self, *args):
        result = counted(self, *args)
        used.append(result is not None)
        return result

    monkeypatch.setattr(early.EarlyCount, "counted", spy)
    _score(env, _rows(shift=SHIFTED), day=20)

    assert _monitor(20) == 10
    assert _monitor(20) == 10

    assert used == [False, True]
    first, second = _windows(client)
    assert _summary(first.info.run_id) == _summary(second.info.run_id)
    assert first.data.metrics == second.data.metrics
    note = "mlflow.note.content"  # links to its own run's report
    tags = [
        {k: v for k, v in r.data.tags.items() if k.startswith("runway.")} for r in (first, second)
    ]
    assert (
        tags[0] == tags[1]
        and first.data.tags[note].split("\n")[0] == second.data.tags[note].split("\n")[0]
    )


def test_labels_joined_by_key_report_a_degraded_live_metric(env, client):
    rows = _rows(seed=5)
    _score(env, rows, day=22)
    labels = rows[["id", "target"]].copy()
    flip = np.random.default_rng(0).random(len(labels)) < 0.35
    labels.loc[flip, "target"] = 1 - labels.loc[flip, "target"]  # the world changed its answers
    labels.to_csv(env / "labels.csv", index=False)

    assert _monitor(22, "--labels", str(env / "labels.csv"), "--key-column", "id") == 10

    summary = _summary(_windows(client)[0].info.run_id)
    performance = summary["performance"]
    assert performance["metric"] == "roc_auc" and performance["joined"] == len(rows)
    assert performance["live"] < performance["holdout"] - 0.05 and performance["passed"] is False
    assert any(b.startswith("performance: live roc_auc") for b in summary["breaches"])
    assert summary["drifted"] == []  # the inputs did not move; the answers did


def test_the_retrain_action_stages_a_new_version_and_leaves_production(env, client, capsys):
    _policy(env, min_rows=100, features={"drift_share": 0.05}, action="retrain")
    _score(env, _rows(shift=SHIFTED), day=23)

    assert _monitor(23) == 10

    window = _windows(client)[0]
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert set(versions) == {"1", "2"}
    new = versions["2"]
    assert new.tags["runway.retrain.reason"] == "monitoring"
    assert new.tags["runway.retrain.trigger_run"] == window.info.run_id
    assert new.tags["runway.retrain.from_version"] == "1"
    assert new.current_stage == "Staging"  # through the gates, not further
    assert versions["1"].current_stage == "Production"
    assert client.get_run(window.info.run_id).data.tags["runway.monitor.retrained_version"] == "2"
    assert "retrained  cancer-monitored v2 from v1 -> Staging" in capsys.readouterr().out


def test_n_of_m_windows_must_breach_before_the_trigger(env, client, capsys):
    _policy(
        env, min_rows=100, features={"drift_share": 0.05}, trigger={"breaches": 2, "of_last": 3}
    )
    _score(env, _rows(shift=SHIFTED), day=24)
    _score(env, _rows(seed=8, shift=SHIFTED), day=25)

    assert _monitor(24) == 0
    assert "crossed in this window, trigger not met" in capsys.readouterr().out
    assert _monitor(25) == 10
    assert "2 of the last 2 window(s) crossed (trigger: 2 of 3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no rows", "0 scored rows in the window, fewer than monitor.min_rows (100)"),
        ("labels match nothing", "none of the 400 labels in"),
        ("unknown policy field", "monitor.features.drift_shares: unknown field"),
    ],
)
def test_a_window_that_cannot_be_judged_says_why_and_retrains_nothing(
    env, client, capsys, case, message
):
    _policy(env, min_rows=100, action="retrain", features={"drift_share": 0.05})
    rows = _rows(shift=SHIFTED)
    _score(env, rows, day=26)
    args: list[str] = []
    day = 26
    if case == "no rows":
        day = 27
    elif case == "labels match nothing":
        labels = rows[["id", "target"]].assign(id=lambda f: "other-" + f["id"])
        labels.to_csv(env / "labels.csv", index=False)
        args = ["--labels", str(env / "labels.csv"), "--key-column", "id"]
    else:
        _policy(env, features={"drift_shares": 0.05})

    code = _monitor(day, *args)

    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ")
    assert code == (9 if case == "unknown policy field" else 11)
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1


def test_a_version_without_a_reference_profile_is_not_judged(env, client, capsys):
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            LogisticRegression(max_iter=50).fit(X, y), name="model", input_example=X.head(2)
        )
    mlflow.register_model(info.model_uri, "bare-model")
    (env / "registry" / "bare-model.yaml").write_text(
        yaml.safe_dump({"model": "bare-model", "production": {"reviewers": ["x"]}})
    )

    assert main(["-q", "monitor", "bare-model", "--version", "1"]) == 11

    assert "has no reference profile (contract/reference_profile.json)" in capsys.readouterr().err


def test_a_database_prediction_log_is_judged_the_same(env, client, monkeypatch):
    monkeypatch.setenv("RUNWAY_PREDICTION_LOG", f"sqlite:///{env / 'predictions.db'}")
    _score(env, _rows(shift=SHIFTED), day=28)

    assert _monitor(28) == 10
    assert sorted(_summary(_windows(client)[0].info.run_id)["drifted"]) == sorted(SHIFTED)


def test_retrain_on_the_data_plus_the_labelled_window(env, client, capsys):
    rows = _rows(seed=9)
    _score(env, rows, day=29)
    rows[["id", "target"]].to_csv(env / "labels.csv", index=False)

    code = main(
        [
            "-q",
            "retrain",
            MODEL,
            "--labels",
            str(env / "labels.csv"),
            "--key-column",
            "id",
            "--since",
            "2026-11-29",
            "--window",
            "1d",
        ]
    )

    assert code == 0, capsys.readouterr()
    new = client.get_model_version(MODEL, "2")
    assert new.current_stage == "Staging" and new.tags["runway.retrain.reason"] == "manual"
    data = new.tags["runway.retrain.data"]
    assert data.endswith(".parquet") and len(pd.read_parquet(data)) == 569 + len(rows)
    assert client.get_model_version(MODEL, "1").current_stage == "Production"


def test_a_batch_file_with_one_rejected_row_is_no_false_alarm(env, client, capsys):
    """Issue 25 #1: the part file's prediction column turns float (1.0) with a rejected row."""
    rows = _rows(seed=6).drop(columns="target").astype({"mean radius": object})
    rows.loc[7, "mean radius"] = "twelve"  # one row the contract rejects
    path = env / "day18.csv"
    rows.to_csv(path, index=False)
    when = datetime(2026, 11, 18, 12, tzinfo=UTC)
    score_file(MODEL, path, env / "scores18.parquet", ScoringOptions(("id",), scored_at=when))

    assert _monitor(18) == 0, capsys.readouterr().out

    summary = _summary(_windows(client)[0].info.run_id)
    assert summary["rows_rejected"] == 1 and summary["breaches"] == []
    assert summary["prediction"]["psi"] < 0.1
    assert summary["prediction"]["current"][summary["prediction"]["labels"].index("(unseen)")] == 0


@pytest.mark.parametrize("rule", ["breach", "note"])
def test_one_drifted_feature_breaches_by_the_policys_rule_and_the_cli_names_it(
    env, client, capsys, rule
):
    """Issue 25 #3: one feature far past its threshold, under the default drift share (50 %).

    ``breach`` is the default: the policy does not name it.
    """
    _policy(env, min_rows=100, features={} if rule == "breach" else {"per_feature": rule})
    rows = _rows(seed=10)
    rows["symmetry error"] += rows["symmetry error"].std()  # one feature, far past 0.2
    _score(env, rows, day=19)

    assert _monitor(19) == (10 if rule == "breach" else 0)

    out = capsys.readouterr().out
    assert f"features.per_feature: {rule}" in out and "1 of 30 features drifted" in out
    assert ("CROSSED  input drift (rule features.per_feature: breach): symmetry" in out) is (
        rule == "breach"
    )


MONITOR_PROBE = """
import sys
from runway.cli import main
code = main(sys.argv[1:])
print("imported:", " ".join(m for m in ("optuna", "sklearn", "scipy.stats") if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.slow
def test_monitor_imports_neither_optuna_nor_sklearn_when_it_does_not_retrain(env):
    """#31: the retrain path (Optuna) and the spec's estimator (scikit-learn) cost seconds;
    scipy.stats (the chi-square's p-value needs only scipy.special) about 0.8 s of CPU."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_PYTHONPATH

    _policy(env, min_rows=100, features={"drift_share": 0.05}, action="retrain")
    _score(env, _rows(seed=4), day=21)
    args = ["-q", "monitor", MODEL, "--since", "2026-11-21", "--window", "1d"]
    out = subprocess.run(
        [sys.executable, "-c", MONITOR_PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO_PYTHONPATH},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "outcome    healthy" in out.stdout
    assert out.stdout.splitlines()[-1].split() == ["imported:"], out.stdout
