"""Parallel calls from an upstream that streams each at index 0 (Ollama, Gemini's OpenAI endpoint, gateways that
translate Responses or Gemini streams) reach every route's client as separate calls, through the real SDKs. Joined
by index they made one call of arguments `{...}{...}`, which the repair then dropped: the answer came back
finishing "stop" with nothing in it. Unrepaired (`repair: {mode: off}`), the translated routes told them apart
too (one tool_use block or function_call item took all the arguments). Calls at their own indexes whose
fragments interleave (every header first) reach the translated routes whole too: a tool_use block or function_call
item cannot reopen, and unrepaired, each call's block after the first lost its arguments to it; nor can text or
reasoning that comes while a call's arguments are still coming close its block (they wait)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CHAT_WEATHER, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
  - {{name: raw, provider: lab, repair: {{mode: off}}}}
"""
CITIES = ["Paris", "Lyon", "Nice"]


def _interleaved() -> list[dict[str, Any]]:
    """Each call at its own index, every header first, then the arguments a piece of each call in turn."""
    heads = [chunk("m", {"tool_calls": [{"index": n, "id": f"call_{n}", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]})
             for n in range(len(CITIES))]
    args = [json.dumps({"city": city}) for city in CITIES]
    pieces = [chunk("m", {"tool_calls": [{"index": n, "function": {"arguments": a[i:i + 4]}}]})
              for i in range(0, max(map(len, args)), 4) for n, a in enumerate(args) if a[i:i + 4]]
    return heads + pieces


def _events(shape: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    if shape == "interleaved":
        calls = _interleaved()
    elif shape == "text inside calls":  # (reasoning and text while the first call's arguments are still coming)
        calls = _interleaved()
        calls[len(CITIES) + 1:len(CITIES) + 1] = [chunk("m", {"reasoning_content": "hm"}),
                                                   chunk("m", {"content": "One moment."})]
    for n, city in enumerate(CITIES if shape in SHAPES[:2] else []):
        args = json.dumps({"city": city})
        head = {"index": 0, "id": f"call_{n}", "type": "function", "function": {"name": "get_weather"}}
        if shape == "whole calls":
            calls.append(chunk("m", {"tool_calls": [{**head, "function": {**head["function"], "arguments": args}}]}))
        else:
            calls.append(chunk("m", {"tool_calls": [{**head, "function": {**head["function"], "arguments": ""}}]}))
            calls += [chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 4]}}]})
                      for i in range(0, len(args), 4)]
    return [chunk("m", {"role": "assistant", "content": ""}), *calls, chunk("m", {}, "tool_calls")]


SHAPES = ["whole calls", "calls in pieces", "interleaved", "text inside calls"]
PACES = ["one write", "event by event"]


def _step(shape: str, pace: str) -> Step:
    events = _events(shape)
    if pace == "one write":
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        return Step(sse=[body], done=False)
    return Step(sse=events, interval=0.002)


async def _serving(fakes, router, shape: str, pace: str):
    """A router in front of an upstream that streams `shape` at `pace`."""
    up = await fakes()
    up.push(_step(shape, pace))
    return await router(CFG.format(url=up.url))


REPAIRED_OR_NOT = pytest.mark.parametrize("model", ["m", "raw"], ids=["repaired", "unrepaired"])


@pytest.mark.parametrize("pace", PACES)
@pytest.mark.parametrize("shape", SHAPES)
async def test_chat_completions(fakes, router, shape, pace):
    r = await _serving(fakes, router, shape, pace)
    async with r.client().chat.completions.stream(model="m", messages=[{"role": "user", "content": "weather?"}],
                                                  tools=[CHAT_WEATHER]) as stream:  # type: ignore[list-item]
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []] == [
        (f"call_{n}", "get_weather", {"city": city}) for n, city in enumerate(CITIES)]


@REPAIRED_OR_NOT
@pytest.mark.parametrize("pace", PACES)
@pytest.mark.parametrize("shape", SHAPES)
async def test_messages(fakes, router, shape, pace, model):
    r = await _serving(fakes, router, shape, pace)
    client = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
    async with client.messages.stream(model=model, max_tokens=100, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                      messages=[{"role": "user", "content": "weather?"}]) as stream:
        final = await stream.get_final_message()
    await client.close()
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", {"city": city}) for city in CITIES]


@REPAIRED_OR_NOT
@pytest.mark.parametrize("pace", PACES)
@pytest.mark.parametrize("shape", SHAPES)
async def test_responses(fakes, router, shape, pace, model):
    r = await _serving(fakes, router, shape, pace)
    async with r.client().responses.stream(model=model, input="weather?",
                                           tools=[RESPONSES_WEATHER]) as stream:  # type: ignore[list-item]
        final = await stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert final.status == "completed"
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        (f"call_{n}", "get_weather", {"city": city}) for n, city in enumerate(CITIES)]
