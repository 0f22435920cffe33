"""SSE framing as the spec has it: lines may end with LF, CRLF or a bare CR, and an upstream's reads may cut an
event (or a CRLF) anywhere; and the pass-through reader notes a stream's finish wherever it stands."""

from __future__ import annotations

import json

import aiohttp
import pytest

from router.sse import EventSplitter
from tests.fakes.openai_upstream import Step, chunk

EVENTS = [b'data: {"a": 1}\n\n', b": a comment\n\n", b"event: x\ndata: two\ndata: lines\n\n", b"data: [DONE]\n\n"]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_the_same_events_whatever_the_line_ending_and_wherever_the_reads_cut(ending: bytes) -> None:
    stream = b"".join(EVENTS).replace(b"\n", ending)
    for cut in range(len(stream) + 1):
        for second in (cut, min(len(stream), cut + 1), min(len(stream), cut + 7)):
            splitter = EventSplitter()
            got = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:second]) + splitter.feed(stream[second:])
            got += splitter.end()  # the stream's last CR: a line's end once nothing follows it
            assert got == EVENTS, (ending, cut, second)
            assert splitter.rest() == b""


CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


async def test_a_pass_through_stream_ends_where_one_of_several_choices_finishes(fakes, router):
    """No [DONE]: the chunk holding a finish (beside a choice still going, `"finish_reason": null`) is the end.
    The reader passed it over as holding only null finishes and answered the stream with a truncation error."""
    two = {**chunk("m", {"content": "b"}), "choices": [{"index": 0, "delta": {}, "finish_reason": None},
                                                       {"index": 1, "delta": {}, "finish_reason": "stop"}]}
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "a"}), two],
                 done=False))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "stream": True, "n": 2, "messages": [{"role": "user", "content": "go"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
    docs = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]
    assert not any("error" in d for d in docs), docs
    assert docs[-1]["choices"][1]["finish_reason"] == "stop"


@pytest.mark.parametrize("tools", [True, False], ids=["repaired", "passed through"])
async def test_a_stream_with_bare_cr_line_endings_reaches_the_client_whole(fakes, router, tools):
    events = [chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "Hello"}),
              chunk("m", {"content": " there."}), chunk("m", {}, "stop")]
    raw = (b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n")
    up = await fakes()
    up.push(Step(sse=[raw.replace(b"\n", b"\r")], done=False))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        out = (await resp.read()).decode()
    docs = [json.loads(e[6:]) for e in out.replace("\r", "\n").split("\n\n") if e.startswith("data: {")]
    assert not any("error" in d for d in docs), docs
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in docs if d["choices"]) == "Hello there."
    assert out.rstrip().endswith("data: [DONE]")
