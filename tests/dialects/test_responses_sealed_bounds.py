"""A reasoning item streamed for a request that includes `reasoning.encrypted_content` (Codex always does) holds its
text once more, sealed (`SEALED_PREFIX` and the base64 of its UTF-8: about 4/3 of its characters in ASCII, 4 per
character in CJK), and a streamed Response's bound on the output its final object holds (`max_stream_repair_kchars`)
counts that copy too, as it counts a summary's."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.responses import SEALED_INCLUDE, sealed, unsealed
from tests.dialects.conftest import CFG
from tests.dialects.test_responses_summary_bounds import BOUND, _final
from tests.fakes.openai_upstream import Step, chunk

PIECE = 7  # characters per reasoning delta: the base64 grows across its 3-byte groups as the deltas come


def _held(response: dict[str, Any]) -> int:
    """The characters of output a final Response holds: texts, reasoning content and summaries, encrypted_content."""
    return sum(len(p.get("text", "")) for it in response["output"] for key in ("content", "summary")
               for p in it.get(key) or ()) + sum(len(it.get("encrypted_content") or "") for it in response["output"])


def _most(char: str, summary: bool) -> int:
    """The most characters of reasoning (`char` repeated) whose final Response, two characters of text after it,
    fits the bound."""
    n = 0
    while (2 if summary else 1) * (n + 1) + len(sealed(char * (n + 1))) + 2 <= BOUND:
        n += 1
    return n


@pytest.mark.parametrize("char", ["r", "思"], ids=["ascii", "cjk"])
@pytest.mark.parametrize("summary", [False, True], ids=["plain", "summarized"])
@pytest.mark.parametrize("past", [0, 1], ids=["at-the-bound", "one-past"])
async def test_a_sealed_stream_counts_its_encrypted_content(fakes, router, char: str, summary: bool,
                                                            past: int) -> None:
    """Reasoning then two characters of text: the final Response holds the reasoning as content (and summary) and
    sealed, and the stream ends `response_too_large` where one more character of reasoning passes the bound."""
    chars = _most(char, summary) + past
    up = await fakes()
    pieces = [char * PIECE] * (chars // PIECE) + ([char * (chars % PIECE)] if chars % PIECE else [])
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": pieces[0]}),
                      *(chunk("m", {"reasoning_content": p}) for p in pieces[1:]),
                      chunk("m", {"content": "ok"}), chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "store": False, "include": [SEALED_INCLUDE],
            **({"reasoning": {"summary": "auto"}} if summary else {})}
    last = await _final(r.url, body)
    if not past:
        assert last["type"] == "response.completed", last
        [reasoning] = [it for it in last["response"]["output"] if it["type"] == "reasoning"]
        assert unsealed(reasoning["encrypted_content"]) == char * chars
        assert _held(last["response"]) == (2 if summary else 1) * chars + len(sealed(char * chars)) + 2 <= BOUND
    else:
        assert last["type"] == "response.failed" and last["response"]["error"]["message"].startswith(
            f"The response passed {BOUND} characters"), last
        assert _held(last["response"]) <= BOUND
