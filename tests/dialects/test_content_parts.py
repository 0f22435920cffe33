"""An answer whose `content` is a list of parts, as Mistral's reasoning models give it whole and streamed
(`{"type": "thinking", "thinking": [{"type": "text", ...}]}` and `{"type": "text", ...}` parts): the text is the
content and the thinking the reasoning, on every route, through the real SDKs. With tools declared (every agent
request) the text was dropped: chat clients got `content: null` (a streamed one nothing at all) and Anthropic
clients an empty message."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CHAT_WEATHER, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""
THINKING, TEXT = "The user greets me.", "Hello! How can I help?"


def _thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def _whole() -> Step:
    doc = completion(None, "m", finish_reason="stop")
    doc["choices"][0]["message"]["content"] = [_thinking(THINKING), {"type": "text", "text": TEXT}]
    return Step(json=doc)


def _streamed(text_as: str) -> Step:
    def text(piece: str) -> Any:
        return [{"type": "text", "text": piece}] if text_as == "parts" else piece

    events = [chunk("m", {"role": "assistant", "content": ""}),
              *[chunk("m", {"content": [_thinking(THINKING[i:i + 6])]}) for i in range(0, len(THINKING), 6)],
              *[chunk("m", {"content": text(TEXT[i:i + 5])}) for i in range(0, len(TEXT), 5)],
              chunk("m", {}, "stop")]
    return Step(sse=events, interval=0.001)


MODES = ["whole", "streamed, text as parts", "streamed, text as a string"]


def _step(mode: str) -> Step:
    return _whole() if mode == "whole" else _streamed("parts" if "parts" in mode else "string")


@pytest.mark.parametrize("mode", MODES)
async def test_chat_completions(fakes, router, mode):
    up = await fakes()
    up.push(_step(mode))
    r = await router(CFG.format(url=up.url))
    kw: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [CHAT_WEATHER]}
    if mode == "whole":
        msg = (await r.client().chat.completions.create(**kw)).choices[0].message
        content, reasoning = msg.content, (msg.model_extra or {}).get("reasoning_content")
    else:
        content = reasoning = ""
        async for c in await r.client().chat.completions.create(**kw, stream=True):
            for choice in c.choices:
                content += choice.delta.content or ""
                reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
    assert (content, reasoning) == (TEXT, THINKING)


@pytest.mark.parametrize("mode", MODES)
async def test_messages(fakes, router, mode):
    up = await fakes()
    up.push(_step(mode))
    r = await router(CFG.format(url=up.url))
    client = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
    kw: dict[str, Any] = {"model": "m", "max_tokens": 100, "tools": [ANTHROPIC_WEATHER],
                          "messages": [{"role": "user", "content": "hi"}]}
    if mode == "whole":
        final = await client.messages.create(**kw)
    else:
        async with client.messages.stream(**kw) as stream:
            final = await stream.get_final_message()
    await client.close()
    assert [(b.type, b.thinking if b.type == "thinking" else b.text) for b in final.content] == [  # type: ignore[union-attr]
        ("thinking", THINKING), ("text", TEXT)]


@pytest.mark.parametrize("mode", MODES)
async def test_responses(fakes, router, mode):
    up = await fakes()
    up.push(_step(mode))
    r = await router(CFG.format(url=up.url))
    kw: dict[str, Any] = {"model": "m", "input": "hi", "tools": [RESPONSES_WEATHER]}
    if mode == "whole":
        final = await r.client().responses.create(**kw)
    else:
        async with r.client().responses.stream(**kw) as stream:
            final = await stream.get_final_response()
    assert final.output_text == TEXT
    reasoning = [o for o in final.output if o.type == "reasoning"]
    assert [[c.text for c in r.content or []] for r in reasoning] == [[THINKING]]


@pytest.mark.parametrize(("given", "want"), [({"reasoning_content": ""}, THINKING), ({"reasoning": "R"}, "R")],
                         ids=["empty reasoning_content", "reasoning beside the parts"])
async def test_reasoning_is_read_the_same_whole_and_streamed(fakes, router, given, want):
    """The reasoning a whole answer gives comes from where a stream's and an unrepaired answer's comes from: a
    non-empty `reasoning_content` or `reasoning` first, then the thinking parts."""
    up = await fakes()
    step = _whole()
    step.json["choices"][0]["message"].update(given)
    up.push(step)
    r = await router(CFG.format(url=up.url))
    msg = (await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                    tools=[CHAT_WEATHER])).choices[0].message
    extra = msg.model_extra or {}
    assert msg.content == TEXT and (extra.get("reasoning_content") or extra.get("reasoning")) == want
    assert not (extra.get("reasoning_content") and extra.get("reasoning"))
