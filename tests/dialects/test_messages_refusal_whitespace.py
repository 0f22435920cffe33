"""Whitespace with no text after it, then a refusal: the whole answer leaves the whitespace out (a text block is
the refusal alone), while the stream sent the whitespace it held before the refusal (`"\\n\\nNo."`), so the SDK's
streamed message differed from the whole one for the same reply. Both are the refusal alone now."""

from __future__ import annotations

import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion

U = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("tools", [False, True], ids=["plain", "repaired"])
@pytest.mark.parametrize("pieces", [["No."], [" ", "No."]], ids=["refusal", "refusal led by a space"])
async def test_whitespace_before_a_refusal_is_left_out(fakes, router, stream, tools, pieces):
    """(A refusal's own leading whitespace stays, as the whole answer keeps it.)"""
    up = await fakes()
    if stream:
        up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "\n\n"}),
                          *[chunk("m", {"refusal": p}) for p in pieces], chunk("m", {}, "stop")]))
    else:
        doc = completion("\n\n", "m")
        doc["choices"][0]["message"]["refusal"] = "".join(pieces)
        up.push(Step(json=doc))
    r = await router(CFG.format(url=up.url))
    answer = await claude_message(r.url, stream, model="m", max_tokens=10, messages=U,
                                  **({"tools": [ANTHROPIC_WEATHER]} if tools else {}))
    assert [(b.type, b.text) for b in answer.content] == [("text", "".join(pieces))]
    assert answer.stop_reason == "refusal"
