"""Model folders judged from their files alone, against runway's allow-list, running nothing."""

from __future__ import annotations

import json
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from runway.core.governance.trust import (
    ALLOWLIST_FILE,
    allowed_types,
    inspect_model_dir,
    types_in_skops,
)


def _save(path: Path, pipeline: Pipeline, **kw) -> Path:
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    pipeline.fit(X, y)
    fmt = kw.pop("serialization_format", "skops")
    if fmt == "skops":
        kw["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    mlflow.sklearn.save_model(pipeline, str(path), serialization_format=fmt, **kw)
    return path


def _legit() -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])


def _edit_mlmodel(path: Path, edit) -> None:
    doc = yaml.safe_load((path / "MLmodel").read_text())
    edit(doc)
    (path / "MLmodel").write_text(yaml.safe_dump(doc))


def test_a_model_runway_would_log_is_trusted(tmp_path):
    verdict = inspect_model_dir(_save(tmp_path / "m", _legit()))
    assert verdict.trusted and not verdict.runs_code


def test_types_mlmodel_adds_to_its_own_trust_list_are_refused(tmp_path):
    path = _save(tmp_path / "m", _legit())
    _edit_mlmodel(
        path,
        lambda m: m["flavors"]["sklearn"].__setitem__(
            "skops_trusted_types", ["posix.system", "builtins.exec"]
        ),
    )
    (problem,) = inspect_model_dir(path).problems
    assert problem == "MLmodel trusts types off runway's allow-list: builtins.exec, posix.system"


def test_a_function_skops_trusts_by_default_is_still_refused(tmp_path):
    """skops trusts numpy ufuncs by default; runway's list holds only what runway builds."""
    pipeline = Pipeline([("squash", FunctionTransformer(np.tanh)), *_legit().steps])
    problems = inspect_model_dir(_save(tmp_path / "m", pipeline)).problems
    assert problems == ("model.skops holds types off runway's allow-list: numpy.tanh",)


@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle"])
def test_pickle_is_refused_unless_allowed(tmp_path, fmt):
    path = _save(tmp_path / "m", _legit(), serialization_format=fmt)
    refused = inspect_model_dir(path)
    assert any(
        f"serialized with {fmt!r}, which runs code while loading" in p for p in refused.problems
    )
    allowed = inspect_model_dir(path, allow_pickle=True)
    assert allowed.trusted and allowed.runs_code


def test_extra_files_a_code_dir_and_a_broken_skops_file_are_refused(tmp_path):
    path = _save(tmp_path / "m", _legit())
    (path / "helper.py").write_text("print('hi')\n")
    _edit_mlmodel(path, lambda m: m["flavors"]["python_function"].__setitem__("code", "code"))
    (path / "model.skops").write_bytes(b"not a zip")
    problems = inspect_model_dir(path).problems
    assert problems[0] == "a code directory code puts the model's own modules on sys.path"
    assert "unexpected files helper.py" in problems
    assert any(p.startswith("model.skops: not a skops file") for p in problems)


def test_a_hostile_schema_is_read_without_running_anything(tmp_path, monkeypatch):
    """A skops file naming a function of an importable module: never imported while judged."""
    module = tmp_path / "lib" / "runway_unit_evil.py"
    module.parent.mkdir()
    marker = tmp_path / "imported"
    module.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef mark(X):\n    return X\n")
    monkeypatch.syspath_prepend(str(module.parent))
    path = _save(tmp_path / "m", _legit())
    skops_file = path / "model.skops"
    with zipfile.ZipFile(skops_file) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    schema = json.loads(entries["schema.json"])
    schema["content"]["content"]["spy"] = {
        "__class__": "mark",
        "__module__": "runway_unit_evil",
        "__loader__": "FunctionNode",
        "content": {"module_path": "runway_unit_evil", "function": "mark"},
    }
    schema["content"]["content"]["deep"] = "DEEP"
    opener = (
        '{"__loader__": "ListNode", "__module__": "builtins", "__class__": "list", "content": ['
    )
    deep = opener * 50_000 + '"1"' + "]}" * 50_000  # far past Python's recursion limit
    entries["schema.json"] = json.dumps(schema).replace('"DEEP"', deep).encode()
    with zipfile.ZipFile(skops_file, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)

    problems = inspect_model_dir(path).problems
    assert problems == ("model.skops: schema.json unreadable: RecursionError",)
    del schema["content"]["content"]["deep"]
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(skops_file, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    assert "runway_unit_evil.mark" in types_in_skops(skops_file)
    assert inspect_model_dir(path).problems == (
        "model.skops holds types off runway's allow-list: runway_unit_evil.mark",
    )
    assert not marker.exists() and "runway_unit_evil" not in sys.modules


def test_the_allow_list_was_generated_with_the_installed_libraries():
    """An upgrade of numpy, scikit-learn or skops can change the types a model holds:
    regenerate the list (`make allowlist`) and review the difference."""
    header = next(
        line for line in ALLOWLIST_FILE.read_text().splitlines() if "generated with:" in line
    )
    pins = dict(p.split("==") for p in header.split("generated with:")[1].split())
    assert pins == {p: version(p) for p in pins}, "run `make allowlist` and review the change"
    assert {"sklearn.pipeline.Pipeline", "sklearn.tree._tree.Tree"} <= allowed_types()
    assert not {t for t in allowed_types() if t.startswith(("builtins.e", "posix", "os."))}


def test_the_scoring_server_names_runway_spells_out_are_mlflows():
    from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
    from mlflow.pyfunc import scoring_server

    from runway.store.served import SCORING_APP, SCORING_MODEL_ENV, SCORING_TIMEOUT_ENV

    assert SCORING_MODEL_ENV == scoring_server._SERVER_MODEL_PATH
    assert MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.name == SCORING_TIMEOUT_ENV
    module, app = SCORING_APP.split(":")
    assert (Path(scoring_server.__file__).parent / f"{module.rsplit('.', 1)[1]}.py").is_file()
    assert app == "app"


@pytest.mark.parametrize(
    ("flavor", "key", "value", "expected"),
    [
        ("python_function", "data", "/tmp/elsewhere/evil.pkl", "keys runway never writes: data"),
        ("python_function", "data", "../../evil.pkl", "keys runway never writes: data"),
        ("python_function", "model_config", {"a": 1}, "never writes: model_config"),
        ("sklearn", "loader", "x", "sklearn has keys runway never writes: loader"),
        ("python_function", "model_path", "../outside.skops", "the model file is not"),
        ("python_function", "model_path", "/etc/passwd", "the model file is not"),
        ("python_function", "env", {"conda": "/etc/conda.yaml"}, "python_function.env is"),
    ],
)
def test_every_key_of_every_flavor_is_vouched_for(tmp_path, flavor, key, value, expected):
    """#30-1: a key MLflow's loader follows (``data`` wins over the folder) is refused."""
    path = _save(tmp_path / "m", _legit())
    _edit_mlmodel(path, lambda m: m["flavors"][flavor].__setitem__(key, value))
    verdict = inspect_model_dir(path)
    assert not verdict.trusted
    assert any(expected in p for p in verdict.problems), verdict.problems


def test_a_twin_with_an_extra_flavor_key_is_refused(tmp_path):
    from runway.core.governance.trust import TWIN_PYFUNC_KEYS, key_problems

    twin = {k: None for k in TWIN_PYFUNC_KEYS} | {"model_config": {"x": 1}}
    assert key_problems("python_function", twin, TWIN_PYFUNC_KEYS) == [
        "python_function has keys runway never writes: model_config"
    ]


def test_a_symlink_in_the_folder_and_a_flavor_that_is_not_a_mapping_are_refused(tmp_path):
    path = _save(tmp_path / "m", _legit())
    outside = tmp_path / "outside.skops"
    (path / "model.skops").rename(outside)
    (path / "model.skops").symlink_to(outside)
    assert inspect_model_dir(path).problems == ("links the loader would follow: model.skops",)
    other = _save(tmp_path / "n", _legit())
    _edit_mlmodel(other, lambda m: m["flavors"].__setitem__("sklearn", ["x"]))
    assert inspect_model_dir(other).problems == ("a flavor in MLmodel is not a mapping",)
