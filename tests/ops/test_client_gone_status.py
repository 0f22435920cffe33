"""A whole answer that was already a 5xx when its client went away (the send failed, or the handler was cancelled
while writing it) counted as a 499 in `agentgate_requests_total` and lost its error in the access log: the 5xx
alerts and panels never saw the failure, which the client's leaving did not cause. A 200 (a stream or a whole
answer) whose client left still counts as 499, and a request whose client left before any answer too."""

from __future__ import annotations

from router.exchange import Exchange
from router.metrics import Metrics
from tests.ops.test_metrics import sample


def _counted(ex: Exchange) -> str:
    m = Metrics()
    ex.finish(m, log_enabled=False)
    text = m.render().decode()
    return next(s for s in ("200", "499", "502", "500", "400")
                if sample(text, "agentgate_requests_total", model="m", status=s))


def _ex(status: int, error: str | None = None) -> Exchange:
    ex = Exchange("r", "chat", model="m", provider="up", status=status)
    ex.error = error
    return ex


def test_a_5xx_whose_client_left_counts_as_the_5xx() -> None:
    ex = _ex(502, "upstream_error")
    ex.client_gone()
    assert (ex.error, ex.ended_with, _counted(ex)) == ("upstream_error", 0, "502")
    ex = _ex(500, "internal_error")
    ex.client_gone()
    assert _counted(ex) == "500"


def test_a_200_or_no_answer_whose_client_left_counts_as_499() -> None:
    ex = _ex(200)
    ex.client_gone()
    assert (ex.error, ex.ended_with, _counted(ex)) == ("client_disconnected", 499, "499")
    ex = _ex(0)
    ex.client_gone()
    assert (ex.error, _counted(ex)) == ("client_disconnected", "499")
    ex = _ex(400, "invalid_request")  # the client's own error: it counts as the client leaving, as before
    ex.client_gone()
    assert _counted(ex) == "499"
