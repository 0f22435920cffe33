"""Chat `tool_choice: {"type": "allowed_tools", ...}` on the repair path (OpenAI Chat Completions: "Constrains the
tools available to the model to a pre-defined set"; `mode` "auto" lets the model answer in text, "required" asks
for a call to one of the allowed tools). Repair read it as `auto` for what may be promoted, and as a demand for a
call (any dict tool_choice) when judging the answer."""

from __future__ import annotations

import json

import openai
import pytest

from repair.validate import validate_message
from tests.fakes.openai_upstream import Step, chunk, completion, message_of, stream_of
from tests.router.one_tool import MSGS
from tests.router.one_tool import config as cfg

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
             "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "delete_file", "parameters": {
             "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]


def allowed(mode: str) -> dict:
    return {"type": "allowed_tools",
            "allowed_tools": {"mode": mode, "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}




async def test_allowed_tools_auto_prose_answer_is_not_a_missing_call(fakes, router):
    """mode "auto": a text answer is allowed. With on_failure: error it came back as a 502 invalid_tool_call
    ("a tool call was required but the model made none")."""
    up = await fakes()
    up.push(Step(json=completion("It is sunny in Paris.", "m")))
    r = await router(cfg(up.url, "{on_failure: error}"))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS,
                                                    tool_choice=allowed("auto"))
    assert resp.choices[0].message.content == "It is sunny in Paris."
    assert resp.choices[0].finish_reason == "stop"


async def test_allowed_tools_auto_prose_answer_is_not_re_asked(fakes, router):
    """With on_failure: retry the prose answer went back to the model with "Your previous reply did not contain a
    valid tool call" (a second upstream request), though the client allowed a text answer."""
    up = await fakes()
    up.push(Step(json=completion("It is sunny in Paris.", "m")),
            Step(json=completion("still prose", "m")))
    r = await router(cfg(up.url, "{on_failure: retry, retries: 1}"))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS,
                                                    tool_choice=allowed("auto"))
    assert len(up.requests) == 1
    assert resp.choices[0].message.content == "It is sunny in Paris."


CALL_OUTSIDE = ('Cleaning up. <tool_call>{"name": "delete_file", "arguments": {"path": "/tmp/x"}}</tool_call>')


@pytest.mark.parametrize("mode", ["auto", "required"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_text_call_to_a_tool_outside_allowed_tools_is_not_promoted(fakes, router, mode, stream):
    """A call written in the text to a declared tool that `allowed_tools` leaves out must not come out as a
    tool call (OpenAI never returns one; a named tool_choice refuses such a call as `not_allowed`). It was
    promoted into a `delete_file` call on both paths."""
    up = await fakes()
    if stream:
        pieces = [CALL_OUTSIDE[i:i + 9] for i in range(0, len(CALL_OUTSIDE), 9)]
        up.push(Step(sse=stream_of(pieces, "m"), interval=0.005))
    else:
        up.push(Step(json=completion(CALL_OUTSIDE, "m")))
    r = await router(cfg(up.url))
    c = r.client()
    if stream:
        docs = []
        async for ch in await c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS, stream=True,
                                                        tool_choice=allowed(mode)):
            docs.append(ch.model_dump())
        msg, _ = message_of(docs)
        names = [t["function"]["name"] for t in msg.get("tool_calls") or []]
    else:
        resp = await c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS, tool_choice=allowed(mode))
        names = [t.function.name for t in resp.choices[0].message.tool_calls or []]
    assert "delete_file" not in names


def native_call(name: str, args: dict) -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def native_stream(name: str, args: dict) -> list[dict]:
    return [chunk("m", {"role": "assistant", "content": None}),
            chunk("m", {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                        "function": {"name": name, "arguments": ""}}]}),
            chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(args)}}]}),
            chunk("m", {}, "tool_calls")]


@pytest.mark.parametrize(("name", "args", "kept"), [("get_weather", {"city": "Paris"}, True),
                                                    ("delete_file", {"path": "/tmp/x"}, False)])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_structured_calls_are_held_to_the_allowed_set(fakes, router, name, args, kept, stream):
    """The upstream's own structured call: one to an allowed tool goes out; one to a tool the set leaves out
    does not (reported `not_allowed`, as with a named tool_choice)."""
    up = await fakes()
    up.push(Step(sse=native_stream(name, args), interval=0.005) if stream
            else Step(json=completion(None, "m", tool_calls=[native_call(name, args)], finish_reason="tool_calls")))
    r = await router(cfg(up.url))
    ask = dict(model="m", messages=MSGS, tools=TOOLS, tool_choice=allowed("auto"))
    if stream:
        docs = [ch.model_dump() async for ch in await r.client().chat.completions.create(**ask, stream=True)]
        msg, _ = message_of(docs)
        names = [t["function"]["name"] for t in msg.get("tool_calls") or []]
    else:
        resp = await r.client().chat.completions.create(**ask)
        names = [t.function.name for t in resp.choices[0].message.tool_calls or []]
    assert names == ([name] if kept else [])


async def test_allowed_tools_required_without_an_allowed_call_is_no_call(fakes, router):
    """mode "required": a prose answer, or a call outside the set, is no call (a 502 with on_failure: error)."""
    up = await fakes()
    up.push(Step(json=completion("It is sunny in Paris.", "m")), Step(json=completion(CALL_OUTSIDE, "m")))
    r = await router(cfg(up.url, "{on_failure: error}"))
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as err:
            await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS,
                                                     tool_choice=allowed("required"))
        assert err.value.status_code == 502


async def test_a_json_answer_under_allowed_tools_auto_is_data(fakes, router):
    """With `response_format` json and mode "auto" an answer need not be a call: a JSON object naming a tool is
    the data asked for, as without tool_choice."""
    data = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    up = await fakes()
    up.push(Step(json=completion(data, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS,
                                                    tool_choice=allowed("auto"),
                                                    response_format={"type": "json_object"})
    assert resp.choices[0].message.content == data and not resp.choices[0].message.tool_calls


def test_the_validator_holds_calls_to_the_allowed_set() -> None:
    """A local engine's answer (validated, not repaired) is held to the set as repair's is."""
    calls = [native_call("delete_file", {"path": "/tmp/x"}), {**native_call("get_weather", {"city": "Paris"}),
                                                              "id": "call_2"}]
    checked = validate_message(None, TOOLS, tool_calls=calls, tool_choice=allowed("auto"))
    assert [c["function"]["name"] for c in checked.tool_calls] == ["get_weather"]
    assert [e.kind for e in checked.errors] == ["not_allowed"]
    assert [e.kind for e in validate_message("prose", TOOLS, tool_choice=allowed("auto")).errors] == []
    assert [e.kind for e in validate_message("prose", TOOLS, tool_choice=allowed("required")).errors] == ["no_call"]
