"""One row, one answer: the same rows score alike on every path a user has.

The delivery model (tests/helpers.delivery_frame: a float with gaps, an integer,
a boolean, an ISO timestamp with gaps, a 4-level and a 60-level category, a
column name with a space; trained once per session from a CSV with features
inferred, a Ridge regression, so any difference in a feature shows in the
prediction)
is served by `runway serve` with real `mlflow models serve` backends, scored by
`runway score` from CSV and from Parquet, on Spark `local[2]`, and in-process
through MLflow's pyfunc. Hypothesis draws rows with every kind of value,
missing ones included, and the accepted spellings of booleans and timestamps.
Rows the contract rejects are rejected with the same reason on every path.

Equality is exact where the rows are scored in the same batch (REST against
in-process, one request at a time). Files are scored in chunks and Spark
batches, and BLAS picks its dot-product kernel by batch shape, so the last bit
of a prediction may differ there: those comparisons allow a relative 1e-12,
far below what any difference in a feature does to a Ridge prediction.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runway.scoring.batch import ScoringOptions, score_file
from runway.scoring.spark import SparkEngine
from runway.store.served import BACKEND_APP
from tests.conftest import Shipped
from tests.helpers import free_port, stop_process_group, wait_http

# A backend's command line names the app it serves (its zygote's, forked).
BACKEND = BACKEND_APP.split(":")[0].encode()

pytestmark = pytest.mark.slow

MODEL = "delivery"
COURIERS = [f"c{i:02d}" for i in range(60)]
ZONES = ["north", "south", "east", "west"]


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    model: Any  # the pyfunc model, in this process
    shipped: Shipped
    log: Path


@pytest.fixture(scope="module")
def served(delivery: Shipped, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("parity")
    uri = f"sqlite:///{delivery.db}"
    mlflow.set_tracking_uri(uri)  # each test's own store is set after this (function scope)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{delivery.version}")
    port = free_port()
    log = root / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(port),
             "--log-dir", str(root / "logs")],
            cwd=delivery.root, env=delivery.env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ready", proc, timeout=180)
        yield Served(url, proc, model, delivery, log)
    finally:
        stop_process_group(proc)


# --- rows, and how each format spells them -------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row's values, and the spellings a client may use for them."""

    distance_km: float | None
    items: int | None
    express: bool | None
    ordered_at: dt.datetime | None
    zone: str | None
    courier: str | None
    bool_spelling: int = 0
    time_spelling: int = 0

    def typed(self) -> dict[str, Any]:
        """The row as a pandas user holds it (what pyfunc scores in-process)."""
        return {
            "distance_km": np.nan if self.distance_km is None else self.distance_km,
            "items": np.nan if self.items is None else float(self.items),
            "express": self.express,
            "ordered_at": pd.NaT if self.ordered_at is None else pd.Timestamp(self.ordered_at),
            "zone": self.zone,
            "courier id": self.courier,
        }

    def spelled(self, text: bool) -> dict[str, Any]:
        """The row as a client writes it: JSON values, or CSV text when ``text``."""
        express: Any = self.express
        if self.express is not None:
            json_spellings = [self.express, str(self.express).lower(), str(self.express).upper(),
                              int(self.express), str(int(self.express))]  # fmt: skip
            csv_spellings = [str(self.express), str(self.express).lower(),
                             str(self.express).upper(), str(int(self.express))]  # fmt: skip
            spellings = csv_spellings if text else json_spellings
            express = spellings[self.bool_spelling % len(spellings)]
        return {
            "distance_km": self.distance_km,
            "items": self.items,
            "express": express,
            "ordered_at": _spell_time(self.ordered_at, self.time_spelling),
            "zone": self.zone,
            "courier id": self.courier,
        }


def _spell_time(value: dt.datetime | None, spelling: int) -> str | None:
    """The same instant written four ways: ISO with T or space, as UTC or with an offset."""
    if value is None:
        return None
    variants = [
        value.isoformat(),
        value.isoformat(sep=" "),
        value.isoformat() + "Z",
        (value + dt.timedelta(hours=2)).isoformat() + "+02:00",
    ]
    return variants[spelling % len(variants)]


ROWS = st.builds(
    Row,
    distance_km=st.none() | st.floats(0, 60, allow_nan=False, allow_infinity=False),
    items=st.none() | st.integers(1, 15),
    express=st.sampled_from([True, False, None]),
    ordered_at=st.none()
    | st.datetimes(dt.datetime(2023, 6, 1), dt.datetime(2025, 6, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    zone=st.sampled_from([*ZONES, None]),
    courier=st.sampled_from([*COURIERS, None]),
    bool_spelling=st.integers(0, 4),
    time_spelling=st.integers(0, 3),
)


def typed_frame(rows: list[Row], missing: Any = None) -> pd.DataFrame:
    """The rows as a pandas user holds them; a missing category is ``missing`` (None or NaN).

    (A missing boolean stays None: MLflow's in-process schema check refuses a
    boolean column that pandas made float64 because every value in it is NaN.)
    """
    frame = pd.DataFrame([r.typed() for r in rows])
    frame["express"] = frame["express"].astype(object).where(frame["express"].notna(), None)
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"]).astype("datetime64[us]")
    for column in ("zone", "courier id"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), missing)
    return frame


def bodies(rows: list[Row]) -> dict[str, tuple[bytes, str]]:
    """The same rows as each request format, spelled the way that format's clients do."""
    records = [r.spelled(text=False) for r in rows]
    columns = list(records[0])
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
    text = pd.DataFrame([r.spelled(text=True) for r in rows], columns=columns)
    parquet = io.BytesIO()
    typed = typed_frame(rows)
    typed["items"] = typed["items"].astype("Int64")  # an integer column, as a file holds it
    typed.to_parquet(parquet, index=False)
    by_column = {c: [r[c] for r in records] for c in columns}
    return {
        "json records": _json({"dataframe_records": records}),
        "json split": _json({"dataframe_split": split}),
        "json instances": _json({"instances": records}),
        "json inputs": _json({"inputs": records}),
        "json inputs (columns)": _json({"inputs": by_column}),
        "csv": (text.to_csv(index=False).encode(), "text/csv"),
        "parquet": (parquet.getvalue(), "application/vnd.apache.parquet"),
    }


def _json(doc: Any) -> tuple[bytes, str]:
    return json.dumps(doc).encode(), "application/json"


def post(url: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=60
    )


# --- valid rows: one answer --------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ROWS, min_size=1, max_size=6))
def test_rest_in_every_format_answers_like_the_model_in_process(served, rows):
    expected = served.model.predict(typed_frame(rows)).tolist()
    # a missing category held as NaN, not None: the same answer in-process too
    assert served.model.predict(typed_frame(rows, missing=np.nan)).tolist() == expected
    for name, (body, content_type) in bodies(rows).items():
        answer = post(served.url, body, content_type)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["predictions"] == expected, name


def _file_rows(n: int = 240, seed: int = 11) -> list[Row]:
    """A seeded sample of rows with every kind of value (for the file-based paths)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2023, 6, 1)
    rows = []
    for i in range(n):
        gap = rng.random(6) < 0.12
        rows.append(
            Row(
                distance_km=None if gap[0] else round(float(rng.gamma(2.0, 2.5)), 3),
                items=None if gap[1] else int(rng.integers(1, 15)),
                express=None if gap[2] else bool(rng.random() < 0.4),
                ordered_at=None
                if gap[3]
                else start + dt.timedelta(seconds=int(rng.integers(0, 3e7))),
                zone=None if gap[4] else ZONES[int(rng.integers(0, 4))],
                courier=None if gap[5] else COURIERS[int(rng.integers(0, 60))],
                bool_spelling=i,
                time_spelling=i,
            )
        )
    return rows


def _score_cli(shipped: Shipped, source: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runway", "score", MODEL, "--input", str(source),
         "--output", str(output), "--key-column", "order", "--max-reject-rate", "1",
         "--chunk-rows", "97"],
        cwd=shipped.root, env=shipped.env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _inputs(rows: list[Row], where: Path) -> dict[str, Path]:
    """The rows as the CSV and the Parquet file a scheduler would hand `runway score`."""
    text = pd.DataFrame([r.spelled(text=True) for r in rows])
    text.insert(0, "order", [f"o{i:04d}" for i in range(len(rows))])
    typed = typed_frame(rows)
    typed["items"] = typed["items"].astype("Int64")
    typed.insert(0, "order", text["order"])
    paths = {"csv": where / "rows.csv", "parquet": where / "rows.parquet"}
    text.to_csv(paths["csv"], index=False)
    typed.to_parquet(paths["parquet"], index=False)
    return paths


def _spark(shipped: Shipped, source: Path, output: Path, tmp_path: Path) -> pd.DataFrame:
    shutil.copy(shipped.db, tmp_path / "mlflow.db")  # this test's store: a copy of the session's
    score_file(
        MODEL,
        source,
        output,
        ScoringOptions(key_columns=["order"], max_reject_rate=1.0),
        engine=SparkEngine("local[2]"),
    )
    return pd.read_parquet(output)


def test_batch_and_spark_answer_like_the_model_in_process_and_rest(served, tmp_path):
    rows = _file_rows()
    expected = served.model.predict(typed_frame(rows))
    paths = _inputs(rows, tmp_path)
    outputs = {}
    for fmt, source in paths.items():
        done = _score_cli(served.shipped, source, tmp_path / f"scores-{fmt}.{fmt}")
        assert done.returncode == 0, done.stderr[-2000:]
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        outputs[f"runway score ({fmt} in)"] = read(tmp_path / f"scores-{fmt}.{fmt}")
    outputs["spark local[2]"] = _spark(
        served.shipped, paths["parquet"], tmp_path / "spark.parquet", tmp_path
    )
    for name, out in outputs.items():
        out = out.sort_values("order")
        assert out["order"].tolist() == [f"o{i:04d}" for i in range(len(rows))], name
        np.testing.assert_allclose(out["prediction"], expected, rtol=1e-12, atol=0, err_msg=name)
    for name, (body, content_type) in bodies(rows).items():
        answer = post(served.url, body, content_type)
        assert answer.status_code == 200, (name, answer.text)
        np.testing.assert_allclose(
            answer.json()["predictions"], expected, rtol=1e-12, atol=0, err_msg=name
        )


# --- rejected rows: one reason -----------------------------------------------------------------

GOOD = Row(4.2, 3, True, dt.datetime(2024, 3, 5, 18, 30), "east", "c07")
# (the bad value's column, the value, the reason every path must give)
BAD = [
    ("express", "yes", "column 'express': expected true or false (or 1/0), got 'yes'"),
    ("ordered_at", "2024-13-45", "column 'ordered_at': expected an ISO 8601 timestamp, got '2024-13-45'"),
    ("ordered_at", "05/03/2024", "column 'ordered_at': expected an ISO 8601 timestamp, got '05/03/2024'"),
    ("zone", "northeast", "column 'zone': category 'northeast' never seen in training"),
    ("courier id", "c99x", "column 'courier id': category 'c99x' never seen in training"),
    ("items", 2.5, "column 'items': expected an integer, got 2.5"),
]  # fmt: skip


def _bad_frames() -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Rows 0 and 2 good, the others each with one bad value: as JSON records and as a frame."""
    good = GOOD.spelled(text=False)
    records = [dict(good)]
    for column, value, _ in BAD:
        records.append({**good, column: value})
    records.append(dict(good))
    frame = pd.DataFrame(records).astype(
        {"express": object, "ordered_at": object, "items": "float64"}
    )
    frame["express"] = frame["express"].map(str)  # one column type per file: text
    return records, frame


def _expected_reasons() -> dict[int, str]:
    return {i + 1: reason for i, (_, _, reason) in enumerate(BAD)}


def _rest_reasons(answer: requests.Response) -> dict[int, str]:
    assert answer.status_code == 422, answer.text
    return {e["row"]: e["message"] for e in answer.json()["errors"]}


def _check(reasons: dict[int, str], path: str) -> None:
    expected = _expected_reasons()
    assert set(reasons) == set(expected), (path, reasons)
    for row, reason in expected.items():
        assert reasons[row].startswith(reason), (path, row, reasons[row])


def test_rejected_rows_get_the_same_reason_on_every_path(served, tmp_path):
    records, frame = _bad_frames()
    for name, (body, content_type) in bodies_of(records, frame).items():
        _check(_rest_reasons(post(served.url, body, content_type)), name)
    frame.insert(0, "order", [f"o{i:04d}" for i in range(len(frame))])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    frame.to_parquet(tmp_path / "bad.parquet", index=False)
    for fmt in ("csv", "parquet"):
        done = _score_cli(served.shipped, tmp_path / f"bad.{fmt}", tmp_path / f"out-{fmt}.{fmt}")
        assert done.returncode == 0, done.stderr[-2000:]
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        rejects = read(tmp_path / f"out-{fmt}.rejects.{fmt}")
        _check(dict(zip(rejects["row"], rejects["reason"], strict=True)), f"runway score {fmt}")
        assert len(read(tmp_path / f"out-{fmt}.{fmt}")) == 2  # the good rows are scored
    _spark(served.shipped, tmp_path / "bad.parquet", tmp_path / "spark.parquet", tmp_path)
    rejects = pd.read_parquet(tmp_path / "spark.rejects.parquet")
    _check(dict(zip(rejects["row"], rejects["reason"], strict=True)), "spark")
    health = requests.get(f"{served.url}/health", timeout=5)
    assert health.status_code == 200


def bodies_of(records: list[dict[str, Any]], frame: pd.DataFrame) -> dict[str, tuple[bytes, str]]:
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    columns = list(records[0])
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in records]}
    return {
        "json records": _json({"dataframe_records": records}),
        "json split": _json({"dataframe_split": split}),
        "json instances": _json({"instances": records}),
        "json inputs": _json({"inputs": records}),
        "csv": (frame.to_csv(index=False).encode(), "text/csv"),
        "parquet": (parquet.getvalue(), "application/vnd.apache.parquet"),
    }


def test_an_unreadable_value_in_process_names_the_column_and_value(served):
    frame = typed_frame([GOOD]).astype({"ordered_at": object, "express": object})
    frame.loc[0, "ordered_at"] = "2024-13-45"
    # MLflow's signature takes any value for a timestamp (so pd.read_csv's text scores);
    # runway's transformer inside the model names the column, the value and the row.
    with pytest.raises(ValueError, match=r"column 'ordered_at': .*got '2024-13-45' \(row 0"):
        served.model.predict(frame)
    pipeline = served.model.get_raw_model()  # runway's transformers, inside the model
    with pytest.raises(ValueError, match=r"column 'ordered_at': .*got '2024-13-45' \(row 0"):
        pipeline.predict(frame)
    frame = typed_frame([GOOD]).astype({"express": object})
    frame.loc[0, "express"] = "yes"
    with pytest.raises(ValueError, match=r"column 'express': expected true or false.*'yes'"):
        pipeline.predict(frame)


# --- what a new user saw (issue 12), over REST -------------------------------------------------


def _good_rows(n: int) -> list[Row]:
    keep = [r for r in _file_rows(60) if None not in (r.distance_km, r.ordered_at, r.zone)]
    return [r for r in keep if r.courier is not None][:n]


def test_booleans_in_every_usual_spelling_are_scored_over_rest(served):
    rows = [replace(_good_rows(1)[0], express=value) for value in (True,) * 4 + (False,) * 4]
    expected = served.model.predict(typed_frame(rows)).tolist()
    text = pd.DataFrame([r.spelled(text=True) for r in rows])
    text["express"] = ["True", "true", "TRUE", "1", "False", "false", "FALSE", "0"]
    answer = post(served.url, text.to_csv(index=False).encode(), "text/csv")
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    records = [r.spelled(text=False) for r in rows]
    for record, spelled in zip(
        records, [True, "true", "TRUE", 1, False, "false", "0", 0], strict=True
    ):
        record["express"] = spelled
    answer = post(
        served.url, json.dumps({"dataframe_records": records}).encode(), "application/json"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected


def test_a_missing_boolean_is_imputed_over_rest_and_logged_as_missing(served):
    from runway.store.predlog import read_predictions

    base = _good_rows(1)[0]
    missing, false = replace(base, express=None), replace(base, express=False)
    expected = served.model.predict(typed_frame([missing])).tolist()
    assert expected != served.model.predict(typed_frame([false])).tolist()
    record = missing.spelled(text=False)
    del record["zone"]  # an optional column left out, too
    body = json.dumps({"dataframe_records": [record]}).encode()
    answer = post(served.url, body, "application/json")
    assert answer.status_code == 200, answer.text
    assert (
        answer.json()["predictions"]
        == served.model.predict(typed_frame([replace(missing, zone=None)])).tolist()
    )
    request_id = answer.headers["X-Request-Id"]
    target = str(served.shipped.root / "predictions")
    deadline = time.monotonic() + 20
    logged = pd.DataFrame()
    while time.monotonic() < deadline:
        logged = read_predictions(MODEL, target)
        if "request_id" in logged and (logged["request_id"] == request_id).any():
            break
        time.sleep(0.5)
    row = logged[logged["request_id"] == request_id].iloc[0]
    assert pd.isna(row["input.express"])
    assert row["prediction"] == answer.json()["predictions"][0]


def test_one_bad_csv_cell_blames_only_its_row(served):
    rows = _good_rows(3)
    text = pd.DataFrame([r.spelled(text=True) for r in rows])
    text["distance_km"] = text["distance_km"].astype(object)
    text.loc[1, "distance_km"] = "far"
    answer = post(served.url, text.to_csv(index=False).encode(), "text/csv")
    assert answer.status_code == 422
    body = answer.json()
    assert body["errors"] == [
        {"row": 1, "message": "column 'distance_km': expected a number, got text 'far'"}
    ]
    assert body["message"] == "row 1: column 'distance_km': expected a number, got text 'far'"


def test_an_optional_column_may_be_left_out_of_a_request(served):
    rows = _good_rows(2)
    expected = served.model.predict(typed_frame([replace(r, zone=None) for r in rows])).tolist()
    records = [{k: v for k, v in r.spelled(text=False).items() if k != "zone"} for r in rows]
    answer = post(
        served.url, json.dumps({"dataframe_records": records}).encode(), "application/json"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    text = pd.DataFrame([r.spelled(text=True) for r in rows]).drop(columns=["zone"])
    answer = post(served.url, text.to_csv(index=False).encode(), "text/csv")
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    required = [{k: v for k, v in r.items() if k != "items"} for r in records]
    answer = post(
        served.url, json.dumps({"dataframe_records": required}).encode(), "application/json"
    )
    assert answer.status_code == 422
    assert answer.json()["message"] == "column 'items': required, missing from the input"


def test_backends_run_with_blas_and_openmp_threads_pinned(served):
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines()[1:]]
    below, frontier = [], [served.proc.pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in pairs if ppid == parent]
        below += children
        frontier += children
    servers = [pid for pid in below if BACKEND in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert servers
    for pid in servers:
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            assert environ.get(variable) == "1", (variable, environ.get(variable))
