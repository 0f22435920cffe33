"""An upstream's lone UTF-16 surrogate (a `\\uD800` escape, or a pair cut in two between chunks) reaches the client
as the same escape on every path that re-encodes the answer: repaired streams whole and event by event, the
non-stream answer, the Messages and Responses streams. JSON text can hold one only as its escape; the encoder that
wrote UTF-8 refused it, and the stream broke (a second status line, or a stream never ended). And a failure the
router did not foresee, mid-stream, ends that stream with an error event and leaves the others alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from router import relay
from tests.dialects.conftest import claude_message
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.router.test_stream_whole import CFG

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
LONE = "bad \ud800 char"
PAIR = ["a \ud83d", "\ude00 b"]  # one character, cut between two chunks


def _text(s: str) -> str:
    """`s` with each surrogate pair as the one character it stands for (how a client's UTF-16 string reads)."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def _events(texts: list[str], call_path: str | None = None) -> list[dict[str, Any]]:
    out = [chunk("m", {"role": "assistant", "content": ""}), *[chunk("m", {"content": t}) for t in texts]]
    if call_path is not None:
        args = json.dumps({"path": call_path})
        out += [chunk("m", {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                            "function": {"name": "read_file", "arguments": ""}}]}),
                *[chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 5]}}]})
                  for i in range(0, len(args), 5)]]
    return [*out, chunk("m", {}, "tool_calls" if call_path is not None else "stop")]


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


async def _chat_stream(url: str) -> tuple[str, list[dict[str, Any]], bool]:
    """(the text, the calls' arguments decoded, whether the stream ended with [DONE])."""
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
    text, args = "", ""
    for event in raw.decode().split("\n\n"):  # UTF-8 throughout: a lone surrogate can only come as an escape
        if event.startswith("data: {"):
            doc = json.loads(event[6:])
            assert "error" not in doc, doc
            delta = doc["choices"][0]["delta"] if doc["choices"] else {}
            text += delta.get("content") or ""
            args += "".join(d["function"].get("arguments") or "" for d in delta.get("tool_calls") or [])
    return text, [json.loads(args)] if args else [], raw.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("how", ["whole", "event by event"])
@pytest.mark.parametrize("texts", [[LONE], PAIR], ids=["lone", "pair cut in two"])
async def test_a_repaired_stream_passes_a_surrogate_on_as_its_escape(fakes, router, how, texts):
    events = _events(texts, call_path="a\udc00.txt")
    up = await fakes()
    up.push(Step(sse=[_sse(events)], done=False) if how == "whole" else Step(sse=events, interval=0.005))
    r = await router(CFG.format(url=up.url))
    text, calls, done = await _chat_stream(r.url)
    assert done
    assert _text(text) == _text("".join(texts))
    assert calls == [{"path": "a\udc00.txt"}]


async def test_a_repaired_answer_passes_a_surrogate_on_as_its_escape(fakes, router):
    # the text call is repaired into a structured one, so the answer is encoded again, not passed on as it came
    text = LONE + '\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a\\udc00.txt"}}\n</tool_call>'
    up = await fakes()
    up.push(Step(json=completion(text, "m")))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        msg = json.loads((await resp.read()).decode())["choices"][0]["message"]
    assert msg["content"] == LONE
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"path": "a\udc00.txt"}


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/responses"])
async def test_translated_streams_pass_a_surrogate_on_as_its_escape(fakes, router, route):
    up = await fakes()
    up.push(Step(sse=_events([LONE, *PAIR]), interval=0.005))
    r = await router(CFG.format(url=up.url))
    if route == "/v1/messages":
        body: dict[str, Any] = {"model": "m", "max_tokens": 100, "stream": True,
                                "messages": [{"role": "user", "content": "go"}],
                                "tools": [{"name": "read_file", "input_schema": TOOLS[0]["function"]["parameters"]}]}
    else:
        body = {"model": "m", "input": "go", "stream": True,
                "tools": [{"type": "function", "name": "read_file", "parameters": TOOLS[0]["function"]["parameters"]}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + route, json=body,
                                                    headers={"anthropic-version": "2023-06-01"}) as resp:
        assert resp.status == 200
        raw = await resp.read()
    docs = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: {")]
    if route == "/v1/messages":
        assert docs[-1]["type"] == "message_stop"
        text = "".join(d["delta"].get("text", "") for d in docs if d["type"] == "content_block_delta")
    else:
        assert docs[-1]["type"] == "response.completed"
        text = "".join(d["delta"] for d in docs if d["type"] == "response.output_text.delta")
    assert _text(text) == _text(LONE + "".join(PAIR))


async def test_an_unforeseen_failure_mid_stream_ends_that_stream_alone(fakes, router, monkeypatch, caplog):
    """The stream that fails gets its 200, what went before, and an `internal_error` event, then its end; the
    streams beside it finish as ever (before, the exception left the response unfinished for the client to time
    out on)."""
    feed_all = relay.OpenAIChunks.feed_all

    def failing(self: relay.OpenAIChunks, items: list[Any]) -> bytes:
        data = feed_all(self, items)
        if b"boom" in data:
            raise RuntimeError("an encoder bug")
        return data

    monkeypatch.setattr(relay.OpenAIChunks, "feed_all", failing)
    up = await fakes()
    up.push(Step(sse=_events(["fine.", " boom", " never seen"]), interval=0.02),
            *[Step(sse=_events([f"stream {i} ", "ends well"]), interval=0.02) for i in range(4)])
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}

    async def one() -> bytes:
        async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            return await asyncio.wait_for(resp.read(), 10)

    failed, *others = await asyncio.gather(one(), *[one() for _ in range(4)])
    events = [json.loads(e[6:]) for e in failed.decode().split("\n\n") if e.startswith("data: {")]
    assert "".join(d["choices"][0]["delta"].get("content") or "" for d in events[:-1] if d.get("choices")) == "fine."
    assert events[-1]["error"]["code"] == "internal_error"
    assert "an encoder bug" not in failed.decode()  # the detail is the log's
    for raw in others:
        assert raw.endswith(b"data: [DONE]\n\n") and b"ends well" in raw
    assert any("unexpected error in stream" in rec.getMessage() for rec in caplog.records)


# one character cut between two argument pieces: as raw characters in the pieces (escapes in the upstream's SSE),
# or as escapes in the arguments' own JSON text
ARG_PAIRS = {"raw": ['{"path": "a\ud83d', '\ude00b"}'], "escaped": ['{"path": "a\\ud83d', '\\ude00b"}']}
EMOJI_PATH = {"path": "a\U0001f600b"}


def _arg_events(how: str, pieces: list[str]) -> list[dict[str, Any]]:
    """A call whose arguments come in `pieces`: a structured call's fragments, or a `<tool_call>` in the text."""
    if how == "text call":
        deltas = [{"content": '<tool_call>{"name": "read_file", "arguments": ' + pieces[0]},
                  {"content": pieces[1] + "}</tool_call>"}]
    else:
        deltas = [{"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                   "function": {"name": "read_file", "arguments": ""}}]},
                  *[{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]]
    return [chunk("m", {"role": "assistant", "content": ""}), *[chunk("m", d) for d in deltas],
            chunk("m", {}, "tool_calls")]


@pytest.mark.parametrize("spelling", list(ARG_PAIRS))
@pytest.mark.parametrize("how", ["structured call", "text call"])
async def test_a_pair_cut_between_argument_pieces_reaches_a_chat_client_whole(fakes, router, how, spelling):
    """A high surrogate at the end of an argument piece waits for the next piece: joined, the argument deltas a
    client got held the two halves as two characters ('a\\ud83d\\ude00b', not 'a😀b')."""
    up = await fakes()
    up.push(Step(sse=_arg_events(how, ARG_PAIRS[spelling]), interval=0.01))
    r = await router(CFG.format(url=up.url))
    _, calls, done = await _chat_stream(r.url)
    assert done and calls == [EMOJI_PATH]


@pytest.mark.parametrize("spelling", list(ARG_PAIRS))
@pytest.mark.parametrize(("how", "repair"), [("structured call", "on"), ("text call", "on"),
                                            ("structured call", "off")])
async def test_a_pair_cut_between_argument_pieces_reaches_sdk_clients_whole(fakes, router, how, spelling, repair):
    """The anthropic SDK encodes each `partial_json` to UTF-8: a lone surrogate in one raised UnicodeEncodeError;
    the Responses deltas add up to the call's arguments. Repaired or not (without repair a text call is text)."""
    up = await fakes()
    up.push(Step(sse=_arg_events(how, ARG_PAIRS[spelling]), interval=0.01),
            Step(sse=_arg_events(how, ARG_PAIRS[spelling]), interval=0.01))
    r = await router(CFG.format(url=up.url))
    headers = {"x-agentgate-repair": repair}
    message = await claude_message(r.url, True, model="m", max_tokens=50, messages=[{"role": "user", "content": "go"}],
                                   tools=[{"name": "read_file", "input_schema": TOOLS[0]["function"]["parameters"]}],
                                   extra_headers=headers)
    assert [b.input for b in message.content if b.type == "tool_use"] == [EMOJI_PATH]
    deltas = ""
    async with r.client().responses.stream(model="m", input="go", extra_headers=headers, tools=[
            {"type": "function", "name": "read_file", "parameters": TOOLS[0]["function"]["parameters"]}]) as s:  # type: ignore[list-item]
        async for event in s:
            if event.type == "response.function_call_arguments.delta":
                deltas += event.delta
        resp = await s.get_final_response()
    assert [json.loads(i.arguments) for i in resp.output if i.type == "function_call"] == [EMOJI_PATH]
    assert json.loads(deltas) == EMOJI_PATH
