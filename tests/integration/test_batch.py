"""Batch scoring on a real MLflow store: files in, scores and rejects out, every row accounted for."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from runway.cli import main
from runway.scoring.batch import RejectRateExceeded, ScoringOptions, score_file
from runway.scoring.spark import SparkEngine
from runway.store.predlog import read_predictions
from tests.helpers import free_port, import_or_skip, ship, stop_process_group

MODEL = "cancer-batch"
LINEAGE = ["model", "model_version", "run_id", "scored_at"]


@dataclass(frozen=True)
class Store:
    db: Path
    run_id: str


@pytest.fixture(scope="session")
def _production(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A breast-cancer classifier trained, registered and promoted to Production once."""
    root = tmp_path_factory.mktemp("batch-store")
    spec = {
        "experiment": "batch-tests",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 3},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    _, _, run_id = ship(root, spec)
    return Store(root / "mlflow.db", run_id)


@pytest.fixture
def store(_production: Store, mlflow_store: str, tmp_path: Path) -> Store:
    """This test's store: a copy of the session's (artifacts stay shared, read-only)."""
    shutil.copy(_production.db, tmp_path / "mlflow.db")
    return _production


def _rows(repeat: int = 1) -> pd.DataFrame:
    """breast_cancer's features with an id column, ``repeat`` times."""
    X = load_breast_cancer(as_frame=True).data
    X = pd.concat([X] * repeat, ignore_index=True)
    X.insert(0, "id", [f"r{i:06d}" for i in range(len(X))])
    return X


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _read(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def _sklearn_model():
    return mlflow.sklearn.load_model(f"models:/{MODEL}/1")


@pytest.mark.parametrize(
    "src,dst", [("csv", "csv"), ("csv", "parquet"), ("parquet", "csv"), ("parquet", "parquet")]
)
def test_scores_csv_and_parquet_in_and_out(store, tmp_path, src, dst):
    rows = _rows()
    source = _write(rows, tmp_path / f"in.{src}")

    result = score_file(
        MODEL,
        source,
        tmp_path / f"scores.{dst}",
        ScoringOptions(key_columns=["id"], chunk_rows=100),
    )

    out = _read(tmp_path / f"scores.{dst}")
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (569, 569, 0)
    assert result.published and (result.model, result.version) == (MODEL, "1")
    assert list(out.columns) == ["id", "prediction", "proba_malignant", "proba_benign", *LINEAGE]
    assert out["id"].tolist() == rows["id"].tolist()  # chunk order kept
    model = _sklearn_model()
    features = rows.drop(columns="id")
    assert out["prediction"].tolist() == model.predict(features).tolist()
    np.testing.assert_allclose(
        out[["proba_malignant", "proba_benign"]], model.predict_proba(features)
    )
    assert set(out["model"]) == {MODEL} and set(out["model_version"].astype(str)) == {"1"}
    assert set(out["run_id"]) == {store.run_id}
    assert out["scored_at"].nunique() == 1
    rejects = _read(tmp_path / f"scores.rejects.{dst}")  # always written, empty here
    assert len(rejects) == 0 and list(rejects.columns)[-2:] == ["row", "reason"]


def test_all_input_columns_pass_through_without_a_key_column(store, tmp_path):
    rows = _rows().drop(columns="id")
    _write(rows, tmp_path / "in.parquet")

    score_file(
        MODEL, tmp_path / "in.parquet", tmp_path / "out.parquet", ScoringOptions(proba=False)
    )

    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == [*rows.columns, "prediction", *LINEAGE]
    pd.testing.assert_frame_equal(out[rows.columns], rows)


def test_rejects_carry_row_and_reason_and_every_row_is_accounted_for(store, tmp_path):
    rows = _rows().astype({"mean radius": object, "mean texture": object})
    rows.loc[3, "mean radius"] = "unknown"
    rows.loc[7, "mean texture"] = np.inf
    rows.loc[7, "mean radius"] = "big"
    rows.loc[100:149, "mean radius"] = "x"  # the whole third chunk is rejected
    _write(rows, tmp_path / "in.csv")

    result = score_file(
        MODEL,
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        ScoringOptions(key_columns=["id"], chunk_rows=50, max_reject_rate=1.0),
    )

    rejects = pd.read_csv(tmp_path / "out.rejects.csv", dtype={"mean radius": str})
    out = pd.read_csv(tmp_path / "out.csv")
    assert result.rows_rejected == 52 and result.rows_scored == 517
    assert result.rows_in == result.rows_scored + result.rows_rejected == len(rows)
    assert len(out) == result.rows_scored and len(rejects) == result.rows_rejected
    assert rejects["row"].tolist() == [3, 7, *range(100, 150)]
    assert set(out["id"]).isdisjoint(rejects["id"])
    assert set(out["id"]) | set(rejects["id"]) == set(rows["id"])
    first = rejects.set_index("row")
    assert first.loc[3, "reason"] == "column 'mean radius': expected a number, got text 'unknown'"
    assert first.loc[3, "mean radius"] == "unknown"  # the value as it was in the input
    assert first.loc[7, "reason"] == (
        "column 'mean radius': expected a number, got text 'big'; "
        "column 'mean texture': expected a finite number"
    )
    assert list(rejects.columns) == [*rows.columns, "row", "reason"]
    assert result.reasons == {  # every rule a row broke, not only its first
        "column 'mean radius': expected a number": 52,
        "column 'mean texture': expected a finite number": 1,
    }


def test_integers_are_scored_against_a_float_signature(store, tmp_path):
    rows = _rows()
    features = rows.columns[1:]
    integers = rows.copy()
    integers[features] = (rows[features] * 1000).round().astype("int64")
    _write(integers, tmp_path / "ints.csv")
    _write(integers, tmp_path / "ints.parquet")

    for source in ("ints.csv", "ints.parquet"):
        result = score_file(
            MODEL,
            tmp_path / source,
            tmp_path / f"{source}.out.parquet",
            ScoringOptions(key_columns=["id"]),
        )
        assert result.rows_rejected == 0, result.reasons
        out = pd.read_parquet(tmp_path / f"{source}.out.parquet")
        expected = _sklearn_model().predict(integers[features].astype("float64"))
        assert out["prediction"].tolist() == expected.tolist()


def test_scored_rows_go_to_the_prediction_log(store, tmp_path):
    _write(_rows(), tmp_path / "in.parquet")

    result = score_file(
        MODEL,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        ScoringOptions(key_columns=["id"], chunk_rows=200),
    )

    logged = read_predictions(MODEL)
    assert len(logged) == result.rows_scored == 569
    assert set(logged["source"]) == {"batch"} and set(logged["request_id"]) == {result.batch_id}
    assert set(logged["version"]) == {"1"}
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert logged["prediction"].tolist() == out["prediction"].tolist()
    assert "input.mean radius" in logged.columns


def test_rerun_is_idempotent(store, tmp_path):
    _write(_rows(), tmp_path / "in.parquet")
    args = ["score", MODEL, "--input", "in.parquet", "--key-column", "id", "--chunk-rows", "128"]

    for out in ("a.parquet", "b.parquet", "a.parquet"):  # a twice: replaced, not appended
        assert main([*args, "--output", out, "--scored-at", "2026-01-02T03:00:00"]) == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert len(pd.read_parquet(tmp_path / "a.parquet")) == 569
    scored_at = pd.read_parquet(tmp_path / "a.parquet")["scored_at"].unique()
    assert [str(t) for t in scored_at] == ["2026-01-02 03:00:00+00:00"]

    # Without --scored-at two runs differ in scored_at only.
    assert main([*args, "--output", "c.csv"]) == 0
    assert main([*args, "--output", "d.csv"]) == 0
    c, d = pd.read_csv(tmp_path / "c.csv"), pd.read_csv(tmp_path / "d.csv")
    pd.testing.assert_frame_equal(c.drop(columns="scored_at"), d.drop(columns="scored_at"))


@pytest.mark.slow
def test_reject_rate_over_the_threshold_fails_the_run(store, tmp_path, python):
    rows = _rows().astype({"mean radius": object})
    rows.loc[:59, "mean radius"] = "?"  # 60 of 569 rows: 10.5%
    _write(rows, tmp_path / "in.csv")
    (tmp_path / "out.csv").write_text("stale output of an earlier run\n")
    cmd = [python, "-m", "runway", "score", MODEL, "--input", "in.csv", "--output", "out.csv"]

    failed = subprocess.run([*cmd, "--key-column", "id"], capture_output=True, text=True)

    assert failed.returncode == 7, failed.stderr
    assert "error: 60 of 569 rows rejected (10.54% > threshold 5.00%); out.csv not written" in (
        failed.stderr
    )
    assert "Traceback" not in failed.stderr
    assert "rejected  60 (10.54%; threshold 5.00%)" in failed.stdout
    assert not (tmp_path / "out.csv").exists()  # neither this run's nor the stale one
    assert len(pd.read_csv(tmp_path / "out.rejects.csv")) == 60

    passed = subprocess.run(
        [*cmd, "--key-column", "id", "--max-reject-rate", "0.2"], capture_output=True, text=True
    )
    assert passed.returncode == 0, passed.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 509


@pytest.mark.slow
def test_a_killed_run_leaves_no_output(store, tmp_path, python):
    _write(_rows(repeat=300), tmp_path / "big.csv")  # 170,700 rows
    args = ["-q", "score", MODEL, "--input", "big.csv", "--output", "out.csv", "--key-column", "id"]
    cmd = [python, "-m", "runway", *args, "--chunk-rows", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.tmp-*")):  # the first chunk is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "out.rejects.csv").exists()
    # The next run cleans up the dead run's temporary file and completes.
    assert main([*args, "--chunk-rows", "50000"]) == 0
    assert not list(tmp_path.glob(".out.csv.tmp-*"))
    assert len(pd.read_csv(tmp_path / "out.csv")) == 170_700


def test_clear_errors_for_a_missing_model_version_input_or_column(store, tmp_path, capsys):
    _write(_rows(), tmp_path / "in.csv")
    base = ["score", "--input", "in.csv", "--output", "out.csv", "--key-column", "id"]

    assert main([base[0], "no-such-model", *base[1:]]) == 6
    assert "no-such-model" in capsys.readouterr().err
    assert main([base[0], MODEL, *base[1:], "--version", "9"]) == 6
    assert "9" in capsys.readouterr().err
    assert main([base[0], MODEL, *base[1:], "--stage", "Staging"]) == 6
    assert f"{MODEL} has no Staging version" in capsys.readouterr().err

    assert main(["score", MODEL, "--input", "gone.csv", "--output", "out.csv"]) == 7
    assert "error: gone.csv: input file not found" in capsys.readouterr().err

    _write(_rows().drop(columns=["mean radius"]), tmp_path / "narrow.csv")
    assert (
        main(["score", MODEL, "--input", "narrow.csv", "--output", "out.csv", "--key-column", "id"])
        == 7
    )
    assert "required column(s) ['mean radius'] missing" in capsys.readouterr().err

    assert main(["score", MODEL, "--input", "in.csv", "--output", "out.csv"]) == 7
    assert "column(s) ['id'] are not model inputs" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()

    assert main([*base[:1], MODEL, *base[1:], "--version", "1"]) == 0
    assert "model     cancer-batch v1 (Production" in capsys.readouterr().out


def test_a_file_of_only_rejects_still_writes_both_files(store, tmp_path):
    rows = _rows().astype({"mean radius": object})
    rows["mean radius"] = "?"
    _write(rows, tmp_path / "in.parquet")

    with pytest.raises(RejectRateExceeded) as failed:
        score_file(
            MODEL,
            tmp_path / "in.parquet",
            tmp_path / "out.parquet",
            ScoringOptions(key_columns=["id"]),
        )
    assert failed.value.exit_code == 7
    assert failed.value.result.rows_rejected == failed.value.result.rows_in == 569

    result = score_file(
        MODEL,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        ScoringOptions(key_columns=["id"], max_reject_rate=1),
    )
    assert result.rows_scored == 0
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 0
    assert len(pd.read_parquet(tmp_path / "out.rejects.parquet")) == 569


# --- S3 (moto's server on loopback) -------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, python: str):
    """An S3 endpoint on 127.0.0.1 (moto in server mode) with one bucket; a boto3 client."""
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="scores")
                break
            except Exception:
                assert proc.poll() is None, "moto server exited"
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield client
    finally:
        stop_process_group(proc)


@pytest.mark.slow
def test_s3_input_and_output(store, tmp_path, s3):
    rows = _rows().astype({"mean radius": object})
    rows.loc[5, "mean radius"] = "?"
    _write(rows, tmp_path / "in.csv")
    s3.upload_file(str(tmp_path / "in.csv"), "scores", "incoming/day1.csv")

    result = score_file(
        MODEL,
        "s3://scores/incoming/day1.csv",
        "s3://scores/out/day1.parquet",
        ScoringOptions(key_columns=["id"]),
    )

    assert (result.rows_scored, result.rows_rejected) == (568, 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="scores")["Contents"]}
    assert keys == {"incoming/day1.csv", "out/day1.parquet", "out/day1.rejects.parquet"}
    s3.download_file("scores", "out/day1.parquet", str(tmp_path / "got.parquet"))
    s3.download_file("scores", "out/day1.rejects.parquet", str(tmp_path / "rej.parquet"))
    assert len(pd.read_parquet(tmp_path / "got.parquet")) == 568
    assert pd.read_parquet(tmp_path / "rej.parquet")["row"].tolist() == [5]

    assert main(["score", MODEL, "--input", "s3://scores/nope.csv", "--output", "x.csv"]) == 7


# --- Spark ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_spark_engine_on_local2_matches_pandas(store, tmp_path):
    import_or_skip("pyspark")
    rows = _rows(repeat=2)
    features = rows.columns[1:]
    rows[features[:5]] = (
        (rows[features[:5]] * 100).round().astype("int64")
    )  # int vs float signature
    rows.loc[[4, 900], "worst texture"] = -np.inf  # Parquet is typed: bad values are numbers
    rows.loc[10, "symmetry error"] = np.inf
    _write(rows, tmp_path / "in.parquet")
    common = ScoringOptions(key_columns=["id"], scored_at=pd.Timestamp("2026-01-01", tz="UTC"))

    pandas = score_file(MODEL, tmp_path / "in.parquet", tmp_path / "pandas.parquet", common)
    spark = score_file(
        MODEL,
        tmp_path / "in.parquet",
        tmp_path / "spark.parquet",
        common,
        engine=SparkEngine("local[2]"),
    )

    assert (spark.rows_in, spark.rows_scored, spark.rows_rejected) == (
        pandas.rows_in,
        pandas.rows_scored,
        pandas.rows_rejected,
    )
    assert spark.rows_rejected == 3 and spark.published
    assert (tmp_path / "spark.parquet").is_dir()  # Spark's layout: a dataset of part files
    expected = pd.read_parquet(tmp_path / "pandas.parquet")
    got = pd.read_parquet(tmp_path / "spark.parquet").sort_values("id", ignore_index=True)
    expected = expected.sort_values("id", ignore_index=True)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    rejects = pd.read_parquet(tmp_path / "spark.rejects.parquet").sort_values("row")
    pandas_rejects = pd.read_parquet(tmp_path / "pandas.rejects.parquet")
    assert rejects["row"].tolist() == pandas_rejects["row"].tolist() == [4, 10, 900]
    assert rejects["reason"].tolist() == pandas_rejects["reason"].tolist()
    assert not list(tmp_path.glob(".spark*"))  # no temporaries left


def test_the_pandas_engine_does_not_load_the_spark_engine(store, tmp_path, python):
    # mlflow itself imports pyspark modules when pyspark is installed; runway's own Spark
    # code, and Spark itself (a JVM), stay out of a pandas run.
    _write(_rows(), tmp_path / "in.parquet")
    code = (
        "import sys; from runway.cli import main; "
        "rc = main(['-q', 'score', 'cancer-batch', '--input', 'in.parquet', '--output', "
        "'o.parquet', '--key-column', 'id']); "
        "assert 'runway.scoring.spark' not in sys.modules, 'spark engine imported'; "
        "ctx = sys.modules.get('pyspark.core.context'); "
        "assert ctx is None or ctx.SparkContext._active_spark_context is None, 'Spark started'; "
        "sys.exit(rc)"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
