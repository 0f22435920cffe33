"""`service_tier` on a chat stream with tools declared (the repaired path): OpenAI puts the tier that served the
request on every chunk (`chat.completion.chunk.service_tier`, e.g. "default" or "flex" when the client asked for
"auto"/"flex"); the repaired stream rebuilt its envelope from `id`, `created`, `system_fingerprint` and `model` only,
so the tier was lost, while the non-stream answer (and a stream without tools) keeps it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.openai_upstream import Step, chunk, completion
from tests.router.one_tool import CFG, TOOLS

MSGS = [{"role": "user", "content": "hi"}]
CALL = 'Checking. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def tiered(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "service_tier": "flex"}


@pytest.mark.parametrize("tools", [False, True], ids=["no tools (passed through)", "tools (repaired)"])
async def test_streamed_chunks_keep_the_service_tier(fakes, router, tools):
    up = await fakes()
    up.push(Step(json=tiered(completion("Hello there.", "m"))),
            Step(sse=[tiered(chunk("m", {"role": "assistant", "content": ""})),
                      tiered(chunk("m", {"content": "Hello"})), tiered(chunk("m", {"content": " there."})),
                      tiered(chunk("m", {}, "stop"))], interval=0.01))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw = dict(model="m", messages=MSGS, service_tier="flex", **({"tools": TOOLS} if tools else {}))
    assert (await c.chat.completions.create(**kw)).service_tier == "flex"
    tiers = [ch.service_tier async for ch in await c.chat.completions.create(**kw, stream=True)]
    assert tiers and set(tiers) == {"flex"}


@pytest.mark.parametrize("interval", [0.0, 0.005], ids=["one read", "piece by piece"])
async def test_a_repaired_call_stream_and_its_usage_chunk_keep_the_service_tier(fakes, router, interval):
    """Every chunk the repair makes (the role chunk, the prose, the call, the finish and the usage chunk) carries
    the upstream's tier, however the stream arrived."""
    pieces = [CALL[i:i + 7] for i in range(0, len(CALL), 7)]
    events = [tiered(chunk("m", {"role": "assistant", "content": ""})),
              *[tiered(chunk("m", {"content": p})) for p in pieces], tiered(chunk("m", {}, "stop")),
              tiered({**chunk("m", {}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9,
                                                                 "total_tokens": 14}})]
    up = await fakes()
    up.push(Step(sse=events, interval=interval))
    r = await router(CFG.format(url=up.url))
    chunks = [ch async for ch in await r.client().chat.completions.create(
        model="m", messages=MSGS, tools=TOOLS, service_tier="flex", stream=True,
        stream_options={"include_usage": True})]
    names = [t.function.name for ch in chunks for c in ch.choices for t in c.delta.tool_calls or []
             if t.function and t.function.name]
    assert names == ["get_weather"] and chunks[-1].usage is not None
    assert {ch.service_tier for ch in chunks} == {"flex"}
