"""The gateway's ``/metrics``: counters and a latency histogram, exposed by prometheus_client.

The gateway counts in plain attributes (one event loop, so no lock on the
request path); a collector on the app's own ``CollectorRegistry`` (never the
process-wide default one, so two gateways in a process, as in tests, do not
mix) turns them into metric families when ``/metrics`` is read, and
prometheus_client writes the text format, escaping label values (a model
named ``churn "v2"`` must not break the page).

No multiprocess mode: what ``/metrics`` reports is counted in one process,
the gateway (one uvicorn process); the backends are MLflow's scoring server,
which reports nothing here, and the gateway reads their state (alive or not)
itself.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.encode()


@dataclass(frozen=True)
class Served:
    """What is being served, for the info and backend gauges."""

    model: str
    version: str
    backends_live: int


class CacheStats(Protocol):
    """What /metrics reads of the prediction cache."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    @property
    def evictions(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Live:
    """What the gateway holds when /metrics is read: not counted here."""

    active: int = 0  # requests in flight
    dropped: int = 0  # rows the prediction log could not take
    served: Served | None = None
    cache: CacheStats | None = None


class Metrics:
    """The gateway's counters and latency histogram, and the registry that exposes them."""

    def __init__(self) -> None:
        # The server-error series exist from the start (at 0), so an alert on them works
        # before the first one happens.
        self.requests: Counter[tuple[str, int]] = Counter(
            dict.fromkeys((("/invocations", code) for code in (500, 502, 503, 504)), 0)
        )
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.rows_scored = 0
        self.rows_rejected = 0
        self.switches = 0
        self.switch_failures = 0
        self.backend_restarts = 0
        # the registry's Production, refused (the audit chain does not explain it): why
        self.unaudited = ""
        self.replica = ""  # this gateway's name among the replicas (RUNWAY_SERVE_REPLICA)
        self.dropped: Counter[str] = Counter()  # connections closed before a request, by reason
        self.live: Callable[[], Live] = Live
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request; scoring requests also feed the histogram."""
        self.requests[(path, status)] += 1
        if path == "/invocations":
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(self) -> bytes:
        """The ``/metrics`` page (Prometheus text format 0.0.4, ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


class _Collector:
    """Metric families from a :class:`Metrics` and what the gateway holds now."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m, live = self.metrics, self.metrics.live()
        requests = CounterMetricFamily(
            "runway_requests_total",
            "Requests answered, by path and status code.",
            labels=("path", "code"),
        )
        for (path, status), n in sorted(m.requests.items()):
            requests.add_metric((path, str(status)), n)
        yield requests
        yield _histogram(m)
        counters = {
            "runway_rows_scored_total": (m.rows_scored, "Rows scored by the model."),
            "runway_rows_rejected_total": (m.rows_rejected, "Rows refused by the contract."),
            "runway_model_switches_total": (m.switches, "Blue/green switches to a new version."),
            "runway_model_switch_failures_total": (
                m.switch_failures,
                "New versions that failed to start or score their example.",
            ),
            "runway_backend_restarts_total": (m.backend_restarts, "Backends restarted."),
            "runway_prediction_log_dropped_total": (
                live.dropped,
                "Rows not recorded in the prediction log.",
            ),
        }
        for name, (value, help_text) in counters.items():
            yield CounterMetricFamily(name, help_text, value=value)
        if live.cache is not None:
            yield from _cache_families(live.cache)
        dropped = CounterMetricFamily(
            "runway_connections_dropped_total",
            "Connections closed before a request was read: slow or oversized request heads, "
            "too many connections from one client.",
            labels=("reason",),
        )
        for reason, n in sorted(m.dropped.items()):
            dropped.add_metric((reason,), n)
        yield dropped
        yield GaugeMetricFamily(
            "runway_inflight_requests", "Requests being answered now.", value=live.active
        )
        yield GaugeMetricFamily(
            "runway_registry_production_refused",
            "1 while the registry's Production version is one the audit chain does not "
            "explain (not served; the audited version goes on serving).",
            value=1 if m.unaudited else 0,
        )
        yield from _served_families(live.served)
        if m.replica:  # which replica answered this scrape, when several share a Service
            replica = GaugeMetricFamily(
                "runway_replica_info",
                "This gateway among the replicas behind one Service (value 1).",
                labels=("replica",),
            )
            replica.add_metric((m.replica,), 1)
            yield replica


def _histogram(m: Metrics) -> HistogramMetricFamily:
    cumulative, total = [], 0
    for bound, n in zip((*BUCKETS, float("inf")), m.buckets, strict=True):
        total += n
        cumulative.append(("+Inf" if bound == float("inf") else f"{bound:g}", total))
    return HistogramMetricFamily(
        "runway_request_duration_seconds",
        "Time to answer /invocations.",
        buckets=cumulative,
        sum_value=m.latency_sum,
    )


def _served_families(served: Served | None) -> Iterator[Metric]:
    """The version served (its info gauge is there, empty, before one is)."""
    info = GaugeMetricFamily(
        "runway_model_info",
        "The model version being served (value 1).",
        labels=("model", "version"),
    )
    if served is None:
        yield info
        return
    info.add_metric((served.model, served.version), 1)
    yield info
    yield GaugeMetricFamily(
        "runway_backends_live",
        "Backends answering for the current version.",
        value=served.backends_live,
    )


def _cache_families(cache: CacheStats) -> Iterator[Metric]:
    """The prediction cache's counters and gauges (only when the cache is on)."""
    yield CounterMetricFamily(
        "runway_cache_hits_total", "Rows answered from the cache.", value=cache.hits
    )
    yield CounterMetricFamily(
        "runway_cache_misses_total", "Rows the cache did not hold.", value=cache.misses
    )
    yield CounterMetricFamily(
        "runway_cache_evictions_total", "Rows evicted (bounds).", value=cache.evictions
    )
    yield GaugeMetricFamily(
        "runway_cache_entries", "Rows in the prediction cache now.", value=len(cache)
    )
    yield GaugeMetricFamily(
        "runway_cache_bytes", "Estimated memory of the cache.", value=cache.bytes
    )
