"""Issue #30 item 2: a twin's ONNX hash comes from the sealed promotion record, not a tag.

Anyone who may register versions may rewrite the tag ``runway.onnx.sha256``;
only runway's promotion writes the sealed audit record. A promoted twin whose
``model.onnx`` was swapped, with the tag (and twin.json) rewritten to the new
file's hash, must be refused where it would load: serving and batch scoring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runway.cli import main
from runway.core.onnx.model import sha256_file
from runway.errors import ExitCode, UntrustedModel
from runway.jobs.onnx import lighten
from runway.jobs.promote import promote
from runway.serving import prepare
from runway.store import audit, onnx_models, registry
from runway.store.tracking import client
from tests.helpers import ship
from tests.integration.test_lighten import churn_spec, holdout

MODEL = "churn-classifier"


def _promoted_twin(root: Path) -> tuple[Any, str]:
    """churn v1 (not promoted) and its twin v2 promoted to Production through runway."""
    settings, version, _ = ship(root, churn_spec(max_iter=30), production=False)
    twin = lighten(MODEL, version, settings).twin.version
    promote(MODEL, twin, "Staging", settings=settings)
    promote(MODEL, twin, "Production", reviewer="ci", settings=settings)
    return settings, twin


def _swap_graph(twin: str) -> str:
    """Change the stored model.onnx and make the tag and twin.json agree with it; its hash."""
    mv = registry.get_version(MODEL, twin)
    logged = client().get_logged_model(mv.source.removeprefix("models:/"))
    stored = Path(logged.artifact_location.removeprefix("file://")) / "data" / "twin" / "model.onnx"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1  # a subtler change than flipping labels: the gates would never see it
    stored.write_bytes(bytes(data))
    new = sha256_file(stored)
    record = stored.with_name("twin.json")
    doc = json.loads(record.read_text())
    doc["onnx_sha256"] = new
    record.write_text(json.dumps(doc))
    client().set_model_version_tag(MODEL, twin, onnx_models.SHA_TAG, new)  # anyone can
    return new


def test_the_promotion_seals_the_twin_hash_its_gates_checked(tmp_path, churn_csv):
    settings, twin = _promoted_twin(tmp_path)
    tagged = registry.get_version(MODEL, twin).tags[onnx_models.SHA_TAG]
    applied = [e for e in audit.history(MODEL, settings) if e.outcome == "applied"]
    assert [e.onnx_sha256 for e in applied if e.version == twin] == [tagged, tagged]
    assert audit.sealed_onnx_hash(MODEL, twin, "Production", settings) == tagged
    assert audit.verify(MODEL, settings).ok  # the sealed field keeps the chain intact


def test_a_swapped_twin_with_a_rewritten_tag_is_refused_at_serve_and_score(
    tmp_path, churn_csv, capsys
):
    settings, twin = _promoted_twin(tmp_path)
    new = _swap_graph(twin)
    with pytest.raises(UntrustedModel, match="recorded when the twin was checked"):
        prepare._run(settings, MODEL, "Production", None, tmp_path / "serve")
    rows = holdout(churn_spec(max_iter=30)).head(5)
    rows.to_csv(tmp_path / "in.csv", index=False)
    capsys.readouterr()
    code = main(
        ["score", MODEL, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")]
    )
    err = capsys.readouterr().err
    assert code == ExitCode.TRUST, err
    assert f"SHA-256 {new[:16]}" in err and not (tmp_path / "o.csv").exists()


def test_a_promoted_twin_with_no_sealed_hash_is_not_served(tmp_path, churn_csv):
    """A twin put in Staging outside runway (no record) is not trusted on its tag."""
    settings, version, _ = ship(tmp_path, churn_spec(max_iter=30), production=False)
    twin = lighten(MODEL, version, settings).twin.version
    client().transition_model_version_stage(MODEL, twin, "Staging")
    with pytest.raises(UntrustedModel, match="no runway promotion to Staging sealed"):
        prepare._run(settings, MODEL, "Staging", None, tmp_path / "serve")
