"""The worker's streamed chunks: pre-encoded envelopes give the same bytes as encoding each whole chunk."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from engines.wire import sse_data
from engines.worker.server import ChunkEnvelope
from tests.engines.conftest import Engine

BASE = {"id": "chatcmpl-0123", "object": "chat.completion.chunk", "created": 1764500000, "model": 'm "é" \\ ☃'}
VALUES = ["", "plain", ' "quoted" ', "new\nline\ttab", "é ☃ 😀", "\u2028", "\\", "\x00agentgate-slot\x00"]


@pytest.mark.parametrize("value", VALUES)
def test_chat_delta_envelope_is_the_whole_chunk_encoded(value: str) -> None:
    envelope = ChunkEnvelope(BASE, {"index": 0, "delta": ChunkEnvelope.SLOT, "finish_reason": None, "logprobs": None})
    for delta in ({"content": value}, {"reasoning_content": value}, {"role": "assistant", "content": value},
                  {"tool_calls": [{"index": 0, "function": {"arguments": value}}]}):
        whole = sse_data({**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]})
        assert envelope.encode(delta) == whole


@pytest.mark.parametrize("value", VALUES)
def test_completion_text_envelope_is_the_whole_chunk_encoded(value: str) -> None:
    base = {**BASE, "object": "text_completion"}
    envelope = ChunkEnvelope(base, {"index": 0, "text": ChunkEnvelope.SLOT, "logprobs": None, "finish_reason": None})
    whole = sse_data({**base, "choices": [{"index": 0, "text": value, "logprobs": None, "finish_reason": None}]})
    assert envelope.encode(value) == whole


def test_a_choice_without_the_slot_is_refused() -> None:
    with pytest.raises(ValueError):
        ChunkEnvelope(BASE, {"index": 0, "delta": {}})


async def _raw_events(url: str, path: str, body: dict[str, object]) -> list[bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    return [e + b"\n\n" for e in events[:-2]]


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_every_streamed_chunk_is_its_compact_encoding(engine: Callable[..., Awaitable[Engine]],
                                                            path: str) -> None:
    """Real generation: each event is exactly `sse_data` of its own JSON, one id for the stream."""
    e = await engine("random")
    body: dict[str, object] = {"model": "random", "max_tokens": 24, "temperature": 0, "stream": True,
                               "stream_options": {"include_usage": True}}
    if path.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": "Tell me a story."}]
    else:
        body["prompt"] = "Once upon a time"
    events = await _raw_events(e.url, path, body)
    docs = [json.loads(ev[len(b"data: "):]) for ev in events]
    assert [sse_data(doc) for doc in docs] == events
    choices = [d["choices"][0] for d in docs if d["choices"]]
    assert choices[-1]["finish_reason"] in ("length", "stop")
    assert all(c["finish_reason"] is None for c in choices[:-1])
    assert 0 < docs[-1]["usage"]["completion_tokens"] <= 24
    assert len({(d["id"], d["created"], d["model"]) for d in docs}) == 1
    assert len(choices) > 2
