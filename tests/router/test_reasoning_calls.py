"""A call a model wrote inside its thinking reaches the client when a server's reasoning parser moved it out of the
content (vLLM and llama.cpp put everything before `</think>` in `reasoning_content`, where their tool parser never
looks): as a call inside `<think>` in the content is, when no call was made elsewhere. Before, the answer had no
call and no text, and Codex and Claude Code ended the turn with nothing done."""

from __future__ import annotations

import json

import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, claude_message
from tests.fakes.openai_upstream import Step, chunk

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MSGS = [{"role": "user", "content": "Weather in Paris?"}]
THOUGHT = ('The user wants the weather.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
           '</tool_call>')
CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


def _answer(stream: bool, content: str = "") -> Step:
    if not stream:
        return Step(json={"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content, "reasoning_content": THOUGHT}}]})
    pieces = [THOUGHT[i:i + 9] for i in range(0, len(THOUGHT), 9)]
    return Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                     *[chunk("m", {"reasoning_content": p}) for p in pieces],
                     *([chunk("m", {"content": content})] if content else []), chunk("m", {}, "stop")])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_call_in_the_reasoning_is_made(fakes, router, stream):
    up = await fakes()
    up.push(_answer(stream))
    r = await router(CFG.format(url=up.url))
    reasoning = ""
    if stream:
        got: dict[int, list[str]] = {}
        finish = None
        async for c in await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER,
                                                                 stream=True):
            if not c.choices:
                continue
            reasoning += getattr(c.choices[0].delta, "reasoning_content", None) or ""
            for t in c.choices[0].delta.tool_calls or []:
                slot = got.setdefault(t.index, ["", ""])
                slot[0] += t.function.name or ""
                slot[1] += t.function.arguments or ""
            finish = c.choices[0].finish_reason or finish
        calls = [tuple(v) for v in got.values()]
    else:
        resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
        message = resp.choices[0].message
        calls = [(t.function.name, t.function.arguments) for t in message.tool_calls or []]
        finish = resp.choices[0].finish_reason
        reasoning = getattr(message, "reasoning_content", "")
    assert [(n, json.loads(a)) for n, a in calls] == [("get_weather", {"city": "Paris"})]
    assert finish == "tool_calls" and reasoning == THOUGHT  # the reasoning as it came


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_claude_code_gets_the_tool_use(fakes, router, stream):
    up = await fakes()
    up.push(_answer(stream))
    r = await router(CFG.format(url=up.url))
    kw = {"model": "m", "max_tokens": 100, "messages": MSGS, "tools": [ANTHROPIC_WEATHER]}
    message = await claude_message(r.url, stream, **kw)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == [("get_weather", {"city": "Paris"})]
    assert message.stop_reason == "tool_use"


async def test_a_call_made_in_the_content_wins(fakes, router):
    """A call made outside the reasoning is the answer's; the one the model thought about is not added."""
    up = await fakes()
    other = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    up.push(_answer(False, other))
    r = await router(CFG.format(url=up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    calls = resp.choices[0].message.tool_calls or []
    assert [json.loads(t.function.arguments) for t in calls] == [{"city": "Rome"}]


async def test_the_reasoning_field_too(fakes, router):
    """Servers that name it `reasoning` (vLLM's newer releases, OpenRouter, Ollama): the same call, non-stream as
    streamed, and the reasoning stays under its name."""
    up = await fakes()
    up.push(Step(json={"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{
        "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "", "reasoning": THOUGHT}}]}))
    r = await router(CFG.format(url=up.url))
    raw = await r.client().chat.completions.with_raw_response.create(model="m", messages=MSGS, tools=WEATHER)
    message = json.loads(raw.http_response.text)["choices"][0]["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]
    assert message["reasoning"] == THOUGHT and "reasoning_content" not in message
