"""What `runway serve`'s cold start reads and builds ahead (#31): the flavor of Production's
version, read from a SQLite store without MLflow, and MLflow's requirement map."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runway.store import served


def _store(tmp_path: Path, mlmodel: str | None, alias: str = "production") -> str:
    """A SQLite store's tables as MLflow has them (the columns read), v1 under ``alias``."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    if mlmodel is not None:
        (artifacts / "MLmodel").write_text(mlmodel)
    db = sqlite3.connect(tmp_path / "m.db")
    db.execute("CREATE TABLE model_versions (name, version, storage_location)")
    db.execute("CREATE TABLE registered_model_aliases (alias, version, name)")
    db.execute("INSERT INTO model_versions VALUES ('m', 1, ?)", (artifacts.as_uri(),))
    db.execute("INSERT INTO registered_model_aliases VALUES (?, 1, 'm')", (alias,))
    db.commit()
    db.close()
    return f"sqlite:///{tmp_path / 'm.db'}"


MLMODEL = """flavors:
  python_function:
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
  sklearn:
    serialization_format: skops
"""


def test_the_loader_hint_is_read_from_productions_mlmodel_without_mlflow(tmp_path):
    assert served.loader_hint(_store(tmp_path, MLMODEL), "m") == "mlflow.sklearn"
    assert served.loader_hint(f"sqlite:///{tmp_path / 'm.db'}", "other") is None


@pytest.mark.parametrize(
    ("mlmodel", "alias"), [(None, "production"), ("flavors: {}\n", "production"), (MLMODEL, "x")]
)
def test_no_loader_hint_without_productions_mlmodel_or_a_loader(tmp_path, mlmodel, alias):
    assert served.loader_hint(_store(tmp_path, mlmodel, alias), "m") is None
    assert served.loader_hint(f"sqlite:///{tmp_path / 'missing.db'}", "m") is None
    assert served.loader_hint("http://127.0.0.1:1", "m") is None


def test_the_scoring_server_import_builds_mlflows_requirement_map_ahead(monkeypatch):
    """MLflow checks a model's requirements as it loads it; the first check maps every installed
    distribution (~1 s). The zygote builds that map while the version is fetched."""
    from mlflow.utils import requirements_utils

    from runway.store.models import import_scoring_server

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    import_scoring_server()
    assert requirements_utils._MODULES_TO_PACKAGES, "built at load time, after the fetch"
    assert "sklearn" in requirements_utils._MODULES_TO_PACKAGES
