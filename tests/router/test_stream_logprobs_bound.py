"""The logprobs a repaired chat stream holds while their text is held (text that may begin a call, a refusal held
whole) are bounded by their own size, not only by their text's: with 20 alternatives a token of 5 characters
carries ~1.3 KB of entries, so the text bound (`max_stream_repair_kchars`) let a stream hold some 260 times its
text in logprobs (~1.6 GB once parsed at the default bound). Past 4 bytes of entries' JSON per character of the
bound, as a Responses stream keeps for its final object, the stream carries no more of them."""

from __future__ import annotations

import json
from typing import Any

from router.chat_types import ChunkPart
from router.stream_logprobs import StreamLogprobs

BOUND = 64 * 1024  # characters of text (max_stream_repair_kchars: 64)


def entry(tok: str, tops: int = 20) -> dict[str, Any]:
    return {"token": tok, "logprob": -0.25, "bytes": list(tok.encode()),
            "top_logprobs": [{"token": f"{tok}{i}", "logprob": -1.5 - i, "bytes": list(f"{tok}{i}".encode())}
                             for i in range(tops)]}


def held(lp: StreamLogprobs) -> int:
    """The bytes of JSON of the entries `lp` holds."""
    units = lp._units
    return sum(len(json.dumps(u.entries)) for u in units) + len(json.dumps(lp._refusal))


def test_entries_held_with_their_text_are_bounded() -> None:
    lp = StreamLogprobs(BOUND)
    piece = entry("word ")
    for _ in range(10_000):  # 50,000 characters of text held (within the bound), 13 MB of entries
        lp.part(ChunkPart(content="word ", logprobs={"content": [piece]}))
    assert held(lp) <= 4 * BOUND
    assert lp.sent("word " * 10_000) == []  # past the bound the stream carries no more


def test_a_refusals_entries_held_are_bounded() -> None:
    lp = StreamLogprobs(BOUND)
    piece = entry("no ")
    for _ in range(10_000):
        lp.part(ChunkPart(refusal="no ", logprobs={"refusal": [piece]}))
    assert held(lp) <= 4 * BOUND
    assert lp.refusal() == []


def test_entries_within_the_bound_go_with_their_text() -> None:
    lp = StreamLogprobs(BOUND)
    for _ in range(10):
        lp.part(ChunkPart(content="word ", logprobs={"content": [entry("word ")]}))
    lp.part(ChunkPart(refusal="no", logprobs={"refusal": [entry("no")]}))
    assert len(lp.sent("word " * 10)) == 10
    assert [e["token"] for e in lp.refusal()] == ["no"]


def test_entries_that_went_out_are_no_longer_counted() -> None:
    """A long stream whose text goes out as it comes carries every entry (the bound is on those held)."""
    lp = StreamLogprobs(BOUND)
    piece = entry("word ")
    for _ in range(10_000):
        lp.part(ChunkPart(content="word ", logprobs={"content": [piece]}))
        assert lp.sent("word ") == [piece]
