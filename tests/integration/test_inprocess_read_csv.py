"""In-process pyfunc on the training file as pandas reads it (issue 25, 14).

``mlflow.pyfunc.load_model(uri).predict(pd.read_csv(train_csv))`` raised "Can not
safely convert int64 to float64": number columns entered the signature as
``double``, and MLflow's enforcement takes int64 -> double only for 0/1 values
(and ``long`` would refuse the float64 pandas reads a gappy integer column as).
Number columns are ``AnyType`` inputs now (store.models.input_spec): int64,
float64 with NaN, both score, with batch's answer.
"""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest

from runway.scoring.batch import ScoringOptions, score_file
from runway.store import models
from tests.conftest import Shipped


@pytest.mark.parametrize("gaps", [False, True], ids=["int64", "integers-with-gaps"])
def test_the_training_file_as_pandas_reads_it_scores_in_process_like_batch(
    delivery: Shipped, mlflow_store: str, tmp_path, monkeypatch, gaps
):
    shutil.copy(delivery.db, tmp_path / "mlflow.db")
    monkeypatch.setenv("RUNWAY_REGISTRY_DIR", str(delivery.root / "registry"))
    rows = pd.read_csv(delivery.data).drop(columns=["minutes", "late"])
    if gaps:  # an integer column with a gap: pandas reads it as float64
        rows.loc[[3, 7], "items"] = np.nan
        rows.to_csv(tmp_path / "in.csv", index=False)
        rows = pd.read_csv(tmp_path / "in.csv")
        assert rows["items"].dtype == np.float64
    else:
        assert rows["items"].dtype == np.int64
    rows.to_csv(tmp_path / "in.csv", index=False)
    score_file("delivery", tmp_path / "in.csv", tmp_path / "out.csv", ScoringOptions())
    batch = pd.read_csv(tmp_path / "out.csv")["prediction"].to_numpy()

    in_process = mlflow.pyfunc.load_model("models:/delivery/1").predict(rows)

    np.testing.assert_allclose(np.asarray(in_process), batch, rtol=1e-9)


def test_runway_reads_the_declared_types_whatever_the_signature_holds(tmp_path):
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    declared = {"items": "double", "ordered_at": "datetime", "zone": "string"}
    new = [models.input_spec(n, t, n != "zone") for n, t in declared.items()]
    old = [ColSpec(t, n, required=n != "zone") for n, t in declared.items()]
    assert [str(c.type) for c in new[:2]] == ["Any", "Any"] and new[2].type == old[2].type
    for columns, metadata in ((new, {models.INPUT_TYPES_KEY: declared}), (old, None)):
        folder = tmp_path / str(len(str(metadata)))
        folder.mkdir()
        Model(signature=ModelSignature(Schema(columns)), metadata=metadata).save(
            str(folder / "MLmodel")
        )
        assert models.signature_inputs(folder) == declared
        assert set(models.signature_inputs(folder, required_only=True)) == {"items", "ordered_at"}
