"""The repairing stream's message does not depend on how its upstream's events arrive: all in the first read (the
stream repaired as one answer, each kind of piece fed once), or one read per event (repaired as it arrives), for
random answers made of prose, `<think>` blocks, Hermes calls (valid, with a string for an integer, with single
quotes, unclosed), native calls cut into random pieces and reasoning_content, under each repair policy that lets a
stream through. The whole stream's message is the one-shot repair's (the non-stream answer's); event by event it is
too, but for a call sent piece by piece that then fails, which is reported (`failed_after_header`) and completed, or,
cut inside its arguments, left as cut."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair import ToolIndex, repair_message
from router.chat_types import StreamChunk, chunk_items
from router.config.model import RepairPolicy
from router.exchange import Exchange
from router.pipeline import _Checker, _Envelope, _finish_reason, _repaired
from router.relay import UpstreamReader
from tests.fakes.openai_upstream import message_of
from tests.fakes.reads import Opened

TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "lines": {"type": "integer"}},
    "required": ["path"]}}},
    {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
INDEX = ToolIndex.of(TOOLS)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


TEXTS = st.sampled_from([
    "Plain prose, nothing to call.",
    "<think>\nThe path is a.txt.\n</think>\n\n",
    '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "lines": 3}}\n</tool_call>',
    '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "lines": "12"}}\n</tool_call>',
    "<tool_call>{'name': 'read_file', 'arguments': {'path': 'b'}}</tool_call>",
    '<tool_call>\n{"name": "read_file", "arguments": {"path": "c"}}',
    "Then done.\n",
])
NATIVE_ARGS = st.sampled_from(['{"path": "a.txt"}', '{"path": "a.txt", "lines": "7"}', "{'path': 'q'}",
                               '{"path": "x", "lines": 2}', '{"path": '])


def _cut(draw: Any, text: str) -> list[str]:
    """`text` in random pieces."""
    points = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=6))))
    bounds = [0, *[p for p in points if p < len(text)], len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def answers(draw: Any) -> list[dict[str, Any]]:
    events = [_chunk({"role": "assistant", "content": ""})]
    if draw(st.booleans()):
        events += [_chunk({"reasoning_content": p}) for p in _cut(draw, "Check the path first.")]
    for text in draw(st.lists(TEXTS, max_size=3)):
        events += [_chunk({"content": p}) for p in _cut(draw, text)]
    calls = draw(st.lists(st.tuples(st.sampled_from(["write_file", "read_file", "remove_file"]), NATIVE_ARGS),
                          max_size=2))
    for i, (name, args) in enumerate(calls):
        events.append(_chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                              "function": {"name": name, "arguments": ""}}]}))
        events += [_chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in _cut(draw, args)]
    events.append(_chunk({}, "tool_calls" if calls else "stop"))
    return events


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


async def _message(reads: list[bytes], policy: RepairPolicy) -> dict[str, Any]:
    """What a client assembles from the repaired stream."""
    env = _Envelope("m")
    ex = Exchange("r", "chat")
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    reader = UpstreamReader(Opened(reads), ex, None)
    checker = _Checker(env, policy, None, retry_possible=False)
    content, reasoning, calls, finish = "", "", {}, None
    async for batch in _repaired(reader, env, ex, body, policy, INDEX, 1 << 20, checker):
        assert isinstance(batch, list)
        for item in batch:
            for part in chunk_items(item).parts:
                content += part.content
                reasoning += part.reasoning
                finish = part.finish_reason or finish
                for d in part.tool_deltas:
                    call = calls.setdefault(d["index"], ["", ""])
                    call[0] += (d.get("function") or {}).get("name") or ""
                    call[1] += (d.get("function") or {}).get("arguments") or ""
            if type(item) is not StreamChunk and item.get("choices"):
                finish = item["choices"][0].get("finish_reason") or finish
    return {"content": content, "reasoning": reasoning, "calls": [calls[k] for k in sorted(calls)],
            "finish_reason": finish, "outcome": ex.tool_outcome, "repairs": ex.repairs}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.sampled_from([RepairPolicy(), RepairPolicy(on_failure="error"), RepairPolicy(mode="detect")]))
def test_a_whole_stream_and_the_same_stream_event_by_event_give_the_same_message(events: list[dict[str, Any]],
                                                                                policy: RepairPolicy) -> None:
    data = [_event(e) for e in events] + [b"data: [DONE]\n\n"]
    try:
        whole = asyncio.run(_message([b"".join(data)], policy))
    except Exception as exc:  # a refusal (on_failure "error") is the same refusal either way
        whole = {"raised": type(exc).__name__, "detail": str(exc)}
    try:
        by_event = asyncio.run(_message(data, policy))
    except Exception as exc:
        by_event = {"raised": type(exc).__name__, "detail": str(exc)}
    if "raised" not in whole:
        assert {k: whole[k] for k in ("content", "reasoning", "calls", "finish_reason")} == _one_shot(events, policy)
    if "raised" not in whole and "raised" not in by_event and whole != by_event:
        if by_event["outcome"] != "failed" and by_event["calls"] != whole["calls"]:
            # a text call that went out before a structured call began comes first (a whole answer puts the
            # structured calls first: it does not say which came first), the only other allowed difference
            assert by_event["calls"] == _one_shot(events, policy, text_calls_first=True)["calls"], (whole, by_event)
            assert {**by_event, "calls": None} == {**whole, "calls": None}
            return
        # with on_failure "content" a call sent piece by piece that then fails is reported (failed_after_header) and
        # completed, or left as cut when the stream ended inside its arguments; sent whole it is left out, as non-stream
        assert by_event["outcome"] == "failed" and policy.on_failure == "content", (whole, by_event)
        return
    assert whole == by_event


def _one_shot(events: list[dict[str, Any]], policy: RepairPolicy, text_calls_first: bool = False) -> dict[str, Any]:
    """The message the same answer gets non-stream (`repair_message` on the whole text and calls)."""
    message, finish = message_of(events)
    result = repair_message(message["content"], INDEX, tool_calls=message.get("tool_calls"),
                            reasoning_content=message.get("reasoning_content"), format=policy.format,
                            mode=policy.mode, canonical=True, keep_failed_calls=policy.on_failure == "content",
                            text_calls_first=text_calls_first)
    return {"content": result.content or "", "reasoning": result.reasoning_content or "",
            "calls": [[c["function"]["name"], c["function"]["arguments"]] for c in result.tool_calls],
            "finish_reason": _finish_reason(finish, bool(result.tool_calls))}
