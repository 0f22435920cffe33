"""Every event of a translated Messages stream is written as `sse_event` writes its data: the events whose envelope
is kept encoded (block starts, stops and deltas, the message's start and stop, the ping) come out byte for byte
the same as the event encoded whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.chat_types import StreamChunk
from router.dialects.anthropic_in import MessagesStream
from router.dialects.common import sse_event

HEAD = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":'


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(index: int, args: str, name: str | None = None, call_id: str | None = None) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    out: dict[str, Any] = {"index": index, "function": fn}
    if name is not None:
        fn["name"], out["id"], out["type"] = name, call_id, "function"
    return out


STREAMS: dict[str, list[Any]] = {
    "text, then a call": [
        StreamChunk(HEAD, {"role": "assistant", "content": ""}), StreamChunk(HEAD, {"content": "Hi \"there\" ✓"}),
        StreamChunk(HEAD, {"tool_calls": [call(0, '{"a": 1}', "f", "call_1")]}), chunk({}, "tool_calls"),
        {**chunk({}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}],
    "reasoning, then text": [
        StreamChunk(HEAD, {"reasoning_content": "think"}), StreamChunk(HEAD, {"reasoning_content": " more"}),
        StreamChunk(HEAD, {"content": "answer"}), StreamChunk(HEAD, {"content": " 🙂"}), chunk({}, "stop")],
    "the upstream's own calls, one not JSON": [
        chunk({"tool_calls": [call(0, "", "get", "call_a")]}), chunk({"tool_calls": [call(0, '{"city": ')]}),
        chunk({"tool_calls": [call(0, '"Oslo"}')]}), chunk({"tool_calls": [call(1, "{'x': 1,}", "put", "b c")]}),
        chunk({}, "tool_calls")],
    "a refusal after text": [
        chunk({"content": "Well."}), chunk({"refusal": "I can't."}), chunk({}, "stop")],
    "nothing but whitespace": [chunk({"content": "  "}), chunk({}, "length")],
}


def events(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    for block in data.split(b"\n\n")[:-1]:
        name, payload = block.split(b"\n")
        assert name.startswith(b"event: ") and payload.startswith(b"data: ")
        out.append((name[7:].decode(), block + b"\n\n"))
    return out


@pytest.mark.parametrize("name", list(STREAMS))
def test_each_event_is_its_data_as_sse_event_writes_it(name: str) -> None:
    stream = MessagesStream("m", ["STOP"], 12, request_id="req_1")
    out = b"".join(b"".join(stream.feed(item)) for item in STREAMS[name]) + b"".join(stream.finish())
    seen = events(out)
    assert seen[0][0] == "message_start" and seen[1][0] == "ping" and seen[-1][0] == "message_stop"
    for event, raw in seen:
        data = json.loads(raw.split(b"\ndata: ", 1)[1])
        assert raw == sse_event(event, data)
    opened = [json.loads(raw.split(b"data: ")[1])["index"] for event, raw in seen if event == "content_block_start"]
    assert opened == list(range(len(opened)))
