"""A chat stream with tools declared (the repaired path) from a model that searched the web: the upstream's
`delta.annotations` (its `url_citation`s, on the delta that carries the cited text or on a later one, as OpenAI's
search models and OpenRouter's web plugin send them) never reached the client, where the non-stream answer to the
same request carries `message.annotations` and the stream without tools passes them on."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Step, chunk, completion
from tests.router.one_tool import CFG, TOOLS

MSGS = [{"role": "user", "content": "news from Paris?"}]
CITE = {"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 11, "title": "Paris",
                                                 "url": "https://example.test/paris"}}
LATER = {"type": "url_citation", "url_citation": {"start_index": 12, "end_index": 20, "title": "More",
                                                  "url": "https://example.test/more"}}


@pytest.mark.parametrize("interval", [0.0, 0.01], ids=["one read", "piece by piece"])
async def test_streamed_citations_reach_the_client(fakes, router, interval):
    up = await fakes()
    whole = completion("Sunny today. See more.", "m")
    whole["choices"][0]["message"]["annotations"] = [CITE, LATER]
    up.push(Step(json=whole))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                      chunk("m", {"content": "Sunny today."}),
                      chunk("m", {"content": " See more.", "annotations": [CITE]}),
                      chunk("m", {"annotations": [LATER]}),
                      chunk("m", {}, "stop")], interval=interval))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw = dict(model="m", messages=MSGS, tools=TOOLS)
    resp = await c.chat.completions.create(**kw)
    assert [a.model_dump() for a in resp.choices[0].message.annotations] == [CITE, LATER]  # the whole answer's
    text, annotations = "", []
    async for ch in await c.chat.completions.create(**kw, stream=True):
        for choice in ch.model_dump()["choices"]:
            text += choice["delta"].get("content") or ""
            annotations += choice["delta"].get("annotations") or []
    assert (text, annotations) == ("Sunny today. See more.", [CITE, LATER])
