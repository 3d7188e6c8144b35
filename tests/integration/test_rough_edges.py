"""The smaller things a person trips over (issue 16, item 10), one test each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from runway.cli import main
from runway.core.columns.contract import DataContract, column_problems
from runway.core.training.spec import spec_schema
from tests.conftest import EXPERIMENTS, REPO
from tests.helpers import ship

MODEL = "churn-edges"
FEATURES = {
    "age": "numeric",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "contract": "categorical",
    "region": "categorical",
}


def test_unknown_column_error_says_when_the_expected_list_is_cut():
    contract = DataContract.model_validate(
        {"columns": {f"c{i:02d}": {"kind": "numeric"} for i in range(30)}}
    )
    [problem] = column_problems([*contract.columns, "zone"], contract)
    assert problem.startswith("column 'zone': unknown; expected only c00, c01,")
    assert problem.endswith("c19, ... (30 columns)")
    one = DataContract.model_validate({"columns": {"c00": {"kind": "numeric"}}})
    [short] = column_problems(["c00", "zone"], one)
    assert short == "column 'zone': unknown; expected only c00"


@pytest.mark.slow
def test_spec_schema_piped_into_head_ends_quietly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "runway", "spec", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # what `| head` does once it has its lines: the reader goes away
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 0


def test_spec_schema_accepts_every_shipped_spec_including_features_infer():
    schema = spec_schema()
    specs = sorted(EXPERIMENTS.glob("*.yaml"))
    assert any(yaml.safe_load(p.read_text())["data"].get("features") == "infer" for p in specs)
    for path in specs:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        doc = yaml.safe_load(specs[0].read_text())
        doc["data"]["features"] = "guess"
        jsonschema.validate(doc, schema)


def test_readme_says_what_make_does_with_runways_exit_code():
    readme = (REPO / "README.md").read_text()
    assert re.search(r"`make` itself exits 2 .*`Error 6`", readme, re.S), "README: make's exit code"


# --- batch scoring -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def _churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edges")
    shutil.copy(REPO / "data" / "churn.csv", root / "churn.csv")
    spec = {
        "experiment": "edges",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(root / "churn.csv"), "target": "churned", "features": FEATURES},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 5},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec)
    return root


@pytest.fixture
def churn(_churn: Path, mlflow_store: str, tmp_path: Path) -> Path:
    shutil.copy(_churn / "mlflow.db", tmp_path / "mlflow.db")
    return _churn


@pytest.mark.slow
def test_batch_summary_counts_every_reason_and_rejects_keep_values_as_written(
    churn, tmp_path, capsys
):
    rows = pd.read_csv(churn / "churn.csv").head(40)[list(FEATURES)]
    rows["age"] = rows["age"].astype(float)  # a float column (as one gap would make it)
    rows.loc[5, ["age", "contract", "region"]] = [13, "lifetime", "atlantis"]
    rows.loc[7, "region"] = "atlantis"
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    lines = source.read_text().splitlines()
    assert lines[6].startswith("13.0,")
    lines[6] = "13" + lines[6][4:]  # as a person would have typed it
    source.write_text("\n".join(lines) + "\n")

    output = tmp_path / "out.csv"
    code = main(
        [
            "score",
            MODEL,
            "--input",
            str(source),
            "--output",
            str(output),
            "--max-reject-rate",
            "0.5",
        ]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert re.search(r"^ +1 x column 'contract': category", out, re.M), out
    assert re.search(r"^ +2 x column 'region': category", out, re.M), out
    rejects = pd.read_csv(tmp_path / "out.rejects.csv", dtype=str)
    assert list(rejects["row"]) == ["5", "7"]
    assert rejects.loc[0, "age"] == "13"


@pytest.mark.slow
def test_score_refuses_a_missing_output_folder_before_loading_the_model(churn, tmp_path, capsys):
    source = tmp_path / "in.csv"
    pd.read_csv(churn / "churn.csv").head(5).to_csv(source, index=False)
    missing = tmp_path / "no" / "such" / "folder" / "out.csv"

    # An unknown model would be exit 6; the output check comes first, so it is exit 7.
    assert main(["score", "no-such-model", "--input", str(source), "--output", str(missing)]) == 7
    err = capsys.readouterr().err
    assert f"error: {missing.parent}: the output folder does not exist" in err
