"""Issue 27, round 2 of the security review: observations 4, 5, 6, 10 and 12."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from runway.net import free_port
from runway.store.predlog import PredictionLog
from runway.store.predlog_writer import BackgroundWriter

SECRET = "Sup3rS3cret-pw"


def _unreachable_db() -> str:
    # a closed loopback port: the connection is refused at once
    return f"postgresql://runway:{SECRET}@127.0.0.1:{free_port()}/predictions?connect_timeout=2"


# --- 4. passwords are never printed ----------------------------------------------------------


def test_prediction_log_repr_hides_the_password() -> None:
    sink = PredictionLog(_unreachable_db())
    assert SECRET not in repr(sink)
    assert "runway:***@127.0.0.1" in repr(sink)
    assert sink.target.count(SECRET) == 1  # it still connects with the real one


def test_cannot_write_warning_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    writer = BackgroundWriter(PredictionLog(_unreachable_db()), flush_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="runway.store.predlog_writer"):
        writer.submit("m", "1", [{"x": 1.0}], b'{"predictions": [0]}', "r1")
        writer.close()
    assert writer.buffered == 1 and writer.dropped == 0  # held on disk until the database is back
    text = caplog.text
    assert "is unavailable" in text and "runway:***@127.0.0.1" in text
    assert SECRET not in text


def test_serve_banner_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    from runway.serving import serve

    web = SimpleNamespace(started=True)
    options = SimpleNamespace(host="127.0.0.1", port=8080)
    slot = SimpleNamespace(
        model=SimpleNamespace(name="m", version="3"),
        backends=[SimpleNamespace(path=Path("/run/x/b0.sock"))],
        example=b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}',
    )
    sink = PredictionLog(_unreachable_db())
    asyncio.run(serve._announce(web, options, slot, sink))  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "logging    predictions to postgresql://runway:***@127.0.0.1" in out
    assert SECRET not in out


# --- 5. backend logs are the user's own ------------------------------------------------------


def test_backend_logs_default_to_the_users_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runway.serving import serve

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert serve.ServeOptions(model="m").log_dir == tmp_path / "state" / "runway" / "serve"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "state" / "runway" / "serve"
    assert serve.ServeOptions(model="m").log_dir == expected


@pytest.mark.parametrize("given", [False, True], ids=["default", "--log-dir"])
def test_backend_log_dir_and_files_are_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: bool
) -> None:
    """The folder the gateway hands its backends is 0700, and their log files 0600."""
    import os
    import sys

    from runway.serving import launch, serve, zygote
    from runway.serving.gateway import Gateway
    from runway.settings import Settings

    os.umask(0o022)  # a usual umask: what made the logs world-readable
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    options = serve.ServeOptions(model="m")
    if given:
        options.log_dir = tmp_path / "mine" / "logs"
    seen: dict[str, int] = {}

    def spawn_group(model: str, socket_dir: Path, log_dir: Path, *rest: object, **kw: object):
        seen["mode"] = log_dir.stat().st_mode & 0o777  # as the backends find it
        log = log_dir / "backend-m-1-g1-0.log"
        proc = zygote.spawn(
            [sys.executable, "-c", "import sys; sys.stderr.write('x')"], {}, [], log
        )
        proc.communicate(timeout=30)
        seen["file"] = log.stat().st_mode & 0o777
        return SimpleNamespace()

    monkeypatch.setattr(launch, "spawn_group", spawn_group)  # where Server._spawn's lives
    settings = Settings(MLFLOW_TRACKING_URI="sqlite:///x.db", prediction_log="off")
    server = serve.Server(options, settings, Gateway(settings, None), tmp_path)
    server._spawn(1)
    assert seen == {"mode": 0o700, "file": 0o600}
    assert not str(options.log_dir).startswith("/tmp/runway-serve")


# --- 6. sweep workers propose distinct parameters --------------------------------------------

SWEEP = {
    "trials": 8,
    "seed": 7,
    "pruning": False,
    "space": {"model__C": {"type": "float", "low": 0.001, "high": 100, "log": True}},
}


def _param_sets(study_name: str, storage: Path) -> list[tuple]:
    import optuna

    journal = optuna.storages.journal.JournalFileBackend(str(storage))
    study = optuna.load_study(
        study_name=study_name, storage=optuna.storages.JournalStorage(journal)
    )
    return [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow
def test_parallel_workers_propose_distinct_parameters(tmp_path: Path) -> None:
    from runway.core.training.spec import load_spec
    from runway.jobs.sweep import sweep
    from tests.helpers import write_spec

    spec = load_spec(write_spec(tmp_path / "s.yaml", sweep=SWEEP, metrics=["roc_auc"]))
    result = sweep(spec, workers=2)
    sets = _param_sets(result.study_name, tmp_path / "optuna.journal")
    assert len(sets) == 8
    assert len(set(sets)) == 8, sets


@pytest.mark.slow
def test_a_joined_worker_proposes_parameters_the_owner_did_not(tmp_path: Path) -> None:
    """A second machine joins (here one after the other, the worst case for equal seeds)."""
    from runway.core.training.spec import load_spec
    from runway.jobs import study as studies
    from runway.jobs.join import join
    from runway.jobs.sweep import sweep
    from tests.helpers import write_spec

    spec = load_spec(
        write_spec(tmp_path / "s.yaml", sweep={**SWEEP, "trials": 4}, metrics=["roc_auc"])
    )
    result = sweep(spec)
    journal = tmp_path / "optuna.journal"
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    optuna.load_study(study_name=result.study_name, storage=storage).set_user_attr(
        studies.TARGET_ATTR, 8
    )
    join(spec)
    sets = _param_sets(result.study_name, journal)
    assert len(sets) == 8
    assert len(set(sets)) == 8, sets


# --- 10. the monitor on a database log where served and batch rows share a window ------------


def _mixed_sql_log(tmp_path: Path) -> PredictionLog:
    """A SQLite prediction log (the team's PostgreSQL sink, same reader) with batch rows (their
    probabilities logged) and served rows (none: monitoring scores them) in one window."""
    import pandas as pd

    sink = PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}")
    now = pd.Timestamp.now(tz="UTC")
    common = {"model": "m", "version": "1", "status": "scored", "reason": None}
    batch = pd.DataFrame(
        {
            "timestamp": [now] * 3,
            **{k: [v] * 3 for k, v in common.items()},
            "source": "batch",
            "request_id": "b1",
            "row": [0, 1, 2],
            "key": ["k0", "k1", "k2"],
            "input.x": [0.5, 1.5, 0.7],
            "prediction": ["1", "0", "1"],
            "proba.0": [0.2, 0.9, 0.3],
            "proba.1": [0.8, 0.1, 0.7],
        }
    )
    served = batch.drop(columns=["proba.0", "proba.1"]).assign(
        source="serve", request_id="r1", key=["k3", "k4", "k5"]
    )
    sink.write_frame("m", batch)
    sink.write_frame("m", served)
    return sink


def _window_stats():
    from runway.core.columns.profile import ReferenceProfile
    from runway.core.columns.schema import DataContract
    from runway.monitoring.window import WindowStats

    bins = {"kind": "numeric", "bin_edges": [0.0, 1.0, 2.0], "bin_fractions": [0.5, 0.5]}
    profile = {
        "features": {"x": {**bins, "missing_rate": 0.0}},
        "predictions": {
            "kind": "categorical",
            "frequencies": {"0": 0.5, "1": 0.5},
            "scores": {
                "0": dict(bins, bin_edges=[0.0, 0.5, 1.0]),
                "1": dict(bins, bin_edges=[0.0, 0.5, 1.0]),
            },
        },
    }
    contract = {
        "columns": {"x": {"kind": "numeric", "min": 0.0, "max": 2.0}},
        "target": {"positive_class": "1"},
    }
    return WindowStats.for_reference(
        ReferenceProfile.model_validate(profile), DataContract.model_validate(contract)
    )


def _scorer(features):
    import numpy as np

    return np.tile([0.4, 0.6], (len(features), 1))


def test_monitor_counts_a_database_window_of_served_and_batch_rows(tmp_path: Path) -> None:
    sink = _mixed_sql_log(tmp_path)
    stats = _window_stats()
    batches = list(sink.read_window("m", None, None))
    assert sum(len(b) for b in batches) == 6 and any(b["proba.1"].isna().any() for b in batches)
    for batch in batches:
        stats.add(batch, _scorer)  # was: ValueError: assignment destination is read-only
    assert stats.rows_scored == 6
    assert stats.scores_computed == 3
    assert stats.scores["1"].counts.sum() == 6


def test_monitor_joins_labels_on_a_database_window_of_served_and_batch_rows(
    tmp_path: Path,
) -> None:

    from runway.monitoring.labels import Labels

    sink = _mixed_sql_log(tmp_path)
    truth = {f"k{i}": str(i % 2) for i in range(6)}
    labels = Labels("labels.csv", truth, classes=["0", "1"])
    for batch in sink.read_window("m", None, None):
        labels.add(batch, ["x"], _scorer)
    probabilities = labels.probabilities()
    assert probabilities is not None and probabilities.shape == (6, 2)


# --- 12. a batch's rows are logged when its output is committed, once per batch id ----------

BATCH_MODEL = "sec-batch"


@pytest.fixture(scope="module")
def _batch_production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import ship

    root = tmp_path_factory.mktemp("sec-batch-store")
    spec = {
        "experiment": "sec-batch",
        "task": "classification",
        "model_name": BATCH_MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec)
    return root / "mlflow.db"


@pytest.fixture
def batch_input(_batch_production: Path, mlflow_store: str, tmp_path: Path) -> Path:
    """This test's store (a copy of the module's, with its Production version) and an input."""
    import shutil

    from sklearn.datasets import load_breast_cancer

    shutil.copy(_batch_production, tmp_path / "mlflow.db")
    rows = load_breast_cancer(as_frame=True).data
    rows.insert(0, "id", [f"r{i:04d}" for i in range(len(rows))])
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    return tmp_path / "in.parquet"


def test_a_batch_whose_output_upload_fails_logs_nothing(
    batch_input: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runway.errors import ScoringError
    from runway.scoring.batch import ScoringOptions, score_file
    from runway.store.predlog import read_predictions

    # the object store is down: nothing listens where S3 should be
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ScoringError, match="cannot upload"):
        score_file(
            BATCH_MODEL,
            batch_input,
            "s3://scores/out/day1.parquet",
            ScoringOptions(key_columns=["id"], chunk_rows=200),
        )
    assert len(read_predictions(BATCH_MODEL)) == 0


@pytest.mark.parametrize("sink", ["directory", "database"])
def test_the_same_batch_scored_twice_is_logged_once(
    batch_input: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sink: str
) -> None:
    from datetime import UTC, datetime

    from runway.scoring.batch import ScoringOptions, score_file
    from runway.store.predlog import read_predictions

    if sink == "database":
        monkeypatch.setenv("RUNWAY_PREDICTION_LOG", f"sqlite:///{tmp_path / 'predictions.db'}")
    when = datetime(2026, 1, 2, 3, tzinfo=UTC)  # a scheduler's logical time: the same on retry
    options = ScoringOptions(key_columns=["id"], chunk_rows=200, scored_at=when)
    first = score_file(BATCH_MODEL, batch_input, tmp_path / "out.parquet", options)
    again = score_file(BATCH_MODEL, batch_input, tmp_path / "out.parquet", options)
    assert first.batch_id == again.batch_id
    logged = read_predictions(BATCH_MODEL)
    assert len(logged) == 569, len(logged)
    assert set(logged["request_id"]) == {first.batch_id}
    other = score_file(BATCH_MODEL, batch_input, tmp_path / "other.parquet", options)
    assert other.batch_id != first.batch_id
    assert len(read_predictions(BATCH_MODEL)) == 2 * 569  # another batch is logged
