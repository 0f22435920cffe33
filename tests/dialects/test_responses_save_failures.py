"""A stored Response whose save fails in a way the store does not expect: logged, never lost in silence."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import openai
import pytest

from router.api.responses import RESPONSE_STORE
from router.dialects import responses as dialect
from router.store import ResponseStore, StoredResponse
from tests.dialects.conftest import CFG
from tests.dialects.test_responses import raw_stream
from tests.dialects.test_responses_interrupted import _leave_after_text
from tests.fakes.openai_upstream import Step, stream_of
from tests.waiting import wait_until


async def test_an_interrupted_save_failing_at_shutdown_is_logged(fakes, router, monkeypatch, caplog):
    """The save of a stream whose client left runs on in its own task; one failing with an error the store does
    not expect (a bug) was gathered at shutdown with its exception dropped: it is now logged, with the response's
    id and the error, and without the client's key."""
    release = asyncio.Event()

    async def broken_put(self: ResponseStore, item: StoredResponse) -> None:
        await release.wait()
        raise RuntimeError("unexpected failure in the store")

    monkeypatch.setattr(ResponseStore, "put", broken_put)
    up = await fakes()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld"], "m"), pause_after=3, resume=asyncio.Event()))
    r = await router("server: {api_keys: [{key: sk-secret-key-123, name: a}]}\n" + CFG.format(url=up.url))
    caplog.set_level(logging.INFO, logger="agentgate")
    body = {"model": "m", "input": "hi", "stream": True}
    resp_id = await _leave_after_text(r.url, body, " wor", headers={"Authorization": "Bearer sk-secret-key-123"})
    holder = r.app[RESPONSE_STORE]
    await wait_until(lambda: resp_id in holder.pending)
    release.set()
    await r.running.stop()
    failed = [rec for rec in caplog.records if rec.name == "agentgate" and resp_id in rec.getMessage()]
    assert failed and failed[0].levelno >= logging.ERROR, [rec.getMessage() for rec in caplog.records]
    assert "unexpected failure in the store" in caplog.text and "sk-secret-key-123" not in caplog.text



async def test_a_stream_ended_by_an_internal_error_is_stored_failed(fakes, router, monkeypatch):
    """A stream that an error of the router's own ended (a 500: `internal_error`) sent `response.failed` with the
    Response's id but was never stored, where a stream an upstream's error ended is: a GET of the id was a 404. It
    is stored `failed` too now, before its last events go out, and a continuation naming it is refused as for any
    failed response."""
    feed = dialect.ResponsesStream.feed
    fed = 0

    def failing_feed(self: dialect.ResponsesStream, doc: Any) -> list[bytes]:
        nonlocal fed
        fed += 1
        if fed == 3:
            raise RuntimeError("a bug in the translation")
        return feed(self, doc)

    monkeypatch.setattr(dialect.ResponsesStream, "feed", failing_feed)
    up = await fakes()
    up.push(Step(sse=stream_of(["Hello", " wor", "ld", "!"], "m")))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True})
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"] and events[-2]["code"] == "internal_error"
    failed = events[-1]["response"]
    got = await r.client().responses.retrieve(failed["id"])
    assert got.status == "failed" and got.error is not None and got.error.code == "server_error"
    assert [i.id for i in got.output] == [i["id"] for i in failed["output"]]
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().responses.create(model="m", input="go on", previous_response_id=failed["id"])
    assert bad.value.code == "previous_response_failed"
    assert len(up.requests) == 1
