"""The image and the Kubernetes manifests agree with the code they run."""

from __future__ import annotations

import json
import re

import yaml

from runway.settings import Settings
from tests.conftest import REPO

BASE = REPO / "deploy" / "base"


def _documents() -> dict[str, dict]:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted(BASE.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def _variables() -> set[str]:
    """Every RUNWAY_*/MLFLOW_* variable the image or the manifests set."""
    docs = _documents()
    names = set(docs["configmap.yaml"]["data"]) | set(docs["secret.yaml"]["stringData"])
    names |= set(re.findall(r"\b(RUNWAY_[A-Z_]+)=", (REPO / "Dockerfile").read_text()))
    return {n for n in names if n.startswith("RUNWAY_")}


def test_the_kustomization_lists_every_manifest_and_nothing_else():
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(_documents())


def test_every_runway_variable_the_deployment_sets_is_a_setting_runway_reads():
    known = {f"RUNWAY_{name.upper()}" for name in Settings.model_fields}
    assert _variables(), "the model, the address, the tokens at least"
    assert _variables() <= known, _variables() - known


def test_the_image_runs_runway_serve_as_a_non_root_user_on_the_probed_port():
    text = (REPO / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert entrypoint and json.loads(entrypoint.group(1)) == ["runway", "serve"]
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "RUNWAY_SERVE_HOST=0.0.0.0" in text and "RUNWAY_SERVE_PORT=8080" in text
    # the runtime stage installs the wheel under the lock's versions, never the dev extra
    assert "[dev" not in text and "-c /tmp/requirements.lock" in text
    container = _documents()["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8080


def test_probes_ask_the_endpoints_that_answer_them_with_an_allowed_host():
    docs = _documents()
    spec = docs["deployment.yaml"]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    allowed = docs["configmap.yaml"]["data"]["RUNWAY_SERVE_ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        (host,) = container[probe]["httpGet"]["httpHeaders"]
        assert host["name"] == "Host" and host["value"] in allowed, probe
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_the_cronjobs_run_runway_commands_that_parse():
    from runway.cli import build_parser

    parser = build_parser()
    for name in ("cronjob-score.yaml", "cronjob-monitor.yaml"):
        pod = _documents()[name]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        command = container["command"]
        assert command[0] == "runway", name
        parser.parse_args([*command[1:], *container["args"]])
