"""The team stack for the e2e tests: started once per session by `make team-up`.

PostgreSQL, `mlflow server` with basic-auth and moto's S3 on their own ports and
folder, stopped by `runway team down --purge`. Each member works from their own
directory with the variables `runway team env --user NAME` prints: carol (author),
alice (reviewer), svc (service account) and dave (a service account that also
promotes another model), each with the grants `runway team user NAME --role ROLE`
gives, as the README documents. A test that stops a part of the stack starts it
again before it returns: the other test modules share it.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import REPO

VENV = Path(sys.prefix)
MODEL, EXPERIMENT = "team-model", "team-exp"
ROLES = {"carol": "author", "alice": "reviewer", "svc": "service", "dave": "service"}


@dataclass
class Team:
    """The running stack and how to act as one of its members."""

    root: Path
    env: dict[str, str]  # what `make team-*` and `runway team *` run with
    members: dict[str, dict[str, str]]  # user -> that member's exported variables

    def runway(
        self,
        user: str | None,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 300,
        **env: str,
    ) -> subprocess.CompletedProcess:
        """`runway ARGS` as ``user`` (None: anonymous) from ``cwd`` (the user's folder)."""
        variables = {
            **self.env,
            **(self.members[user] if user else self.members["anonymous"]),
            **env,
        }
        folder = cwd or self.home(user or "anonymous")
        return subprocess.run(
            [sys.executable, "-m", "runway", *args],
            cwd=folder,
            env=variables,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def home(self, user: str) -> Path:
        """A member's working directory, with the spec and the model's policy."""
        folder = self.root / "home" / user
        if not folder.exists():
            (folder / "registry").mkdir(parents=True)
            (folder / "spec.yaml").write_text(yaml.safe_dump(_spec()))
            policy = {
                "model": MODEL,
                "staging": {"max_latency_ms": 60_000, "max_model_size_mb": 1000},
                "production": {"reviewers": ["alice", "carol"], "four_eyes": True},
            }
            (folder / "registry" / f"{MODEL}.yaml").write_text(yaml.safe_dump(policy))
        return folder


def _as(monkeypatch: pytest.MonkeyPatch, team: Team, user: str) -> mlflow.MlflowClient:
    """This process acts as ``user`` on the server (its runway calls and the client returned)."""
    from runway.settings import get_settings
    from runway.store import tracking

    for name, value in team.members[user].items():
        monkeypatch.setenv(name, value)
    tracking.configure(get_settings())
    uri = team.members[user]["MLFLOW_TRACKING_URI"]
    return mlflow.MlflowClient(uri, uri)


def _spec(**changes) -> dict:
    doc = {
        "experiment": EXPERIMENT,
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target", "features": "infer"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500}},
        "split": {"holdout": 0.25, "cv_folds": 3, "seed": 1},
        "metrics": ["roc_auc", "accuracy"],
        "primary_metric": {"name": "roc_auc"},
    }
    return doc | changes


def _port_base() -> int:
    """Three free consecutive loopback ports."""
    for _ in range(200):
        base = random.randrange(20000, 32000)  # below the ephemeral ports
        with socket.socket() as a, socket.socket() as b, socket.socket() as c:
            try:
                for sock, port in ((a, base), (b, base + 1), (c, base + 2)):
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError("no three free consecutive ports")


def _make(team_env: dict[str, str], target: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), target, f"VENV={VENV}", "INSTALL="],
        cwd=cwd,
        env=team_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _exports(text: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export "))[0] for line in text.splitlines()]
    return dict(pair.split("=", 1) for pair in pairs)


def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNWAY_"))}
    env = {
        **clean,
        "RUNWAY_TEAM_DIR": str(root / ".team"),
        "RUNWAY_TEAM_PORT_BASE": str(_port_base()),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{clean.get('PATH', '')}",
        "RUNWAY_SWEEP_HEARTBEAT": "1",  # every worker of a study, alike
        "RUNWAY_SWEEP_GRACE": "8",
    }
    try:
        up = _make(env, "team-up", root)  # a half-started stack is stopped below too
        assert up.returncode == 0, up.stdout + up.stderr
        members = {"admin": _exports(_make(env, "team-env", root).stdout)}
        for user, role in ROLES.items():
            added = subprocess.run(
                [
                    "runway",
                    "team",
                    "user",
                    user,
                    "--role",
                    role,
                    "--model",
                    MODEL,
                    "--experiment",
                    EXPERIMENT,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert added.returncode == 0, added.stderr
            shown = subprocess.run(
                ["runway", "team", "env", "--user", user], env=env, capture_output=True, text=True
            )
            members[user] = _exports(shown.stdout)
        # dave also promotes another model: he may write the audit trail, not this model.
        subprocess.run(
            [
                "runway",
                "team",
                "user",
                "dave",
                "--role",
                "author",
                "--model",
                "other-model",
                "--experiment",
                "other-exp",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        members["anonymous"] = {
            **members["admin"],
            "MLFLOW_TRACKING_USERNAME": "",
            "MLFLOW_TRACKING_PASSWORD": "",
        }
        team = Team(root, env, members)
        # the team's promotion policy lives on the server; a reviewer stores it (issue #27-2)
        pushed = team.runway("alice", "registry", "policy", "push", MODEL)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        yield team
    finally:
        down = subprocess.run(
            ["runway", "team", "down", "--purge"], env=env, capture_output=True, text=True
        )
        assert down.returncode == 0, down.stdout + down.stderr


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def _history(client: mlflow.MlflowClient, version: str) -> list:
    """Audit runs of ``version``, oldest first (read as admin)."""
    experiment = client.get_experiment_by_name("runway-registry-audit")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`runway.audit.model` = '{MODEL}' and tags.`runway.audit.version` = '{version}'",
        order_by=["attributes.start_time ASC"],
    )
    return runs
