"""``/metrics`` is what Prometheus parses, whatever the model is called."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runway.core.columns.input_policy import InputPolicy
from runway.serving.gateway import Gateway, Slot
from runway.settings import Settings
from runway.store.served import ResolvedModel
from tests.conftest import REPO
from tests.unit.serving.test_gateway_errors import _call

HOSTILE = 'churn "v2" \\ a\nb'  # quotes, a backslash and a newline: all legal in MLflow


def _families(gateway: Gateway) -> dict:
    status, headers, body = _call(gateway, "/metrics")
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


@pytest.mark.parametrize("name", [HOSTILE, "churn-classifier", "modèle ü"])
def test_a_model_name_round_trips_through_the_metrics_page(tmp_path: Path, name: str):
    gateway = Gateway(Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}"))
    gateway.slot = Slot(ResolvedModel(name, "7", "Production", None), {}, InputPolicy(), [], b"", 0)
    families = _families(gateway)
    [info] = families["runway_model_info"].samples
    assert info.labels == {"model": name, "version": "7"} and info.value == 1
    assert families["runway_model_info"].type == "gauge"


def test_the_documented_series_keep_their_names_types_and_values(tmp_path: Path):
    """The README's table: names, types and what they count, parsed as Prometheus would."""
    gateway = Gateway(Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}"))
    metrics = gateway.metrics
    metrics.observe("/invocations", 200, 0.003)
    metrics.observe("/invocations", 422, 0.2)
    metrics.observe("/health", 200, 0.0001)  # not in the histogram
    metrics.rows_scored, metrics.rows_rejected, metrics.switches = 5, 2, 1
    metrics.dropped["head_timeout"] += 3
    families = _families(gateway)  # this request itself is counted after it is answered
    kinds = {name: f.type for name, f in families.items()}
    assert kinds == {
        "runway_requests": "counter",
        "runway_request_duration_seconds": "histogram",
        "runway_rows_scored": "counter",
        "runway_rows_rejected": "counter",
        "runway_model_switches": "counter",
        "runway_model_switch_failures": "counter",
        "runway_backend_restarts": "counter",
        "runway_prediction_log_dropped": "counter",
        "runway_connections_dropped": "counter",
        "runway_inflight_requests": "gauge",
        "runway_registry_production_refused": "gauge",
        "runway_model_info": "gauge",  # no version yet: the family, without a sample
    }
    requests = {
        (s.labels["path"], s.labels["code"]): s.value for s in families["runway_requests"].samples
    }
    assert requests[("/invocations", "200")] == 1 and requests[("/health", "200")] == 1
    assert requests[("/invocations", "503")] == 0  # server errors exist from the start
    histogram = {
        (s.name, s.labels.get("le")): s.value
        for s in families["runway_request_duration_seconds"].samples
    }
    assert histogram[("runway_request_duration_seconds_bucket", "0.005")] == 1
    assert histogram[("runway_request_duration_seconds_bucket", "+Inf")] == 2
    assert histogram[("runway_request_duration_seconds_count", None)] == 2
    assert histogram[("runway_request_duration_seconds_sum", None)] == pytest.approx(0.203)
    [dropped] = families["runway_connections_dropped"].samples
    assert dropped.name == "runway_connections_dropped_total" and dropped.value == 3
    assert families["runway_rows_scored"].samples[0].value == 5


def test_two_gateways_in_one_process_count_apart(tmp_path: Path):
    """Each app has its own registry, not prometheus_client's process-wide one."""
    settings = Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}")
    one, two = Gateway(settings), Gateway(settings)
    one.metrics.rows_scored = 4
    assert _families(one)["runway_rows_scored"].samples[0].value == 4
    assert _families(two)["runway_rows_scored"].samples[0].value == 0


def test_the_readme_table_lists_every_series_with_its_type(tmp_path: Path):
    """The README's table of series is the page's: the same names and types, no more, no less."""
    documented: dict[str, str] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("| `runway_"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            for name in re.findall(r"`(runway_\w+)`", cells[0]):
                documented[name] = cells[1]
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}", serve_cache_entries=10
    )
    gateway = Gateway(settings)
    gateway.slot = Slot(ResolvedModel("m", "1", "Production", None), {}, InputPolicy(), [], b"", 0)
    gateway.metrics.dropped["head_timeout"] += 1
    gateway.metrics.replica = "host:8080"  # as `runway serve` names every gateway
    exposed = {}
    for family in _families(gateway).values():
        suffix = "_total" if family.type == "counter" else ""
        exposed[family.name + suffix] = family.type
    assert documented == exposed


def test_each_replica_names_itself_on_its_metrics_page(tmp_path: Path):
    """Issue 28: N replicas behind one Service are told apart by a scrape of each."""
    import socket

    settings = Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}")
    pages = {}
    for port in (8081, 8082):
        gateway = Gateway(settings)
        gateway.metrics.replica = f"{socket.gethostname()}:{port}"  # as `runway serve` names it
        [sample] = _families(gateway)["runway_replica_info"].samples
        pages[port] = sample.labels["replica"]
        assert sample.value == 1
    assert pages[8081] != pages[8082] and pages[8082].endswith(":8082")
    assert "runway_replica_info" not in _families(Gateway(settings))  # unnamed: no series
