"""Issue #30, "must show": tampered versions are refused everywhere one would load, and
the payload in them never runs.

One store per module, built once (in a separate process, so this one never holds the
attacker's objects): churn v1 trained and promoted by runway, then versions logged by
runway itself whose MLmodel was edited afterwards to reach a pickle whose
``__reduce__`` writes a marker file (MLflow's scikit-learn loader unpickles whatever
file ``python_function.data`` names when no MLmodel sits beside it):

* ``a``: ``python_function.data`` an absolute path to the pickle (a plain run artifact);
* ``b``: ``python_function.data`` a ``../`` path to it;
* ``c``: ``python_function.model_path`` (and ``sklearn.pickled_model``) outside the folder;
* ``d``: an unknown flavor key (``python_function.loader_data``) naming it;
* ``e``: an ONNX twin promoted by runway, then its ``model.onnx`` changed and the
  ``runway.onnx.sha256`` tag (and twin.json) rewritten to the new file's hash;
  ``e1`` the same swap on a twin runway promoted to Staging (promoted on to
  Production: ``e`` is there already);
  ``e0`` the same swap on a twin never promoted: its tag is all a promotion has,
  so the gates convert the source version again and refuse a graph that differs.

A control loads ``a`` and ``b`` the way MLflow does and sees their markers appear.
Then ``registry promote --dry-run``, ``registry promote`` (to Staging; ``e1`` to Production), ``score``,
``serve`` and the monitor's scorer (``runway monitor``'s lazy loader of class
probabilities; ``a``-``d``: it loads scikit-learn versions only) each refuse every
one with exit 12, and no marker appears.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, REPO_PYTHONPATH
from tests.helpers import forge_production, free_port, stop_process_group

pytestmark = pytest.mark.slow

MODEL = "churn-tamper"

CRAFT = r"""
import json, pickle, sys, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
root, model = Path(sys.argv[1]), sys.argv[2]
markers = root / "markers"
import mlflow, pandas as pd, skops.io, yaml
from tests.helpers import ship
from runway.core.onnx.model import sha256_file
from runway.jobs.onnx import lighten
from runway.jobs.promote import promote
from runway.store import onnx_models
from runway.store.models import log_sklearn_model, signature_inputs
from runway.store.tracking import client

spec = json.loads(sys.argv[3])
settings, v1, run_id = ship(root, spec, reviewer="alice")
c = client()
legit = Path(mlflow.artifacts.download_artifacts(f"models:/{model}/{v1}", dst_path=str(root / "v1")))
doc = yaml.safe_load((legit / "MLmodel").read_text())
pipe = skops.io.load(legit / "model.skops", trusted=doc["flavors"]["sklearn"]["skops_trusted_types"])
X = pd.read_json(legit / "input_example.json", orient="split")
required = signature_inputs(legit, required_only=True)
inputs = [(n, t, n in required) for n, t in signature_inputs(legit).items()]
experiment = c.get_run(run_id).info.experiment_id

class Payload:
    def __init__(self, name):
        self.name = name
    def __reduce__(self):
        code = f"open({str(markers / self.name)!r}, 'w').write('ran')"
        return (exec, (code,))

def genuine(case):
    # a folder as runway logs it, with the spec and contract beside it, and the pickle
    # logged as a plain artifact of the same run
    with mlflow.start_run(experiment_id=experiment) as run:
        for path in ("spec/spec.yaml", "contract/contract.json"):
            local = c.download_artifacts(run_id, path, str(root / "dl" / run.info.run_id))
            mlflow.log_artifact(local, path.split("/")[0])
        evil = root / "dl" / case / "evil.pkl"
        evil.parent.mkdir(parents=True)
        evil.write_bytes(pickle.dumps(Payload(case)))
        mlflow.log_artifact(str(evil), "extras")
        uri = log_sklearn_model(pipe, X, inputs=inputs)
    folder = Path(mlflow.get_logged_model(uri.removeprefix("models:/")).artifact_location.removeprefix("file://"))
    artifact = Path(c.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://")) / "extras" / "evil.pkl"
    return uri, folder, artifact

def edit(folder, change):
    doc = yaml.safe_load((folder / "MLmodel").read_text())
    change(doc["flavors"])
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))

def register(case, uri):
    print(case, mlflow.register_model(uri, model).version)

uri, folder, evil = genuine("a")
edit(folder, lambda f: f["python_function"].__setitem__("data", str(evil)))
register("a", uri)
uri, folder, evil = genuine("b")
beside = folder.parent / "evil.pkl"
beside.write_bytes(evil.read_bytes())
edit(folder, lambda f: f["python_function"].__setitem__("data", "../evil.pkl"))
register("b", uri)
uri, folder, evil = genuine("c")
def outside(f):
    f["python_function"]["model_path"] = str(evil)
    f["sklearn"]["pickled_model"] = str(evil)
edit(folder, outside)
register("c", uri)
uri, folder, evil = genuine("d")
edit(folder, lambda f: f["python_function"].__setitem__("loader_data", str(evil)))
register("d", uri)

def swap(twin):
    logged = c.get_logged_model(c.get_model_version(model, twin).source.removeprefix("models:/"))
    stored = Path(logged.artifact_location.removeprefix("file://")) / "data" / "twin" / "model.onnx"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 1
    stored.write_bytes(bytes(data))
    new = sha256_file(stored)
    record = stored.with_name("twin.json")
    doc = json.loads(record.read_text())
    doc["onnx_sha256"] = new
    record.write_text(json.dumps(doc))
    c.set_model_version_tag(model, twin, onnx_models.SHA_TAG, new)

twin = lighten(model, v1, settings).twin.version
swap(twin)
print("e0", twin)
# both promoted while v1 (scikit-learn) is the champion their gates compare with
twin = lighten(model, v1, settings).twin.version
staged = lighten(model, v1, settings).twin.version
promote(model, staged, "Staging", settings=settings)
promote(model, twin, "Staging", settings=settings)
promote(model, twin, "Production", reviewer="alice", settings=settings)
swap(twin)
print("e", twin)
swap(staged)
print("e1", staged)
"""

LOAD_LIKE_MLFLOW = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import mlflow
mlflow.pyfunc.load_model(sys.argv[1])
"""

MONITOR_SCORER = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from runway.errors import RunwayError
from runway.monitoring.monitor import _LazyScorer
from runway.settings import get_settings
from runway.store import registry, tracking

settings = get_settings()
tracking.configure(settings)
resolved = registry.resolve(sys.argv[1], None, sys.argv[2])
rows = pd.read_csv(sys.argv[3])
try:
    _LazyScorer(resolved, list(rows.columns), ["0", "1"], settings)(rows)
except RunwayError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""

REFUSALS = {
    "a": "python_function has keys runway never writes: data",
    "b": "python_function has keys runway never writes: data",
    "c": "the model file is not",
    "d": "python_function has keys runway never writes: loader_data",
    "e": "recorded when the twin was checked",
}


@dataclass
class Store:
    root: Path
    env: dict[str, str]
    rows: Path
    versions: dict[str, str]  # case -> registered version

    @property
    def markers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "markers").iterdir())

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def runway(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "runway", *args)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import pandas as pd
    import yaml

    root = tmp_path_factory.mktemp("tamper")
    (root / "markers").mkdir()
    data = root / "data" / "churn.csv"
    data.parent.mkdir()
    shutil.copy(REPO / "data" / "churn.csv", data)
    spec = yaml.safe_load((REPO / "experiments" / "churn.yaml").read_text())
    spec.update(model_name=MODEL, experiment="tamper-tests")
    spec["data"]["source"] = str(data)
    spec["estimator"] = {"name": "LogisticRegression", "params": {"max_iter": 300}}
    spec["split"]["cv_folds"] = 2
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_REGISTRY_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": "off",
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    crafted = subprocess.run(
        [sys.executable, "-c", CRAFT, str(root), MODEL, json.dumps(spec)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert crafted.returncode == 0, crafted.stderr[-3000:]
    words = crafted.stdout.split()
    versions = dict(zip(words[::2], words[1::2], strict=True))
    assert sorted(versions) == ["a", "b", "c", "d", "e", "e0", "e1"], crafted.stdout
    assert sorted(p.name for p in (root / "markers").iterdir()) == []
    rows = root / "rows.csv"
    frame = pd.read_csv(data)
    frame.drop(columns=[spec["data"]["target"], "customer_id"]).head(20).to_csv(rows, index=False)
    return Store(root, env, rows, versions)


def _folder(store: Store, version: str) -> Path:
    import mlflow

    uri = f"sqlite:///{store.root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    source = client.get_model_version(MODEL, version).source
    logged = client.get_logged_model(source.removeprefix("models:/"))
    return Path(logged.artifact_location.removeprefix("file://"))


@pytest.mark.parametrize("case", ["a", "b"])
def test_the_data_paths_are_armed_when_loaded_the_way_mlflow_does(store, case):
    """The control: MLflow alone, loading the folder where it lies, runs the pickle."""
    loaded = store.run("-c", LOAD_LIKE_MLFLOW, str(_folder(store, store.versions[case])))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert store.markers == [case]
    (store.root / "markers" / case).unlink()


def _refused(
    store: Store, case: str, result: subprocess.CompletedProcess[str], why: str = ""
) -> None:
    assert store.markers == []
    assert result.returncode == 12, result.stdout[-1000:] + result.stderr[-2000:]
    assert (why or REFUSALS[case]) in result.stderr, result.stderr[-2000:]


# A promoted twin is promoted on from its stage: e1, runway's Staging twin swapped the
# same way, to Production (e itself is Production already), against its sealed hash.
PROMOTED_TWIN = "was changed after its promotion to Staging sealed"


def _promotion(store: Store, case: str) -> list[str]:
    if case == "e":
        return [store.versions["e1"], "--to", "Production", "--reviewer", "alice"]
    return [store.versions[case], "--to", "Staging"]


@pytest.mark.parametrize("case", ["a", "b", "c", "d", "e"])
def test_promote_dry_run_refuses_and_runs_nothing(store, case):
    result = store.runway("registry", "promote", MODEL, *_promotion(store, case), "--dry-run")
    _refused(store, case, result, PROMOTED_TWIN if case == "e" else "")


@pytest.mark.parametrize("case", ["a", "b", "c", "d", "e"])
def test_promote_refuses_and_runs_nothing(store, case):
    result = store.runway("registry", "promote", MODEL, *_promotion(store, case))
    _refused(store, case, result, PROMOTED_TWIN if case == "e" else "")


def test_a_never_promoted_twin_swapped_with_its_tag_is_refused_by_the_trust_check(store):
    """Its gates convert the source version again: the graph must be that conversion."""
    result = store.runway(
        "registry", "promote", MODEL, store.versions["e0"], "--to", "Staging", "--dry-run"
    )
    _refused(store, "e0", result, "is not what runway converts from")


@pytest.mark.parametrize("case", ["a", "b", "c", "d", "e"])
def test_score_refuses_and_runs_nothing(store, case):
    out = store.root / f"scores-{case}.csv"
    version = store.versions[case]
    result = store.runway(
        "score", MODEL, "--version", version, "--input", str(store.rows), "--output", str(out)
    )
    _refused(store, case, result)
    assert not out.exists()


@pytest.mark.parametrize("case", ["a", "b", "c", "d"])
def test_the_monitors_scorer_refuses_and_runs_nothing(store, case):
    result = store.run("-c", MONITOR_SCORER, MODEL, store.versions[case], str(store.rows))
    _refused(store, case, result)


# "e" first: its Production is runway's own promotion; a-d are forged into Production.
@pytest.mark.parametrize("case", ["e", "a", "b", "c", "d"])
def test_serve_refuses_a_tampered_production_version_and_runs_nothing(store, case):
    if case != "e":
        import mlflow

        uri = f"sqlite:///{store.root / 'mlflow.db'}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        (champion,) = [
            mv.version
            for mv in client.search_model_versions(f"name='{MODEL}'")
            if mv.current_stage == "Production"
        ]
        client.transition_model_version_stage(
            MODEL, store.versions[case], "Production", archive_existing_versions=True
        )
        # then @production and a record that explains both moves, as runway's own promotion's
        forge_production(uri, MODEL, store.versions[case], replaced=str(champion))
    log = store.root / f"serve-{case}.log"
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
        deadline = time.monotonic() + 120  # a server that does start is stopped, not waited on
        while proc.poll() is None and time.monotonic() < deadline and not store.markers:
            time.sleep(0.2)
    finally:
        stop_process_group(proc)
    text = log.read_text()
    assert store.markers == []
    assert proc.returncode == 12, text[-2000:]
    assert REFUSALS[case] in text, text[-2000:]
