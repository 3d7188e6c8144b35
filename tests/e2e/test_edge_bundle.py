"""The edge bundle on a "device": a fresh venv holding only numpy and onnxruntime.

`runway onnx export` writes the bundle of a registered twin; its predict.py, run by
the fresh venv's Python (no MLflow, scikit-learn, pandas or runway there), must
print the registered version's predictions for the same rows, from CSV and JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from runway.cli import main
from runway.core.training.data import load_dataset, prepare
from runway.core.training.spec import spec_from_dict
from runway.jobs.onnx import lighten
from runway.store import models, registry, trust
from tests.conftest import EXPERIMENTS
from tests.helpers import ship

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def device(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with numpy and onnxruntime only (the versions pinned in requirements.lock)."""
    venv = tmp_path_factory.mktemp("device") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = [f"numpy=={version('numpy')}", f"onnxruntime=={version('onnxruntime')}"]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
        check=True,
        timeout=600,
    )
    return python


def test_the_bundle_predicts_like_the_registered_version_with_onnxruntime_alone(
    device, tmp_path, churn_csv
):
    doc = yaml.safe_load((EXPERIMENTS / "churn.yaml").read_text())
    doc["estimator"] = {"name": "RandomForestClassifier", "params": {"n_estimators": 40}}
    doc["split"]["cv_folds"] = 2
    settings, source, _ = ship(tmp_path, doc, production=True)
    made = lighten("churn-classifier", source, settings)
    out = tmp_path / "bundle"
    assert (
        main(["onnx", "export", "churn-classifier", "--out", str(out)]) == 0
    )  # the twin of the Production version
    # the contract beside predict.py, with the JSON Schema of runway's model for it
    schema = json.loads((out / "contract.schema.json").read_text())
    jsonschema.validate(json.loads((out / "contract.json").read_text()), schema)

    freeze = subprocess.run(
        [str(device), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    assert "onnxruntime==" in freeze and "numpy==" in freeze
    assert not any(p in freeze for p in ("pandas", "scikit-learn", "mlflow", "runway"))

    spec = spec_from_dict(doc)
    X = prepare(spec, load_dataset(spec.data)).X_holdout
    local = trust.fetch_verified(
        registry.get_version("churn-classifier", source), tmp_path / "s", settings
    )
    expected = [int(v) for v in models.load_pyfunc(local).predict(X)]
    proba = models.load_sklearn(local).predict_proba(X)

    X.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "rows.json").write_text(
        X.astype(object).where(X.notna(), None).to_json(orient="records")
    )
    for flag, path in (("--csv", "rows.csv"), ("--json", "rows.json")):
        done = subprocess.run(
            [str(device), str(out / "predict.py"), flag, str(tmp_path / path), "--proba"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert [line["prediction"] for line in lines] == expected, flag
        got = np.array([[line["probabilities"][c] for c in ("0", "1")] for line in lines])
        assert np.abs(got - proba).max() <= made.report.tolerance

    # the bundle checks rows against the contract before the model sees them
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{**json.loads(X.head(1).to_json(orient="records"))[0], "region": "mars"}])
    )
    done = subprocess.run(
        [str(device), str(out / "predict.py"), "--json", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 3 and "never seen in training" in done.stdout
