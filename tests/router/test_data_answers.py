"""A request that asks for a JSON answer (`response_format` json_object / json_schema, and what the Responses and
Messages routes turn into it) gets its JSON as content, even when the object names a declared tool: it is the data
asked for, and turning it into a call would invent one. A format's own call markup is still a call."""

from __future__ import annotations

import json

import pytest

from repair import StreamRepairer, repair_message
from repair.types import ContentDelta, ToolCallDelta
from tests.fakes.openai_upstream import Step, completion, stream_of

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MSGS = [{"role": "user", "content": "Give me a sample call as JSON."}]
DATA = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
FENCED = f"```json\n{DATA}\n```"
MARKUP = f"<tool_call>{DATA}</tool_call>"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}}}
FORMATS = [{"type": "json_object"},
           {"type": "json_schema", "json_schema": {"name": "call", "schema": SCHEMA}}]


def cfg(url: str) -> str:
    return f"""
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


def _stream_text(repairer: StreamRepairer, text: str) -> tuple[str, list[str]]:
    content, names = "", []
    for ev in [*repairer.feed(text), *repairer.finish()]:
        if isinstance(ev, ContentDelta):
            content += ev.text
        elif isinstance(ev, ToolCallDelta):
            names.append(ev.name)
    return content, names


@pytest.mark.parametrize("text", [DATA, FENCED, f"[{DATA}]"])
def test_repair_leaves_generic_forms_alone_when_told(text: str) -> None:
    assert repair_message(text, TOOLS).tool_calls  # the bare-JSON rule, as documented
    result = repair_message(text, TOOLS, generic_forms=False)
    assert result.tool_calls == [] and result.content == text and result.errors == []
    content, names = _stream_text(StreamRepairer(TOOLS, generic_forms=False), text)
    assert content == text and names == []


def test_format_markup_is_still_a_call_without_generic_forms() -> None:
    result = repair_message(MARKUP, TOOLS, generic_forms=False)
    assert [c["function"]["name"] for c in result.tool_calls] == ["get_weather"]
    _, names = _stream_text(StreamRepairer(TOOLS, generic_forms=False), MARKUP)
    assert names == ["get_weather"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_chat_json_answer_stays_content(fakes, router, fmt) -> None:
    up = await fakes()
    up.push(Step(json=completion(DATA, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS, response_format=fmt)
    choice = resp.choices[0]
    assert choice.message.content == DATA and not choice.message.tool_calls and choice.finish_reason == "stop"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_chat_json_answer_streams_as_content(fakes, router, fmt) -> None:
    up = await fakes()
    up.push(Step(sse=stream_of(['{"name": "get_', 'weather", "arguments": {"city": "Paris"}}'], "m")))
    r = await router(cfg(up.url))
    stream = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS, response_format=fmt,
                                                      stream=True)
    text, calls, finish = "", [], None
    async for c in stream:
        if c.choices:
            text += c.choices[0].delta.content or ""
            calls += c.choices[0].delta.tool_calls or []
            finish = c.choices[0].finish_reason or finish
    assert text == DATA and calls == [] and finish == "stop"


async def test_chat_markup_is_a_call_even_with_a_json_format(fakes, router) -> None:
    up = await fakes()
    up.push(Step(json=completion(MARKUP, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS,
                                                    response_format={"type": "json_object"})
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


async def test_without_a_json_format_the_bare_object_is_a_call(fakes, router) -> None:
    up = await fakes()
    up.push(Step(json=completion(DATA, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS)
    assert [c.function.name for c in resp.choices[0].message.tool_calls] == ["get_weather"]


async def test_responses_structured_output_stays_text(fakes, router) -> None:
    up = await fakes()
    up.push(Step(json=completion(DATA, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().responses.create(
        model="m", input="Give me a sample call as JSON.",
        tools=[{"type": "function", "name": "get_weather", "parameters": TOOLS[0]["function"]["parameters"]}],
        text={"format": {"type": "json_schema", "name": "call", "schema": SCHEMA}})
    assert [item.type for item in resp.output] == ["message"] and resp.output_text == DATA
    assert up.requests[0].body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_required_call_is_a_call_even_with_a_json_format(fakes, router, choice, stream) -> None:
    """With tool_choice required or named the answer must be a call (openai-agents sends it with the
    `response_format` of its output type): the bare object is the call the model made."""
    up = await fakes()
    up.push(Step(sse=stream_of([DATA], "m")) if stream else Step(json=completion(DATA, "m")))
    r = await router(cfg(up.url))
    ask = {"model": "m", "messages": MSGS, "tools": TOOLS, "response_format": {"type": "json_object"},
           "tool_choice": choice}
    if stream:
        names = []
        async for c in await r.client().chat.completions.create(**ask, stream=True):
            names += [t.function.name for t in (c.choices[0].delta.tool_calls or []) if t.function.name] \
                if c.choices else []
    else:
        resp = await r.client().chat.completions.create(**ask)
        names = [c.function.name for c in resp.choices[0].message.tool_calls or []]
    assert names == ["get_weather"]
