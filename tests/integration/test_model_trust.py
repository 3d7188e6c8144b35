"""Tampered model versions are refused by promote, serve and score, and nothing in them runs.

One store per module: a churn model trained and promoted by runway (v1), then,
built in a separate process (so this one never imports the attacker's code):

* v2: logged properly by its own run, but its MLmodel trusts ``posix.system``,
  ``builtins.exec`` and ``builtins.eval``, and its skops file (rewritten in the
  artifact store afterwards) calls them while loading;
* v3: a pipeline whose first step is a ``FunctionTransformer`` of an arbitrary
  function, shipped with the model as a ``code`` directory and trusted in MLmodel;
* v4: a copy of v1 at a ``file://`` URI, registered with v1's run id.

Then v5-v7, each logged by runway itself (so with runway's own ``code``
directory, which the trust check accepts) and tampered with in the artifact
store afterwards: v5 adds one file to ``code/`` (a ``transformers/`` package
that shadows ``transformers.py``), v6 changes ``transformers.py``, v7 points
MLmodel's ``code`` key at another folder holding such a copy.

Each payload writes a marker file when it runs. A control loads v2 and v3 the
way MLflow does (in a subprocess) and sees the markers appear: the versions are
armed. Then every runway command that would load them is refused with exit 12,
and no marker appears.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import REPO, REPO_PYTHONPATH
from tests.helpers import forge_production, free_port, ship, stop_process_group

pytestmark = pytest.mark.slow

MODEL = "churn-trust"
FEATURES = {
    "age": "numeric",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "contract": "categorical",
    "payment_method": "categorical",
    "region": "categorical",
}

CRAFT = r"""
import json, shutil, sys, warnings, zipfile
from pathlib import Path
warnings.filterwarnings("ignore")
import mlflow, skops.io, yaml
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

root, model = Path(sys.argv[1]), sys.argv[2]
markers = root / "markers"
client = MlflowClient()
v1 = client.get_model_version(model, "1")
legit_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(root / "v1")))
mlmodel = yaml.safe_load((legit_dir / "MLmodel").read_text())
trusted = mlmodel["flavors"]["sklearn"]["skops_trusted_types"]
pipe = skops.io.load(legit_dir / "model.skops", trusted=trusted)
example = json.loads((legit_dir / "input_example.json").read_text())
import pandas as pd
X = pd.DataFrame(example["data"], columns=example["columns"])
experiment = client.get_run(v1.run_id).info.experiment_id

def node(module, func, arg):  # skops calls module.func(arg) while loading this
    text = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(arg), "is_json": True}
    return {"__class__": func, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [text]}}

def new_run(fitted, extra_trusted, **kw):
    with mlflow.start_run(experiment_id=experiment) as run:
        for path in ("spec/spec.yaml", "contract/contract.json"):
            local = client.download_artifacts(v1.run_id, path, str(root / "dl" / run.info.run_id))
            mlflow.log_artifact(local, path.split("/")[0])
        info = mlflow.sklearn.log_model(
            fitted, name="model", serialization_format="skops", input_example=X,
            skops_trusted_types=sorted(set(skops.io.get_untrusted_types(data=skops.io.dumps(fitted))) | set(extra_trusted)),
            pip_requirements=[], **kw)
    return info

# v2: MLmodel trusts system/exec/eval; the skops file is then rewritten in place to call them
dangerous = ["posix.system", "builtins.exec", "builtins.eval"]
info = new_run(pipe, dangerous)
skops_path = Path(mlflow.get_logged_model(info.model_id).artifact_location.removeprefix("file://")) / "model.skops"
with zipfile.ZipFile(skops_path) as zf:
    entries = {n: zf.read(n) for n in zf.namelist()}
schema = json.loads(entries["schema.json"])
attrs = schema["content"]
for key, payload in {
    "_s": node("posix", "system", f"echo system > {markers / 'system'}"),
    "_x": node("builtins", "exec", f"open({str(markers / 'exec')!r}, 'w').write('exec')"),
}.items():
    attrs["content"][key] = payload
    attrs["key_types"]["content"].append({"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"})
entries["schema.json"] = json.dumps(schema).encode()
with zipfile.ZipFile(skops_path, "w") as zf:
    for n, b in entries.items():
        zf.writestr(n, b)
print("v2", mlflow.register_model(info.model_uri, model).version)

# v3: FunctionTransformer(runway_evil.mark) in front of the real pipeline, its module shipped as code
evil_py = root / "code" / "runway_evil.py"
evil_py.parent.mkdir()
evil_py.write_text(
    "from pathlib import Path\n"
    f"Path({str(markers / 'import')!r}).write_text('imported')\n"
    "def mark(X):\n"
    f"    Path({str(markers / 'call')!r}).write_text('called')\n"
    "    return X\n")
sys.path.insert(0, str(evil_py.parent))
import runway_evil
evil = Pipeline([("spy", FunctionTransformer(runway_evil.mark)), *pipe.steps])
info = new_run(evil, ["runway_evil.mark"], code_paths=[str(evil_py)])
print("v3", mlflow.register_model(info.model_uri, model).version)

# v4: a copy of v1 at a file:// URI, registered with v1's run id (and MLmodel trusting exec)
copy = root / "copy"
shutil.copytree(legit_dir, copy)
mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = trusted + dangerous
(copy / "MLmodel").write_text(yaml.safe_dump(mlmodel))
print("v4", client.create_model_version(model, copy.as_uri(), run_id=v1.run_id).version)
for marker in markers.iterdir():
    marker.unlink()  # crafting imported runway_evil; only what follows counts
"""

CRAFT_CODE = r"""
import json, shutil, sys, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
import mlflow, pandas as pd, skops.io, yaml
from mlflow.tracking import MlflowClient
from runway.store.models import log_sklearn_model

root, model = Path(sys.argv[1]), sys.argv[2]
markers = root / "markers"
client = MlflowClient()
v1 = client.get_model_version(model, "1")
legit = Path(mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(root / "v1-code")))
mlmodel = yaml.safe_load((legit / "MLmodel").read_text())
pipe = skops.io.load(legit / "model.skops", trusted=mlmodel["flavors"]["sklearn"]["skops_trusted_types"])
X = pd.read_json(legit / "input_example.json", orient="split")
experiment = client.get_run(v1.run_id).info.experiment_id
from runway.store.models import signature_inputs  # the declared types (MLflow's say 'any')
required = signature_inputs(legit, required_only=True)
inputs = [(n, t, n in required) for n, t in signature_inputs(legit).items()]  # v1's, so v1's rows score
TRANSFORMERS = "runway/core/training/transformers.py"

def mark(name):
    return f"from pathlib import Path as _P; _P({str(markers / name)!r}).write_text('ran')\n"

def logged(case):
    with mlflow.start_run(experiment_id=experiment) as run:
        for path in ("spec/spec.yaml", "contract/contract.json"):
            local = client.download_artifacts(v1.run_id, path, str(root / "dl" / run.info.run_id))
            mlflow.log_artifact(local, path.split("/")[0])
        uri = log_sklearn_model(pipe, X, inputs=inputs)
    folder = Path(mlflow.get_logged_model(uri.removeprefix("models:/")).artifact_location.removeprefix("file://"))
    assert (folder / "code" / TRANSFORMERS).is_file(), "runway logs its transformers as code"
    return uri, folder

uri, folder = logged("extra")  # v5: one file more, a package that shadows transformers.py
shadow = folder / "code" / TRANSFORMERS.removesuffix(".py") / "__init__.py"
shadow.parent.mkdir()
shadow.write_text(mark("extra") + "exec(open(__file__.rsplit('/', 2)[0] + '/transformers.py').read())\n")
print("v5", mlflow.register_model(uri, model).version)

uri, folder = logged("modified")  # v6: transformers.py changed
changed = folder / "code" / TRANSFORMERS
changed.write_text(changed.read_text() + mark("modified"))  # after its __future__ import
print("v6", mlflow.register_model(uri, model).version)

uri, folder = logged("elsewhere")  # v7: the code key points at another folder
elsewhere = root / "elsewhere"
shutil.copytree(folder / "code", elsewhere)
(elsewhere / TRANSFORMERS).write_text((elsewhere / TRANSFORMERS).read_text() + mark("elsewhere"))
doc = yaml.safe_load((folder / "MLmodel").read_text())
for flavor in ("python_function", "sklearn"):
    doc["flavors"][flavor]["code"] = str(elsewhere)
(folder / "MLmodel").write_text(yaml.safe_dump(doc))
print("v7", mlflow.register_model(uri, model).version)
"""

LOAD_LIKE_MLFLOW = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_csv(sys.argv[2])
model.predict(rows.astype({c: "float64" for c in rows.select_dtypes("number").columns}))
"""


@dataclass
class Store:
    root: Path
    env: dict[str, str]
    rows: Path  # a CSV of feature rows

    @property
    def markers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "markers").iterdir())

    def runway(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "runway", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("trust")
    data = root / "churn.csv"
    frame = pd.read_csv(REPO / "data" / "churn.csv")
    frame.to_csv(data, index=False)
    spec = {
        "experiment": "trust-tests",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(data), "target": "churned", "features": FEATURES},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 5},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    ship(root, spec, reviewer="alice")
    (root / "markers").mkdir()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": "off",
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    crafted = subprocess.run(
        [sys.executable, "-c", CRAFT, str(root), MODEL],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crafted.returncode == 0, crafted.stderr[-3000:]
    assert crafted.stdout.split() == ["v2", "2", "v3", "3", "v4", "4"], crafted.stdout
    crafted = subprocess.run(
        [sys.executable, "-c", CRAFT_CODE, str(root), MODEL],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crafted.returncode == 0, crafted.stderr[-3000:]
    assert crafted.stdout.split() == ["v5", "5", "v6", "6", "v7", "7"], crafted.stdout
    assert sorted(p.name for p in (root / "markers").iterdir()) == []
    rows = root / "rows.csv"
    frame.drop(columns=["churned", "customer_id"]).head(20).to_csv(rows, index=False)
    return Store(root, env, rows)


def test_the_tampered_versions_are_armed_when_loaded_the_way_mlflow_does(store):
    """The control: without runway's checks, loading and predicting runs the payloads."""
    for version, expected in (("2", ["exec", "system"]), ("3", ["call", "import"])):
        local = store.root / f"control-v{version}"
        uri = f"sqlite:///{store.root / 'mlflow.db'}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        shutil.copytree(_artifact_dir(client, version), local)
        loaded = subprocess.run(
            [sys.executable, "-c", LOAD_LIKE_MLFLOW, str(local), str(store.rows)],
            env=store.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert store.markers == expected
        for marker in (store.root / "markers").iterdir():
            marker.unlink()


def test_runways_own_code_directory_is_accepted(store):
    """v1, as runway logged it, carries its transformers as ``code`` and scores."""
    uri = f"sqlite:///{store.root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    shipped = _artifact_dir(client, "1") / "code" / "runway/core/training/transformers.py"
    assert shipped.read_bytes() == (REPO / "src/runway/core/training/transformers.py").read_bytes()
    out = store.root / "scores-v1.csv"
    result = store.runway(
        "score", MODEL, "--version", "1", "--input", str(store.rows), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(pd.read_csv(out)) == 20


@pytest.mark.parametrize("version", ["5", "6", "7"])
def test_the_tampered_code_directories_are_armed_when_loaded_the_way_mlflow_does(store, version):
    """The control for v5-v7: MLflow alone imports the tampered transformers (runway not yet imported)."""
    local = store.root / f"control-v{version}"
    uri = f"sqlite:///{store.root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    shutil.copytree(_artifact_dir(client, version), local)
    loaded = subprocess.run(
        [sys.executable, "-B", "-c", LOAD_LIKE_MLFLOW, str(local), str(store.rows)],
        env=store.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert store.markers == [{"5": "extra", "6": "modified", "7": "elsewhere"}[version]]
    for marker in (store.root / "markers").iterdir():
        marker.unlink()


def _artifact_dir(client: mlflow.MlflowClient, version: str) -> Path:
    source = client.get_model_version(MODEL, version).source
    model_id = source.removeprefix("models:/")
    return Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))


REFUSALS = {
    "2": "MLmodel trusts types off runway's allow-list: builtins.eval, builtins.exec, posix.system",
    "3": "runway_evil",
    "4": "is not a model logged by a run",
    "5": "files that are not runway's in code/: code/runway/core/training/transformers, "
    "code/runway/core/training/transformers/__init__.py",
    "6": "code/runway/core/training/transformers.py differ from the installed runway's copy",
    "7": "only runway's own code/ is accepted as a code directory",
}


@pytest.mark.parametrize("version", sorted(REFUSALS))
def test_promote_refuses_a_tampered_version_and_runs_none_of_it(store, version):
    result = store.runway("registry", "promote", MODEL, version, "--to", "Staging")
    assert store.markers == []
    assert result.returncode == 12, result.stdout + result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    print(line)
    assert f"refusing {MODEL} v{version}: " in line and REFUSALS[version] in line
    history = store.runway("registry", "history", MODEL)
    assert f"promote  {version}  " in history.stdout and "refused" in history.stdout


@pytest.mark.parametrize("version", sorted(REFUSALS))
def test_score_refuses_a_tampered_version_and_runs_none_of_it(store, version):
    out = store.root / f"scores-v{version}.csv"
    result = store.runway(
        "score", MODEL, "--version", version, "--input", str(store.rows), "--output", str(out)
    )
    assert store.markers == [] and not out.exists()
    assert result.returncode == 12, result.stdout + result.stderr
    assert f"refusing {MODEL} v{version}: " in result.stderr and REFUSALS[version] in result.stderr


@pytest.mark.parametrize("version", ["2", "3"])
def test_serve_refuses_a_tampered_production_version_and_runs_none_of_it(store, version):
    """Production set to the version outside runway (as a REST call could), with an audit
    record forged to explain it (no RUNWAY_AUDIT_KEY): serve still will not start it."""
    uri = f"sqlite:///{store.root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    forge_production(uri, MODEL, version)
    log = store.root / f"serve-v{version}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(free_port())],
            cwd=store.root,
            env=store.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180  # a server that does start is stopped, not waited on
        while proc.poll() is None and time.monotonic() < deadline and not store.markers:
            time.sleep(0.5)
    finally:
        stop_process_group(proc)
        client.transition_model_version_stage(
            MODEL, "1", "Production", archive_existing_versions=True
        )
        client.set_registered_model_alias(MODEL, "production", "1")  # what serving resolves
    assert store.markers == []
    assert proc.returncode == 12, log.read_text()[-2000:]
    assert f"refusing {MODEL} v{version}: " in log.read_text()


def test_a_version_that_runs_code_is_loaded_only_when_the_setting_allows_it(store):
    """RUNWAY_ALLOW_PICKLE_MODELS admits the code-running version (and its code runs)."""
    out = store.root / "scores-allowed.csv"
    env = {**store.env, "RUNWAY_ALLOW_PICKLE_MODELS": "true"}
    command = ["score", MODEL, "--version", "3", "--input", str(store.rows), "--output", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "runway", *command],
        cwd=store.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "runs code while loading; loaded because RUNWAY_ALLOW_PICKLE_MODELS" in result.stderr
    assert store.markers == ["call", "import"]
    for marker in (store.root / "markers").iterdir():
        marker.unlink()
