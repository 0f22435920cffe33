"""`RecentRequests.attempts`: each provider's attempts and failed attempts, from the request records the console
keeps (the cases a real router makes are in test_provider_error_rate.py)."""

from __future__ import annotations

from router.console.rings import RecentRequests
from router.exchange import Exchange


def record(status: int, provider: str, tried: tuple[str, ...], failed_on: tuple[str, ...] = (),
           ended_with: int = 0) -> tuple[Exchange, dict[str, object]]:
    ex = Exchange("r", "/v1/chat/completions", provider=provider, status=status, tried=tried, failed_on=failed_on,
                  ended_with=ended_with)
    return ex, {"provider": provider, "status": ex.final_status}


def test_each_attempt_counts_for_its_provider_once() -> None:
    recent = RecentRequests()
    for ex, fields in (
        record(200, "b", ("a", "b"), ("a",)),  # a failed, its fallback b answered
        record(502, "a", ("a",), ("a",)),  # a failed, nothing else to try: one failed attempt, not two
        record(200, "a", ("a", "a"), ("a",)),  # a failed, its retry answered
        record(200, "a", ("a",), ("a",), ended_with=502),  # its stream failed mid-way (counted by the relay)
        record(200, "b", ("b",), ended_with=502),  # an error event the relay did not count: the answer failed
        record(400, "b", ("b",)),  # the client's error: b answered
    ):
        recent.observe(ex, fields)
    assert recent.attempts() == {"a": (5, 4), "b": (3, 1)}


def test_a_5xx_whose_client_left_before_it_was_sent_is_still_an_error() -> None:
    """The record counts such a request as 499 (`ended_with`); the failure was the provider's all the same."""
    recent = RecentRequests()
    recent.observe(*record(502, "a", ("a",), ("a",), ended_with=499))
    recent.observe(*record(500, "b", ("b",), ended_with=499))  # the router failed after b answered
    recent.observe(*record(200, "b", ("b",), ended_with=499))  # the client left a stream that was fine
    assert recent.attempts() == {"a": (1, 1), "b": (2, 1)}


def test_records_without_attempts_count_the_provider_they_ended_on() -> None:
    recent = RecentRequests()
    recent.observe(None, {"provider": "a", "status": 503})
    recent.observe(None, {"provider": "a", "status": 200})
    recent.observe(None, {"status": 404})  # no provider: refused before any
    assert recent.attempts() == {"a": (2, 1)}
