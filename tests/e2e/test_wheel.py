"""runway from its wheel in a fresh venv, and a runway model served by MLflow alone.

1. The wheel (``pip wheel .``) installed with ``-c requirements.lock`` into a
   fresh venv, run from a temp dir (no checkout on any path): that venv's
   ``runway`` trains the delivery spec (every column kind: a float with gaps, an
   integer, a boolean, ISO timestamps with gaps, a 4-level and a 60-level
   category), registers it, promotes it to Staging and (with a reviewer) to
   Production, serves it with the Dockerfile's entrypoint (the bare `runway serve`,
   configured by RUNWAY_SERVE_* alone, as the image runs it) and scores a CSV of it.
2. A second fresh venv holding only what the version's own ``requirements.txt``
   pins (no runway; installed ahead, in parallel with the first, from the same
   lock, then ``pip install -r`` the version's file, a no-op check) runs
   ``mlflow models serve`` of that version: its answers equal ``runway serve``'s
   on the same rows, because the version carries runway's transformers in its
   ``code`` directory.

Rows with a missing boolean are left out of the comparison: MLflow 3.17's
scoring server reads a JSON ``null`` boolean as ``False`` (runway's gateway
rejects or imputes it; see the README's MLflow 3.18 note).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from tests.conftest import REPO
from tests.helpers import delivery_frame, delivery_spec, free_port, stop_process_group, wait_http

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]  # two venvs installed: minutes on a loaded host

MODEL = "delivery"
DOCKERFILE = (REPO / "Dockerfile").read_text()
# the names the model's requirements.txt pins (runway.store.models.pip_requirements)
MODEL_PACKAGES = ["mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy", "cloudpickle"]


def _clean_env(root: Path) -> dict[str, str]:
    """This environment without the checkout: no PYTHONPATH, no active venv; a private store."""
    # nothing of the test session's own store (MLFLOW_REGISTRY_URI, RUNWAY_*) leaks in
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("MLFLOW_", "RUNWAY_"))
    }
    return {
        **env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_REGISTRY_DIR": str(root / "registry"),
        "RUNWAY_ARTIFACT_ROOT": str(root / "mlruns"),
        "RUNWAY_PREDICTION_LOG": "off",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def _install(venv: Path, packages: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Create ``venv`` and pip-install ``packages`` pinned by the lock (in the background)."""
    script = (
        f"{sys.executable} -m venv {venv} && {venv}/bin/python -m pip install --no-compile -q "
        f"-c {REPO / 'requirements.lock'} " + " ".join(packages)
    )
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-c", script], cwd=venv.parent, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _run(args: list[str], root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict[str, str]]:
    """(root, the wheel's venv, the no-runway venv, env): both installed, in parallel."""
    root = tmp_path_factory.mktemp("wheel")
    env = _clean_env(root)
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(dist)],
        root,
        env,
    )
    [wheel] = dist.glob("runway_mlops-*.whl")
    installs = [
        _install(root / "with-runway", [str(wheel)], env, root / "install-runway.log"),
        _install(root / "no-runway", MODEL_PACKAGES, env, root / "install-mlflow.log"),
    ]
    for proc, log in zip(installs, ("install-runway.log", "install-mlflow.log"), strict=True):
        assert proc.wait(timeout=900) == 0, (root / log).read_text()[-3000:]
    return root, root / "with-runway" / "bin", root / "no-runway" / "bin", env


def _rows() -> pd.DataFrame:
    """Feature rows of every kind, gaps included (but no missing boolean: see the docstring)."""
    frame = delivery_frame(200, seed=11).drop(columns=["minutes", "late"])
    frame = frame[frame["express"].notna()]
    gaps = frame.isna().any(axis=1)
    rows = pd.concat([frame[gaps].head(6), frame[~gaps].head(6)]).reset_index(drop=True)
    assert rows.isna().any().any() and len(rows) == 12, "the rows should hold gaps"
    return rows


def _split(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


@pytest.fixture(scope="module")
def shipped(venvs) -> dict[str, list[float]]:
    """The wheel's runway: train, register, promote twice, serve and score; runway's answers."""
    root, bin_dir, _, env = venvs
    where = _run(
        [str(bin_dir / "python"), "-c", "import runway; print(runway.__file__)"], root, env
    )
    assert where.stdout.startswith(str(root / "with-runway")), where.stdout
    data = root / "delivery.csv"
    delivery_frame(400, seed=0).to_csv(data, index=False)
    (root / "spec.yaml").write_text(yaml.safe_dump(delivery_spec(data)))
    (root / "registry").mkdir()
    policy = {
        "model": MODEL,
        "staging": {"max_latency_ms": 60_000, "max_model_size_mb": 1000},
        "production": {"reviewers": ["alice"], "four_eyes": False},
    }
    (root / "registry" / f"{MODEL}.yaml").write_text(yaml.safe_dump(policy))
    runway = str(bin_dir / "runway")
    _run([runway, "train", "spec.yaml", "--register"], root, env)
    _run([runway, "registry", "promote", MODEL, "1", "--to", "Staging"], root, env)
    promote = [runway, "registry", "promote", MODEL, "1", "--to", "Production"]
    _run([*promote, "--reviewer", "alice", "--comment", "from the wheel"], root, env)
    rows = _rows()
    rows.to_csv(root / "rows.csv", index=False)
    _run([runway, "score", MODEL, "--input", "rows.csv", "--output", "scores.csv"], root, env)
    answers = {"score": pd.read_csv(root / "scores.csv")["prediction"].tolist()}
    # served as the image runs it: the Dockerfile's entrypoint, configured by environment only
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.MULTILINE).group(1))
    assert entrypoint[0] == "runway"
    image_env = {**env, "RUNWAY_SERVE_MODEL": MODEL, "RUNWAY_SERVE_WORKERS": "1"}
    answers["serve"] = _served([runway, *entrypoint[1:]], "/ready", root, image_env, flag=False)
    return answers


def _served(
    command: list[str], ready: str, root: Path, env: dict[str, str], flag: bool = True
) -> list[float]:
    """Start a server, wait for ``ready``, post the rows, stop it: its predictions.

    ``flag``: the port as ``--port``, else as ``RUNWAY_SERVE_PORT`` (the image's way)."""
    port = free_port()
    log = root / f"{Path(command[0]).name}-{port}.log"
    port_env = {} if flag else {"RUNWAY_SERVE_PORT": str(port), "RUNWAY_SERVE_HOST": "127.0.0.1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, *(["--port", str(port)] if flag else [])],
            cwd=root,
            env={**env, **port_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}{ready}", proc, timeout=300)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", json=_split(_rows()), timeout=60
        )
        assert answer.status_code == 200, answer.text[:2000]
        return [float(p) for p in answer.json()["predictions"]]
    except AssertionError:
        raise AssertionError(log.read_text()[-4000:]) from None
    finally:
        stop_process_group(proc)


def test_the_wheel_trains_registers_promotes_serves_and_scores_from_a_fresh_venv(shipped):
    assert len(shipped["serve"]) == len(_rows())
    np.testing.assert_allclose(shipped["score"], shipped["serve"], rtol=1e-12, atol=0)


def test_mlflow_alone_serves_a_runway_version_with_every_column_kind(venvs, shipped):
    root, _, bin_dir, env = venvs
    source = _run(
        [str(bin_dir / "python"), "-c", DOWNLOAD, f"models:/{MODEL}/1", str(root / "v1")], root, env
    )
    folder = Path(source.stdout.strip())
    assert (folder / "code/runway/core/training/transformers.py").is_file()
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", "-r",
          str(folder / "requirements.txt")], root, env)  # fmt: skip
    no_runway = subprocess.run(
        [str(bin_dir / "python"), "-c", "import runway"], cwd=root, env=env, capture_output=True
    )
    assert no_runway.returncode == 1 and b"No module named 'runway'" in no_runway.stderr
    mlflow_serve = [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/1"]
    # a local store is loaded in place: no __pycache__ in the version's code/ (runway refuses it)
    # and its bin/ on PATH, as an activated venv has it: MLflow starts `uvicorn` by name
    plain = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PATH": f"{bin_dir}:{env['PATH']}"}
    answers = _served([*mlflow_serve, "--env-manager", "local"], "/ping", root, plain)
    np.testing.assert_allclose(answers, shipped["serve"], rtol=1e-12, atol=0)
    runway = str(root / "with-runway" / "bin" / "runway")
    _run([runway, "score", MODEL, "--input", "rows.csv", "--output", "again.csv"], root, env)


DOWNLOAD = """
import sys, mlflow
print(mlflow.artifacts.download_artifacts(sys.argv[1], dst_path=sys.argv[2]))
"""
