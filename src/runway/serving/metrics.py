"""The gateway's ``/metrics``: counters and a latency histogram in Prometheus text format."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Served:
    """What is being served, for the info and backend gauges."""

    model: str
    version: str
    backends_live: int


class CacheStats(Protocol):
    """What /metrics reads of the prediction cache."""

    hits: int
    misses: int
    evictions: int
    bytes: int

    def __len__(self) -> int: ...


class Metrics:
    """Counters and a latency histogram, rendered in Prometheus text format."""

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
        self.dropped: Counter[str] = Counter()  # connections closed before a request, by reason

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request; scoring requests also feed the histogram."""
        self.requests[(path, status)] += 1
        if path == "/invocations":
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(
        self, active: int, dropped: int, served: Served | None, cache: CacheStats | None = None
    ) -> str:
        """The ``/metrics`` page."""
        out = [
            "# HELP runway_requests_total Requests answered, by path and status code.",
            "# TYPE runway_requests_total counter",
        ]
        for (path, status), n in sorted(self.requests.items()):
            out.append(f'runway_requests_total{{path="{path}",code="{status}"}} {n}')
        out += self._histogram()
        counters = {
            "runway_rows_scored_total": (self.rows_scored, "Rows scored by the model."),
            "runway_rows_rejected_total": (self.rows_rejected, "Rows refused by the contract."),
            "runway_model_switches_total": (self.switches, "Blue/green switches to a new version."),
            "runway_model_switch_failures_total": (
                self.switch_failures,
                "New versions that failed to start or score their example.",
            ),
            "runway_backend_restarts_total": (self.backend_restarts, "Backends restarted."),
            "runway_prediction_log_dropped_total": (
                dropped,
                "Rows not recorded in the prediction log.",
            ),
        }
        for name, (value, help_text) in counters.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        if cache is not None:
            out += _cache_lines(cache)
        out += [
            "# HELP runway_connections_dropped_total Connections closed before a request was "
            "read: slow or oversized request heads, too many connections from one client.",
            "# TYPE runway_connections_dropped_total counter",
        ]
        for reason, n in sorted(self.dropped.items()):
            out.append(f'runway_connections_dropped_total{{reason="{reason}"}} {n}')
        out += [
            "# HELP runway_inflight_requests Requests being answered now.",
            "# TYPE runway_inflight_requests gauge",
            f"runway_inflight_requests {active}",
            "# HELP runway_model_info The model version being served (value 1).",
            "# TYPE runway_model_info gauge",
        ]
        if served is not None:
            name, version, live = served.model, served.version, served.backends_live
            out.append(f'runway_model_info{{model="{name}",version="{version}"}} 1')
            out += [
                "# HELP runway_backends_live Backends answering for the current version.",
                "# TYPE runway_backends_live gauge",
                f"runway_backends_live {live}",
            ]
        return "\n".join(out) + "\n"

    def _histogram(self) -> list[str]:
        out = [
            "# HELP runway_request_duration_seconds Time to answer /invocations.",
            "# TYPE runway_request_duration_seconds histogram",
        ]
        total = 0
        for bound, n in zip((*BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'runway_request_duration_seconds_bucket{{le="{le}"}} {total}')
        out.append(f"runway_request_duration_seconds_sum {self.latency_sum:.6f}")
        out.append(f"runway_request_duration_seconds_count {self.latency_count}")
        return out


def _cache_lines(cache: CacheStats) -> list[str]:
    """The prediction cache's counters and gauges (only when the cache is on)."""
    series = [
        ("runway_cache_hits_total", "counter", cache.hits, "Rows answered from the cache."),
        ("runway_cache_misses_total", "counter", cache.misses, "Rows the cache did not hold."),
        ("runway_cache_evictions_total", "counter", cache.evictions, "Rows evicted (bounds)."),
        ("runway_cache_entries", "gauge", len(cache), "Rows in the prediction cache now."),
        ("runway_cache_bytes", "gauge", cache.bytes, "Estimated memory of the cache."),
    ]
    out = []
    for name, kind, value, help_text in series:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return out
