"""A whole answer (a completion, or an error in the route's shape) is written before the request's record is
made, so the record's metrics and log line never hold up the client; a streamed answer is written by the route
itself, before the record as it always was."""

from __future__ import annotations

from typing import Any

import aiohttp

from router.api import common

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}'}}
models:
  - {{name: m, provider: lab}}
"""


async def test_record_made_once_the_answer_is_written(fakes, router, monkeypatch):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    written: list[int] = []
    seen: list[tuple[object, int]] = []
    send = common._send

    async def spy(request: Any, resp: Any) -> None:
        await send(request, resp)
        written.append(resp.status)

    monkeypatch.setattr(common, "_send", spy)
    r.state.metrics.request_observers.append(lambda ex, fields: seen.append((fields["status"], len(written))))
    async with aiohttp.ClientSession() as s:
        ok = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        async with s.post(r.url + "/v1/chat/completions", json=ok) as resp:
            assert resp.status == 200 and (await resp.json())["choices"]
        async with s.post(r.url + "/v1/chat/completions", json={"model": "m", "messages": "no"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["param"] == "messages"
        async with s.post(r.url + "/v1/chat/completions", json={**ok, "stream": True}) as resp:
            assert resp.status == 200 and b"[DONE]" in await resp.read()
    assert written == [200, 400]  # the stream was written by its route, not here
    assert seen == [(200, 1), (400, 2), (200, 2)]  # each record made after its answer went out
