"""One line when a service goes down, one when it is back: not one per poll."""

from __future__ import annotations

from runway.core.outage import Outage


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends():
    now = [100.0]
    outage = Outage("the registry", clock=lambda: now[0])
    lines = [outage.failed("HTTP 503") for _ in range(20)]  # twenty polls, one cause
    assert [line for line in lines if line] == [
        "the registry is unavailable: HTTP 503 (said once, and again when it answers)"
    ]
    assert outage.down
    now[0] = 142.0
    assert (
        outage.recovered("serving v3")
        == "the registry is back after 42s (20 failed attempts); serving v3"
    )
    assert outage.recovered() is None and not outage.down


def test_a_new_cause_during_an_outage_is_said():
    outage = Outage("the prediction log")
    outage.failed("connection refused")
    assert outage.failed("password authentication failed") == (
        "the prediction log is still unavailable, now: password authentication failed"
    )
