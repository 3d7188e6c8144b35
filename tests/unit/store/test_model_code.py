"""Every model runway logs carries its transformers; the trust check accepts exactly those files."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import mlflow.sklearn
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from runway.core.governance.trust import (
    CODE_DIR,
    MODEL_CODE_FILES,
    PACKAGE_PARENT,
    inspect_model_dir,
)
from runway.core.training.transformers import BooleanEncoder, CategoryText, DatetimeParts
from runway.store.model_code import model_code_paths

THIRD_PARTY = {"numpy", "pandas", "sklearn"}


def _imports(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_shipped_files_import_only_numpy_pandas_sklearn_and_each_other():
    shipped = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in MODEL_CODE_FILES
    }
    assert "runway.core.training.transformers" in shipped
    for name in MODEL_CODE_FILES:
        for module in _imports((PACKAGE_PARENT / name).read_text()):
            top = module.split(".")[0]
            if top == "runway":
                assert module in shipped, f"{name} imports {module}, which no model carries"
            else:
                assert top in THIRD_PARTY or top in sys.stdlib_module_names, f"{name}: {module}"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "c": ["a", "b", None, "b"] * 5,
            "f": [True, False, None, True] * 5,
            "t": ["2024-05-01T10:00:00", "2024-06-02", None, "2024-07-03 13:45"] * 5,
        }
    )


def _pipeline() -> Pipeline:
    columns = make_column_transformer(
        (
            make_pipeline(CategoryText(), SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
            ["c"],
        ),
        (make_pipeline(BooleanEncoder(), SimpleImputer()), ["f"]),
        (make_pipeline(DatetimeParts(), SimpleImputer()), ["t"]),
    )
    return make_pipeline(columns, LogisticRegression()).fit(_frame(), [0, 1, 0, 1] * 5)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model saved the way runway logs one: skops, and runway's code_paths."""
    path = tmp_path_factory.mktemp("model") / "m"
    pipeline = _pipeline()
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    with model_code_paths() as code_paths:
        mlflow.sklearn.save_model(
            pipeline,
            str(path),
            serialization_format="skops",
            skops_trusted_types=trusted,
            code_paths=code_paths,
        )
    return path


def test_a_model_with_runways_shipped_code_is_trusted(shipped):
    files = sorted(
        p.relative_to(shipped / CODE_DIR).as_posix() for p in (shipped / CODE_DIR).rglob("*.py")
    )
    assert files == sorted(MODEL_CODE_FILES)
    assert inspect_model_dir(shipped).problems == ()


def test_the_shipped_code_loads_the_model_without_the_installed_runway(shipped, tmp_path):
    """The code directory alone provides runway's transformers: predictions as runway's."""
    probe = f"""
import sys
sys.path[:] = [p for p in sys.path if not p or not __import__("os").path.isdir(p + "/runway")]
sys.path.insert(0, {str(shipped / CODE_DIR)!r})
import pandas as pd, skops.io, yaml
trusted = yaml.safe_load(open({str(shipped / "MLmodel")!r}))["flavors"]["sklearn"]["skops_trusted_types"]
model = skops.io.load({str(shipped / "model.skops")!r}, trusted=trusted)
import runway
print(runway.__file__)
print(list(model.predict_proba(pd.read_json({str(tmp_path / "rows.json")!r}, dtype=False))[:, 1]))
"""
    rows = _frame()
    rows.to_json(tmp_path / "rows.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-B", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    where, answers = out.stdout.splitlines()
    assert where.startswith(str(shipped / CODE_DIR))
    expected = list(
        _pipeline().predict_proba(pd.read_json(tmp_path / "rows.json", dtype=False))[:, 1]
    )
    assert answers == repr(expected)


def _copy(shipped: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(shipped, dst))


def _edit_code_key(path: Path, value: str) -> None:
    doc = yaml.safe_load((path / "MLmodel").read_text())
    for flavor in ("python_function", "sklearn"):
        doc["flavors"][flavor]["code"] = value
    (path / "MLmodel").write_text(yaml.safe_dump(doc))


HEAD = "a code directory code puts the model's own modules on sys.path"


def test_an_extra_file_in_the_code_directory_is_refused(shipped, tmp_path):
    path = _copy(shipped, tmp_path / "m")
    (path / CODE_DIR / "skops").mkdir()
    (path / CODE_DIR / "skops" / "__init__.py").write_text("raise SystemExit\n")
    verdict = inspect_model_dir(path)
    assert verdict.problems == (
        HEAD,
        "files that are not runway's in code/: code/skops, code/skops/__init__.py",
    )
    assert inspect_model_dir(path, allow_pickle=True).runs_code


def test_a_changed_or_missing_shipped_file_is_refused(shipped, tmp_path):
    path = _copy(shipped, tmp_path / "m")
    transformers = path / CODE_DIR / "runway/core/training/transformers.py"
    transformers.write_text(transformers.read_text() + "\nprint('hi')\n")
    (path / CODE_DIR / "runway/core/columns/kinds.py").unlink()
    assert inspect_model_dir(path).problems == (
        HEAD,
        "runway's shipped code lacks code/runway/core/columns/kinds.py",
        "code/runway/core/training/transformers.py differ from the installed runway's copy "
        "(SHA-256): changed, or logged by another runway release",
    )


def test_a_symlink_in_the_code_directory_is_refused(shipped, tmp_path):
    path = _copy(shipped, tmp_path / "m")
    kinds = path / CODE_DIR / "runway/core/columns/kinds.py"
    kinds.unlink()
    kinds.symlink_to(PACKAGE_PARENT / "runway/core/columns/kinds.py")
    problems = inspect_model_dir(path).problems
    assert problems == ("links the loader would follow: code/runway/core/columns/kinds.py",)


def test_a_code_key_other_than_mlflows_code_is_refused(shipped, tmp_path):
    path = _copy(shipped, tmp_path / "m")
    (path / CODE_DIR).rename(path / "lib")
    _edit_code_key(path, "lib")
    assert inspect_model_dir(path).problems[:2] == (
        "a code directory lib puts the model's own modules on sys.path",
        "only runway's own code/ is accepted as a code directory",
    )
    _edit_code_key(path, str(path / "lib"))  # an absolute path: MLflow would put it on sys.path
    assert (
        "only runway's own code/ is accepted as a code directory"
        in inspect_model_dir(path).problems
    )


def test_a_code_directory_without_a_code_key_is_an_unexpected_file(shipped, tmp_path):
    path = _copy(shipped, tmp_path / "m")
    doc = yaml.safe_load((path / "MLmodel").read_text())
    for flavor in ("python_function", "sklearn"):
        del doc["flavors"][flavor]["code"]
    (path / "MLmodel").write_text(yaml.safe_dump(doc))
    (problem,) = inspect_model_dir(path).problems
    assert problem.startswith("unexpected files code/runway/__init__.py")


def test_bytecode_plain_mlflow_left_in_the_store_is_dropped_from_runways_copy(shipped, tmp_path):
    """MLflow loading a version in place writes __pycache__ into its code/; runway's own
    download drops it (Python then compiles the checked files) instead of refusing."""
    from runway.store.trust import drop_bytecode

    path = _copy(shipped, tmp_path / "m")
    cache = path / CODE_DIR / "runway/core/training/__pycache__"
    cache.mkdir()
    (cache / "transformers.cpython-311.pyc").write_bytes(b"\x00 not what was checked")
    assert inspect_model_dir(path).problems[0] == HEAD  # as found: refused
    drop_bytecode(path)
    assert not cache.exists() and (cache.parent / "transformers.py").exists()
    assert inspect_model_dir(path).trusted
