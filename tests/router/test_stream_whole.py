"""A stream whose first read holds all of it (an upstream that writes it at once, a buffering gateway, a loaded
router) is repaired as one answer: each kind of piece joined and fed once, calls sent whole. Whatever the answer,
the client assembles the same message from it as from the same stream arriving event by event, and as from the
same answer non-stream; and each call of the whole stream comes in one delta, header and arguments."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, chunk, message_of

PARAMS = {"type": "object", "properties": {"path": {"type": "string"}, "lines": {"type": "integer"},
                                           "content": {"type": "string"}}, "required": ["path"]}
TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": PARAMS}},
         {"type": "function", "function": {"name": "read_file", "parameters": {
             "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


def _pieces(text: str, n: int = 7) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


def _call(index: int, cid: str, name: str, args: str) -> list[dict[str, Any]]:
    head = chunk("m", {"tool_calls": [{"index": index, "id": cid, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
    return [head, *[chunk("m", {"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                    for p in _pieces(args)]]


HERMES = ('I will write it.\n<tool_call>\n{"name": "write_file", "arguments": {"path": "a.txt", "lines": "12", '
          '"content": "x"}}\n</tool_call>')
THINK = '<think>\nThe file is short.\n</think>\n\n<tool_call>\n{"name": "read_file", "arguments": {"path": "b"}}\n' \
        '</tool_call>'
ANSWERS: dict[str, tuple[list[dict[str, Any]], str]] = {
    # (the events after the role chunk, the finish reason)
    "hermes": ([chunk("m", {"content": p}) for p in _pieces(HERMES)], "stop"),
    "think": ([chunk("m", {"content": p}) for p in _pieces(THINK)], "stop"),
    "prose": ([chunk("m", {"content": p}) for p in _pieces("Nothing to do here; the file is as it should be.")],
              "stop"),
    "native": (_call(0, "call_1", "write_file", '{"path": "a.txt", "lines": "12"}'), "tool_calls"),
    "native_text_first": ([chunk("m", {"content": "Writing."}),
                           *_call(0, "call_1", "write_file", '{"path": "a.txt"}')], "tool_calls"),
    "two_calls": ([*_call(0, "call_1", "read_file", '{"path": "a"}'),
                   *_call(1, "call_2", "read_file", '{"path": "b"}')], "tool_calls"),
    "single_quotes": (_call(0, "call_1", "write_file", "{'path': 'a.txt', 'lines': 3}"), "tool_calls"),
    "undeclared": (_call(0, "call_1", "delete_file", '{"path": "a.txt"}'), "tool_calls"),
    "reasoning": ([chunk("m", {"reasoning_content": p}) for p in _pieces("Check the path first.")]
                  + _call(0, "call_1", "read_file", '{"path": "a"}'), "tool_calls"),
}


def _events(kind: str) -> list[dict[str, Any]]:
    body, finish = ANSWERS[kind]
    usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
    return [chunk("m", {"role": "assistant", "content": ""}), *body, chunk("m", {}, finish), usage]


def _whole(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _completion(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The same answer non-stream."""
    message, finish = message_of(events)
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}


async def _stream(url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the message the client assembles, the tool-call deltas as they came)."""
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    content, reasoning, calls, finish, deltas = "", "", {}, None, []
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        text = (await resp.read()).decode()
    for event in text.split("\n\n"):
        if not event.startswith("data: ") or event == "data: [DONE]":
            continue
        doc = json.loads(event[6:])
        for choice in doc["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for d in delta.get("tool_calls") or []:
                deltas.append(d)
                call = calls.setdefault(d["index"], {"name": "", "arguments": ""})
                call["name"] += d.get("function", {}).get("name") or ""
                call["arguments"] += d.get("function", {}).get("arguments") or ""
            finish = choice["finish_reason"] or finish
    return {"content": content, "reasoning": reasoning, "calls": [calls[k] for k in sorted(calls)],
            "finish_reason": finish}, deltas


async def _whole_answer(url: str) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        choice = (await resp.json())["choices"][0]
    msg = choice["message"]
    return {"content": msg.get("content") or "", "reasoning": msg.get("reasoning_content") or "",
            "calls": [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                      for c in msg.get("tool_calls") or []], "finish_reason": choice["finish_reason"]}


@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_a_stream_that_comes_whole_says_what_it_says_event_by_event(fakes, router, kind):
    events = _events(kind)
    up = await fakes()
    up.push(Step(sse=[_whole(events)], done=False),  # one write: the router reads it at once
            Step(sse=events, interval=0.005),  # event by event
            Step(json=_completion(events)))
    r = await router(CFG.format(url=up.url))
    whole, whole_deltas = await _stream(r.url)
    paced, _ = await _stream(r.url)
    assert whole == paced
    assert whole == await _whole_answer(r.url)
    if whole["calls"]:  # each call whole, in the delta that opens it
        assert len(whole_deltas) == len(whole["calls"])
        assert all(d.get("id") and d["function"].get("name") for d in whole_deltas)


async def test_a_whole_stream_past_the_repair_bound_passes_its_call_on_as_event_by_event(fakes, router):
    """Past `max_stream_repair_kchars` a stream goes through unrepaired, whole or not: the call the model made
    reaches the client with all its arguments (held to the end as a whole stream's calls are, it was dropped, and
    the answer finished "stop" with nothing in it)."""
    args = json.dumps({"path": "a.txt", "content": "x" * 3000})
    events = [chunk("m", {"role": "assistant", "content": ""}), *_call(0, "call_1", "write_file", args),
              chunk("m", {}, "tool_calls")]
    up = await fakes()
    up.push(Step(sse=[_whole(events)], done=False), Step(sse=events, interval=0.005))
    r = await router(CFG.format(url=up.url) + "server: {max_stream_repair_kchars: 1}\n")
    whole, _ = await _stream(r.url)
    paced, _ = await _stream(r.url)
    assert whole == paced
    assert whole["calls"] == [{"name": "write_file", "arguments": args}] and whole["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("how", ["resent", "cut"])
async def test_a_name_resent_with_every_delta_or_cut_in_pieces_names_the_call(fakes, router, how):
    """Some upstreams resend a call's whole name (and id) with every delta (MiniMax behind NVIDIA NIM), others cut
    the name in pieces: either way the call names its tool (appended, the resent name named none and the call was
    lost, the answer finishing "stop")."""
    args = '{"path": "a.txt", "lines": 3}'
    names = ["write_file"] * 7 if how == "resent" else ["write", "_file", "", "", "", "", ""]
    events = [chunk("m", {"role": "assistant", "content": ""}),
              *[chunk("m", {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                            "function": {"name": n, "arguments": p}}]})
                for n, p in zip(names, _pieces(args), strict=False)],
              chunk("m", {}, "tool_calls")]
    up = await fakes()
    up.push(Step(sse=[_whole(events)], done=False), Step(sse=events, interval=0.005))
    r = await router(CFG.format(url=up.url))
    for _ in range(2):  # whole, then event by event
        got, _ = await _stream(r.url)
        assert got["calls"] == [{"name": "write_file", "arguments": args}] and got["finish_reason"] == "tool_calls"
