"""A call cut off by the end of a stream (the token limit, a stop string), on every route, through the real SDKs.

A native call cut mid-arguments (`finish_reason: "length"`) ended a Messages answer with `stop_reason: "tool_use"`,
so Claude Code ran a Write whose content was cut short; it is `max_tokens`, as Anthropic answers then. A call whose
header and argument pieces went out and that the stream then cut was completed: the closing `"}` went out after
them, so Claude Code, Codex and openai-agents ran the cut command (`printf 'hello wor`). Nothing is completed now:
on the chat route and in a Responses function_call item the arguments stay the prefix the client already has
(invalid JSON, as OpenAI's own API leaves a call cut by max_tokens; the item `incomplete`), as do a Messages
tool_use block's `partial_json` pieces; the failure is reported `failed_after_header` (truncated)."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from tests.dialects.conftest import CFG, claude
from tests.dialects.test_messages import raw_events
from tests.fakes.openai_upstream import Step, chunk, completion

SHELL = {"name": "shell", "description": "Run a command",
         "parameters": {"type": "object", "properties": {"description": {"type": "string"},
                                                         "command": {"type": "string"}},
                        "required": ["command"]}}
CUT = '{"description": "Say hello", "command": "printf \'hello wor'  # cut inside the command
TEXT = 'Let me run it.\n<tool_call>\n{"name": "shell", "arguments": ' + CUT


def _native(finish: str) -> list[dict]:
    return [chunk("m", {"role": "assistant", "content": ""}),
            chunk("m", {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                        "function": {"name": "shell", "arguments": ""}}]}),
            *[chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": CUT[i:i + 7]}}]})
              for i in range(0, len(CUT), 7)],
            chunk("m", {}, finish)]


def _text(finish: str) -> list[dict]:
    return [chunk("m", {"role": "assistant", "content": ""}),
            *[chunk("m", {"content": TEXT[i:i + 6]}) for i in range(0, len(TEXT), 6)], chunk("m", {}, finish)]


SHAPES = {"native call": _native, "text call": _text}


@pytest.mark.parametrize("finish", ["length", "stop"], ids=["max_tokens", "stop string"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_chat_stream_sends_the_cut_arguments_as_cut(fakes, router, shape, finish):
    up = await fakes()
    up.push(Step(sse=SHAPES[shape](finish), interval=0.002))
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "stream": True, "tools": [{"type": "function", "function": SHELL}],
            "messages": [{"role": "user", "content": "greet"}]}
    docs = []
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {"):
                docs.append(json.loads(line[6:]))
    args = "".join(t["function"].get("arguments") or "" for d in docs for c in d["choices"]
                   for t in c["delta"].get("tool_calls") or [])
    assert args == CUT  # as the model left them: no closing `"}` invented
    finishes = [c["finish_reason"] for d in docs for c in d["choices"] if c["finish_reason"]]
    assert finishes == ["length" if finish == "length" else "tool_calls"]
    (report,) = [d["agentgate"]["tool_call_failures"] for d in docs if "agentgate" in d]
    assert [(f["kind"], "truncated" in f["detail"]) for f in report] == [("failed_after_header", True)]


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_messages_stream_sends_the_cut_arguments_as_cut(fakes, router, shape):
    """The tool_use block's `partial_json` adds up to the prefix the model wrote, never closed. The anthropic SDK
    reads the pieces as they add up and drops a string left open (Claude Code refuses input that does not parse):
    the cut command is not taken for a whole one."""
    up = await fakes()
    for _ in range(2):
        up.push(Step(sse=SHAPES[shape]("length"), interval=0.002))
    r = await router(CFG.format(url=up.url))
    tool = {"name": SHELL["name"], "description": SHELL["description"], "input_schema": SHELL["parameters"]}
    kw = {"model": "m", "max_tokens": 20, "tools": [tool], "messages": [{"role": "user", "content": "greet"}]}
    async with claude(r.url).messages.stream(**kw) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"description": "Say hello"}]
    raw = await raw_events(r.url, {**kw, "stream": True})
    uses = [d["index"] for e, d in raw if e == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    assert len(uses) == 1
    pieces = [d["delta"]["partial_json"] for e, d in raw if e == "content_block_delta" and d["index"] == uses[0]]
    assert "".join(pieces) == CUT  # never closed
    assert raw[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_messages_stream_never_sends_a_cut_number(fakes, router):
    """The anthropic SDK reads the pieces as they add up (`partial_mode`): a string left open is dropped, but a
    number at their end is taken whole (`12` of `1200`). A number goes out only once it is whole, so one the stream
    cut never does (what lets the Messages route send a call's pieces as they come, as it did)."""
    args = '{"description": "Wait", "seconds": 12'
    events = [chunk("m", {"role": "assistant", "content": ""}),
              chunk("m", {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                          "function": {"name": "shell", "arguments": ""}}]}),
              *[chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 5]}}]})
                for i in range(0, len(args), 5)], chunk("m", {}, "length")]
    up = await fakes()
    up.push(Step(sse=events, interval=0.002))
    r = await router(CFG.format(url=up.url))
    tool = {"name": "shell", "input_schema": {"type": "object", "properties": {"description": {"type": "string"},
                                                                              "seconds": {"type": "integer"}}}}
    kw = {"model": "m", "max_tokens": 20, "tools": [tool], "messages": [{"role": "user", "content": "wait"}]}
    async with claude(r.url).messages.stream(**kw) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"description": "Wait"}]


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_responses_stream_keeps_the_cut_arguments(fakes, router, shape):
    up = await fakes()
    up.push(Step(sse=SHAPES[shape]("length"), interval=0.002))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    deltas: dict[str, str] = {}
    done: dict[str, str] = {}
    last = None
    items = []
    async with client.responses.stream(model="m", input="greet", tools=[{"type": "function", **SHELL}]) as stream:  # type: ignore[list-item]
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas[event.item_id] = deltas.get(event.item_id, "") + event.delta
            elif event.type == "response.function_call_arguments.done":
                done[event.item_id] = event.arguments
            elif event.type == "response.output_item.done":
                items.append(event.item)
            last = event
    assert list(deltas.values()) == list(done.values()) == [CUT]  # as the model left them, never closed
    assert last is not None and last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    calls = [i for i in last.response.output if i.type == "function_call"]
    assert [(c.arguments, c.status) for c in calls] == [(CUT, "incomplete")]
    assert [i.status for i in last.response.output] == [i.status for i in items]


async def test_responses_whole_marks_the_cut_item(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("The answer is", "m", finish_reason="length")))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    resp = await client.responses.create(model="m", input="question?", max_output_tokens=16)
    assert resp.status == "incomplete" and [i.status for i in resp.output] == ["incomplete"]
