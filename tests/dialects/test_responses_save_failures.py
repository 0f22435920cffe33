"""A stored Response whose save fails in a way the store does not expect: logged, never lost in silence."""

from __future__ import annotations

import asyncio
import logging

from router.api.responses import RESPONSE_STORE
from router.store import ResponseStore, StoredResponse
from tests.dialects.conftest import CFG
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

