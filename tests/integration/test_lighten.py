"""``runway onnx convert`` and ``runway onnx export`` against a real (SQLite) store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from runway.cli import main
from runway.core.training.data import load_dataset, prepare
from runway.core.training.spec import spec_from_dict
from runway.errors import ExitCode, LightenRefused, UntrustedModel
from runway.jobs.onnx import lighten, load_for_scoring
from runway.store import models, onnx_models, registry, tracking, trust
from runway.store.tracking import client
from tests.conftest import EXPERIMENTS
from tests.helpers import delivery_frame, delivery_spec, ship


def churn_spec(estimator: str = "HistGradientBoostingClassifier", **params: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXPERIMENTS / "churn.yaml").read_text())
    doc["estimator"] = {"name": estimator, "params": params}
    doc["split"]["cv_folds"] = 2
    return doc


@pytest.fixture
def shipped(tmp_path: Path, churn_csv: Path) -> tuple[Any, str, str]:
    """churn (HGB, 30 iterations) trained and registered as v1, not promoted."""
    spec = churn_spec(max_iter=30)
    return ship(tmp_path, spec, production=False)


def holdout(doc: dict[str, Any]) -> pd.DataFrame:
    spec = spec_from_dict(doc)
    return prepare(spec, load_dataset(spec.data)).X_holdout


def test_lighten_registers_a_checked_twin_that_scores_like_its_source(shipped, tmp_path):
    settings, version, _ = shipped
    result = lighten("churn-classifier", version, settings)
    assert result.report.ok and result.report.rows_checked > 600
    twin_v = registry.get_version("churn-classifier", result.twin.version)
    tags = twin_v.tags
    assert (
        tags[onnx_models.SOURCE_TAG] == version
        and tags[onnx_models.KIND_TAG] == onnx_models.TWIN_KIND
    )
    assert tags[onnx_models.SHA_TAG] == result.onnx_sha256
    assert float(tags["runway.parity.max_abs_diff"]) <= float(tags["runway.parity.tolerance"])
    assert (
        twin_v.stage == "None"
        and twin_v.run_id != registry.get_version("churn-classifier", version).run_id
    )

    local = trust.fetch_verified(twin_v, tmp_path / "twin", settings)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert set(mlmodel["flavors"]) == {"python_function"}
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "runway.core.onnx.model"
    requirements = (local / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "scikit-learn" not in requirements
    source = trust.fetch_verified(
        registry.get_version("churn-classifier", version), tmp_path / "s", settings
    )
    assert models.signature_inputs(local) == models.signature_inputs(source)

    X = holdout(churn_spec(max_iter=30))
    np.testing.assert_array_equal(
        models.load_pyfunc(local).predict(X), models.load_pyfunc(source).predict(X)
    )
    parity = json.loads(
        Path(
            client().download_artifacts(result.run_id, onnx_models.PARITY_ARTIFACT, str(tmp_path))
        ).read_text()
    )
    assert parity["ok"] and {f["name"] for f in parity["frames"]} == {"holdout", "edge"}


def test_a_tampered_twin_is_refused_before_it_loads(shipped, tmp_path):
    settings, version, _ = shipped
    result = lighten("churn-classifier", version, settings)
    twin_v = registry.get_version("churn-classifier", result.twin.version)
    local = trust.fetch_verified(twin_v, tmp_path / "ok", settings)
    # The artifact store's copy, changed in place (same size, one byte different).
    logged = client().get_logged_model(twin_v.source.removeprefix("models:/"))
    stored = Path(logged.artifact_location.removeprefix("file://")) / "data" / "twin" / "model.onnx"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    with pytest.raises(UntrustedModel, match="SHA-256"):
        trust.fetch_verified(twin_v, tmp_path / "bad", settings)
    # Rewriting twin.json to match is not enough: the hash recorded on the version decides.
    record = stored.with_name("twin.json")
    doc = json.loads(record.read_text())
    from runway.core.onnx.model import sha256_file

    doc["onnx_sha256"] = sha256_file(stored)
    record.write_text(json.dumps(doc))
    with pytest.raises(UntrustedModel, match="recorded when the twin was checked"):
        trust.fetch_verified(twin_v, tmp_path / "bad2", settings)
    assert (local / "data" / "twin" / "model.onnx").is_file()


def test_knn_is_refused_with_a_report_naming_the_estimator_and_worst_rows(
    tmp_path, churn_csv, capsys
):
    _, version, _ = ship(tmp_path, churn_spec("KNeighborsClassifier"), production=False)
    code = main(["onnx", "convert", "churn-classifier", version])
    err = capsys.readouterr().err
    assert code == ExitCode.REGISTRY
    assert (
        "KNeighborsClassifier" in err and "worst rows of edge" in err and "1000000000000.0" in err
    )
    assert [v.version for v in registry.versions("churn-classifier")] == [version]


def test_categorical_impute_none_is_refused(tmp_path, churn_csv):
    doc = churn_spec("LogisticRegression", max_iter=300)
    doc["preprocessing"]["categorical"] = {"impute": "none", "encode": "onehot"}
    settings, version, _ = ship(tmp_path, doc, production=False)
    with pytest.raises(LightenRefused, match=r"payment_method.*learnt 'missing' as a category"):
        lighten("churn-classifier", version, settings)


def test_the_twin_climbs_the_gates_like_any_candidate(shipped, capsys):
    settings, version, _ = shipped
    result = lighten("churn-classifier", version, settings)
    code = main(["registry", "promote", "churn-classifier", result.twin.version, "--to", "Staging"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"ONNX version of v{version}: single-row latency" in out
    assert registry.get_version("churn-classifier", result.twin.version).stage == "Staging"


def test_export_writes_a_bundle_whose_predictor_agrees_with_the_registry(shipped, tmp_path):
    settings, version, _ = shipped
    lighten("churn-classifier", version, settings)
    out = tmp_path / "bundle"
    assert main(["export", "churn-classifier", "--version", version, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "model.onnx",
        "contract.json",
        "contract.schema.json",
        "twin.json",
        "predict.py",
        "README.md",
    }
    X = holdout(churn_spec(max_iter=30)).head(200)
    rows = tmp_path / "rows.json"
    rows.write_text(X.astype(object).where(X.notna(), None).to_json(orient="records"))
    done = subprocess.run(
        [sys.executable, str(out / "predict.py"), "--json", str(rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    got = [json.loads(line)["prediction"] for line in done.stdout.splitlines()]
    source = trust.fetch_verified(
        registry.get_version("churn-classifier", version), tmp_path / "s", settings
    )
    expected = models.load_pyfunc(source).predict(X)
    assert got == [int(v) for v in expected]


def test_export_refuses_a_version_without_a_twin(shipped, tmp_path, capsys):
    _, version, _ = shipped
    code = main(["export", "churn-classifier", "--version", version, "--out", str(tmp_path / "b")])
    assert code == ExitCode.USAGE
    assert "runway onnx convert churn-classifier" in capsys.readouterr().err


def test_train_register_lighten_makes_the_twin_in_one_command(tmp_path, churn_csv, capsys):
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(churn_spec("LogisticRegression", max_iter=300)))
    assert main(["train", str(spec), "--lighten"]) == ExitCode.USAGE  # needs --register
    assert main(["train", str(spec), "--register", "--lighten"]) == 0
    out = capsys.readouterr().out
    assert "registered churn-classifier version 1" in out
    assert "the ONNX version of v1" in out
    assert registry.get_version("churn-classifier", "2").tags[onnx_models.SOURCE_TAG] == "1"


def write_policy(root: Path, key: str = "onnx", **onnx_section: bool) -> None:
    """A permissive churn-classifier policy whose ``onnx`` section (or ``key``) is ``onnx_section``."""
    (root / "registry").mkdir(exist_ok=True)
    policy = {
        "model": "churn-classifier",
        "staging": {"max_latency_ms": 60_000},
        "production": {"reviewers": ["ci"], "four_eyes": False},
        key: onnx_section,
    }
    (root / "registry" / "churn-classifier.yaml").write_text(yaml.safe_dump(policy))


def test_a_policy_with_lighten_on_register_makes_the_twin_of_each_new_version(
    tmp_path, churn_csv, capsys
):
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(churn_spec("LogisticRegression", max_iter=300)))
    write_policy(tmp_path, on_register=True)
    assert main(["train", str(spec), "--register"]) == 0
    out = capsys.readouterr().out
    assert "onnx.on_register" in out and "the ONNX version of v1" in out
    assert registry.get_version("churn-classifier", "2").tags[onnx_models.SOURCE_TAG] == "1"

    write_policy(tmp_path, on_register=False)  # the default: nothing more than asked
    assert main(["train", str(spec), "--register"]) == 0
    assert [v.version for v in registry.versions("churn-classifier")] == ["1", "2", "3"]


def test_a_version_without_a_twin_warns_unless_the_policy_requires_one(tmp_path, churn_csv, capsys):
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(churn_spec("KNeighborsClassifier")))
    write_policy(tmp_path, on_register=True)
    assert main(["train", str(spec), "--register"]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: churn-classifier v1 has no ONNX version" in err and "KNeighborsClassifier" in err
    )

    write_policy(tmp_path, on_register=True, required=True)
    assert main(["train", str(spec), "--register"]) == ExitCode.REGISTRY
    err = capsys.readouterr().err
    assert "churn-classifier v2 stays registered" in err and "onnx.required" in err
    assert [v.version for v in registry.versions("churn-classifier")] == ["1", "2"]


def test_retrain_makes_the_twin_when_the_policy_asks(tmp_path, churn_csv):
    from runway.jobs.retrain import retrain

    settings, version, _ = ship(tmp_path, churn_spec("LogisticRegression", max_iter=300))
    write_policy(tmp_path, on_register=True)
    assert version == "1"
    result = retrain("churn-classifier", reason="test", settings=settings)
    assert result.staged and result.twin is not None and result.twin.twin is not None
    made = result.twin.twin
    assert made.source.version == result.version == "2" and made.twin.version == "3"
    assert registry.get_version("churn-classifier", "3").stage == "None"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["lighten", "churn-classifier", "7"], "`runway onnx convert`"),
        (["export", "churn-classifier", "--version", "7", "--out", "b"], "`runway onnx export`"),
    ],
)
def test_the_old_command_names_still_run_with_a_note(old, new, capsys):
    code = main(old)
    err = capsys.readouterr().err
    assert f"`runway {old[0]}` is now {new}" in err
    assert code == ExitCode.REGISTRY and "churn-classifier" in err  # it ran: no such version


# --- every column kind (issue 25, 12) ---------------------------------------------------


def _delivery(tmp_path: Path, **changes: Any) -> tuple[Any, str, Path]:
    """The delivery table (every column kind, gaps) trained as v1 of ``delivery``."""
    data = tmp_path / "delivery.csv"
    delivery_frame(400, seed=2, boolean_gaps=True).to_csv(data, index=False)
    settings, version, _ = ship(tmp_path, delivery_spec(data, **changes), production=False)
    return settings, version, data


def test_every_column_kind_gets_a_twin_and_an_edge_bundle_that_agree(tmp_path, capsys):
    settings, version, data = _delivery(tmp_path)
    result = lighten("delivery", version, settings)
    assert result.report.ok, result.report.render()
    out = tmp_path / "bundle"
    assert main(["onnx", "export", "delivery", "--version", version, "--out", str(out)]) == 0
    rows = pd.read_csv(data).drop(columns=["minutes", "late"]).head(60)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    source = trust.fetch_verified(
        registry.get_version("delivery", version), tmp_path / "s", settings
    )
    expected = models.load_sklearn(source).predict(rows)
    twin_local = trust.fetch_verified(result.twin, tmp_path / "t", settings)
    twin = load_for_scoring(twin_local)
    np.testing.assert_allclose(twin.predict(rows), expected, rtol=1e-9)
    in_process = models.load_pyfunc(twin_local).predict(rows)  # int64 items, text timestamps
    np.testing.assert_allclose(in_process, expected, rtol=1e-9)
    assert models.signature_inputs(twin_local) == models.signature_inputs(source)
    # #30-4: batch scores the twin as REST does (it crashed: "no sklearn flavor")
    scored = tmp_path / "scored.csv"
    command = ["score", "delivery", "--version", result.twin.version, "--input"]
    assert main([*command, str(tmp_path / "rows.csv"), "--output", str(scored)]) == 0
    np.testing.assert_allclose(pd.read_csv(scored)["prediction"], expected, rtol=1e-9)
    capsys.readouterr()
    sys.path.insert(0, str(out))
    try:
        import predict as edge  # the bundle's own predict.py, standalone

        assert edge.main(["--csv", str(tmp_path / "rows.csv"), "--out-of-range", "pass"]) == 0
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("predict", None)
    got = [json.loads(line)["prediction"] for line in capsys.readouterr().out.splitlines()]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_a_column_with_no_twin_is_refused_by_column_kind_and_step_with_a_report(tmp_path):
    many = {"categorical": {"many_levels": {"threshold": 20, "encode": "target"}}}
    settings, version, _ = _delivery(tmp_path, preprocessing=many)
    with pytest.raises(LightenRefused) as refused:
        lighten("delivery", version, settings)
    first = str(refused.value).splitlines()[0]
    assert "column(s) 'courier id' (categorical, block 'many')" in first
    assert "step 'encode': TargetEncoder has no ONNX conversion" in first
    source = registry.get_version("delivery", version)
    assert f"report: onnx/refused.txt of run {source.run_id}" in str(refused.value)
    report = tracking.load_run_text(source.run_id, "onnx/refused.txt")
    assert "'courier id'" in report and "boolean, datetime" in report
    assert [v.version for v in registry.versions("delivery")] == [version]
