"""The request record's shortcuts give what the long way gives: prometheus children updated through their values
(`metrics.fast_inc/fast_set/fast_observe`), a log record handed to the handlers directly (`logs.handle`), and
request ids of the same form."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from router.api.common import request_id
from router.config.model import ClientKey
from router.logs import handle
from router.metrics import Metrics, fast_inc, fast_observe, fast_set
from router.state import STATE


def _scrape(m: Metrics) -> str:
    return re.sub(r"(_created\{[^}]*\}|_created|_timestamp_seconds) \S+", r"\1 T", m.render().decode())


@pytest.mark.parametrize("amount", [0.0, 0.005, 0.0050001, 0.3, 1.0, 299.9, 300.0, 300.1, 1e9])
def test_a_histogram_counted_through_its_values_scrapes_the_same(amount: float) -> None:
    fast, slow = Metrics(), Metrics()
    fast_observe(fast.duration.labels("m", "chat"))(amount)
    slow.duration.labels("m", "chat").observe(amount)
    fast_observe(fast.ttft.labels("m"))(amount / 3)
    slow.ttft.labels("m").observe(amount / 3)
    assert _scrape(fast) == _scrape(slow)


def test_counters_and_gauges_through_their_values_scrape_the_same() -> None:
    fast, slow = Metrics(), Metrics()
    inc, set_ = fast_inc(fast.tokens.labels("m", "prompt")), fast_set(fast.in_flight.labels("p"))
    for n in (1, 5, 1000):
        inc(n)
        slow.tokens.labels("m", "prompt").inc(n)
        set_(n)
        slow.in_flight.labels("p").set(n)
    assert _scrape(fast) == _scrape(slow)


def test_what_is_not_laid_out_as_expected_takes_the_public_methods() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[tuple[str, float]] = []

        def inc(self, amount: float = 1) -> None:
            self.seen.append(("inc", amount))

        def set(self, value: float) -> None:
            self.seen.append(("set", value))

        def observe(self, amount: float) -> None:
            self.seen.append(("observe", amount))

    p = Plain()
    fast_inc(p)(2)
    fast_set(p)(3)
    fast_observe(p)(4)
    assert p.seen == [("inc", 2), ("set", 3), ("observe", 4)]


def test_negative_token_counts_are_not_counted() -> None:
    m = Metrics()
    m.model_series("m").tokens("prompt", -5)
    m.model_series("m").tokens("prompt", 7)
    assert 'agentgate_tokens_total{model="m",type="prompt"} 7.0' in m.render().decode()


class _Keep(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.names.append(record.getMessage())


@pytest.fixture
def tree() -> tuple[logging.Logger, logging.Logger, _Keep, _Keep]:
    parent = logging.getLogger("fastpath-test")
    child = logging.getLogger("fastpath-test.child")
    for lg in (parent, child):
        lg.handlers[:] = []
        lg.filters[:] = []
        lg.propagate = False
        lg.disabled = False
    parent.setLevel(logging.INFO)
    up, down = _Keep(), _Keep()
    parent.addHandler(up)
    child.addHandler(down)
    child.propagate = True
    return parent, child, up, down


def _record(logger: logging.Logger, msg: str) -> logging.LogRecord:
    return logger.makeRecord(logger.name, logging.INFO, "", 0, msg, (), None)


def test_a_record_reaches_the_handlers_the_long_way_reaches(tree: tuple[logging.Logger, logging.Logger, _Keep,
                                                                         _Keep]) -> None:
    _parent, child, up, down = tree
    handle(child, _record(child, "a"))
    child.propagate = False
    handle(child, _record(child, "b"))
    down.setLevel(logging.WARNING)
    child.propagate = True
    handle(child, _record(child, "c"))
    assert (up.names, down.names) == (["a", "c"], ["a", "b"])


def test_filters_and_disabled_loggers_are_honoured(tree: tuple[logging.Logger, logging.Logger, _Keep,
                                                                _Keep]) -> None:
    _parent, child, up, down = tree
    up.addFilter(lambda r: r.getMessage() != "drop")
    handle(child, _record(child, "drop"))
    handle(child, _record(child, "keep"))
    child.disabled = True
    handle(child, _record(child, "off"))
    child.disabled = False
    child.addFilter(lambda r: False)
    handle(child, _record(child, "filtered"))
    assert (up.names, down.names) == (["keep"], ["drop", "keep"])


def test_request_ids_keep_their_form() -> None:
    """A client's own request id is kept unless it holds a client key, configured or presented (it would be
    logged, shown in the console and sent upstream)."""
    app = web.Application()
    app[STATE] = SimpleNamespace(runtime=SimpleNamespace(keys=(ClientKey("ci", "sk-conf-1"),)))  # type: ignore[misc]
    ids = {request_id(make_mocked_request("POST", "/v1/chat/completions", app=app)) for _ in range(200)}
    assert len(ids) == 200 and all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    given = make_mocked_request("POST", "/", headers={"x-request-id": "abc-1"}, app=app)
    assert request_id(given) == "abc-1"
    for headers in ({"x-request-id": "run-sk-conf-1"}, {"x-request-id": "sk-typo-9", "x-api-key": "sk-typo-9"},
                    {"x-request-id": "a.sk-typo-9", "Authorization": "Bearer sk-typo-9"}):
        made = request_id(make_mocked_request("POST", "/", headers=headers, app=app))
        assert re.fullmatch(r"[0-9a-f]{24}", made), headers
    # a placeholder key ("x", as SDKs need one) is looked for whole: most ids hold an "x"
    for headers in ({"x-request-id": "trace-xyz-0001", "Authorization": "Bearer x"},
                    {"x-request-id": "run-sk-conf", "x-api-key": "sk-conf"}):
        kept = make_mocked_request("POST", "/", headers=headers, app=app)
        assert request_id(kept) == headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{24}", request_id(make_mocked_request(
        "POST", "/", headers={"x-request-id": "x", "Authorization": "Bearer x"}, app=app)))


async def test_an_unexpected_failure_still_carries_the_request_id(fakes, router, monkeypatch) -> None:
    """A 500 from a failure no route turned into an answer named no request: its x-request-id was set only on the
    answers the routes made, so the log line of the failure could not be found from the client's side."""
    from router.api import openai_routes

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(openai_routes.common, "require_model", boom)
    up = await fakes()
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}'}}\nmodels:\n"
                     "  - {name: m, provider: lab}\n")
    async with aiohttp.ClientSession() as s:
        for given in ({"x-request-id": "trace-500-1"}, {}):
            async with s.post(r.url + "/v1/chat/completions", json={"model": "m", "messages": []},
                              headers=given) as resp:
                assert resp.status == 500
                assert resp.headers.get("x-request-id") == given.get("x-request-id", resp.headers.get("x-request-id"))
                assert resp.headers.get("x-request-id")
