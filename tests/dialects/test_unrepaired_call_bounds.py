"""What a translated stream holds of an unrepaired call (an upstream's own tool-call deltas, nothing repairing
them) is bounded: a call whose arguments never end keeps no more than RAW_ARGS_MAX of them for its block's end
(a Messages block kept every piece it had sent), and a call whose name has not come yet waits with at most
RAW_ARGS_MAX of arguments (past it, it opens without a name, as at the stream's end)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.dialects.anthropic_in import MessagesStream
from router.dialects.common import MAX_STREAM_CALLS, RAW_ARGS_MAX
from router.dialects.responses import ResponsesStream, parse_request
from router.errors import ApiError
from tests.fakes.openai_upstream import chunk

PIECE = "x" * 1000
PIECES = 3 * RAW_ARGS_MAX // len(PIECE)  # 3 MB of arguments


def _call(args: str, head: bool) -> dict[str, Any]:
    fn = {"name": "f", "arguments": args} if head else {"arguments": args}
    return chunk("m", {"tool_calls": [{"index": 0, **({"id": "c1", "type": "function"} if head else {}),
                                       "function": fn}]})


def _events(data: list[bytes]) -> list[dict[str, Any]]:
    text = b"".join(data).decode().strip()
    return [json.loads(b.split("data: ", 1)[1]) for b in text.split("\n\n") if "data: " in b]


def test_a_messages_call_whose_arguments_never_end_keeps_a_bounded_part_of_them():
    enc = MessagesStream("m", [])
    sent = sum(len(e["delta"].get("partial_json", "")) for e in _events(enc.feed(_call('{"a": "', head=True)))
                     if e["type"] == "content_block_delta")
    for _ in range(PIECES):
        out = enc.feed(_call(PIECE, head=False))
        sent += sum(len(e["delta"]["partial_json"]) for e in _events(out))
        held = enc._input
        assert held is not None
        assert sum(map(len, held.sent)) <= RAW_ARGS_MAX + len(PIECE)
    assert sent == PIECES * len(PIECE) + len('{"a": "')  # every piece went out as it came
    _events(enc.finish())


def _nameless(args: str) -> dict[str, Any]:
    return chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args}}]})


def _held(enc: Any) -> int:
    return sum(len(a) for _, args in enc._nameless.values() for a in args)


def test_a_messages_call_whose_name_never_comes_waits_with_bounded_arguments():
    enc = MessagesStream("m", [])
    enc.feed(_nameless('{"a": "'))
    out: list[bytes] = []
    for _ in range(PIECES):
        out += enc.feed(_nameless(PIECE))
        assert _held(enc) <= RAW_ARGS_MAX + len(PIECE)
    out += enc.finish()
    events = _events(out)
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] == ["tool_use"]
    args = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert args.startswith('{"a": "xxx') and len(args) >= PIECES * len(PIECE)
    assert events[-1]["type"] == "message_stop"


def test_a_responses_call_whose_name_never_comes_waits_with_bounded_arguments():
    req = parse_request({"model": "m", "input": "hi", "stream": True, "store": False})
    enc = ResponsesStream(req, "resp_1", max_chars=8 * RAW_ARGS_MAX)
    enc.feed(_nameless('{"a": "'))
    for _ in range(PIECES):
        enc.feed(_nameless(PIECE))
        assert _held(enc) <= RAW_ARGS_MAX + len(PIECE)


def _headed(i: int) -> dict[str, Any]:
    return chunk("m", {"tool_calls": [{"index": i, "id": f"c{i}", "type": "function",
                                       "function": {"name": "f", "arguments": "{}"}}]})


def _encoders() -> list[Any]:
    req = parse_request({"model": "m", "input": "hi", "stream": True, "store": False})
    return [MessagesStream("m", []), ResponsesStream(req, "resp_1", max_chars=8 * RAW_ARGS_MAX)]


def test_a_stream_of_calls_without_end_is_ended_past_the_bound_of_calls():
    """Each call an unrepaired translated stream opens keeps a few records until the end (its index, id, block or
    item): an upstream making calls without end grew the router with each. Past MAX_STREAM_CALLS, the stream ends
    with the route's terminal error; up to it, every call goes out."""
    for enc in _encoders():
        for i in range(MAX_STREAM_CALLS):
            enc.feed(_headed(i))
        with pytest.raises(ApiError) as info:
            for i in range(MAX_STREAM_CALLS, MAX_STREAM_CALLS + 10):
                enc.feed(_headed(i))
        assert info.value.code == "response_too_large" and info.value.status == 502
