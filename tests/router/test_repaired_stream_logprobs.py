"""`logprobs: true` on a chat stream with tools declared (the repaired path): the upstream's `choices[].logprobs`
were dropped from every chunk, even for plain prose that goes out unchanged, while the non-stream answer to the
same request keeps `choices[0].logprobs` (and a stream without tools passes them on). Now each token's entry goes
with the chunk that sends the last of its text, as long as the content goes out as the upstream sent it."""

from __future__ import annotations

from typing import Any

import pytest

from router.chat_types import ChunkPart, StreamChunk
from router.stream_logprobs import StreamLogprobs
from tests.fakes.openai_upstream import Step, chunk, completion, message_of
from tests.router.one_tool import CFG, TOOLS

MSGS = [{"role": "user", "content": "hi"}]
TOKENS = ["Hello", " there", "."]
CALL = ["<tool_call>", '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}', "</tool_call>"]


def entry(tok: str) -> dict[str, Any]:
    return {"token": tok, "logprob": -0.25, "bytes": list(tok.encode()), "top_logprobs": []}


def stream_events(tokens: list[str], finish: str = "stop") -> list[dict[str, Any]]:
    """One chunk per token, each with its entry."""
    events = [chunk("m", {"role": "assistant", "content": ""})]
    for tok in tokens:
        ev = chunk("m", {"content": tok})
        ev["choices"][0]["logprobs"] = {"content": [entry(tok)], "refusal": None}
        events.append(ev)
    return [*events, chunk("m", {}, finish)]


def streamed(docs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(content, logprob tokens) of each chunk of choice 0 that carries either."""
    out = []
    for doc in docs:
        for choice in doc["choices"]:
            content = choice["delta"].get("content") or ""
            tokens = [e["token"] for e in ((choice.get("logprobs") or {}).get("content") or [])]
            if content or tokens:
                out.append((content, tokens))
    return out


def never_ahead(chunks: list[tuple[str, list[str]]]) -> None:
    """An entry never goes out before the last of its token's text."""
    text, tokens = "", ""
    for content, toks in chunks:
        text += content
        tokens += "".join(toks)
        assert text.startswith(tokens), (text, tokens)


async def ask_stream(router: Any, url: str, **kw: Any) -> list[dict[str, Any]]:
    r = await router(CFG.format(url=url))
    stream = await r.client().chat.completions.create(model="m", messages=MSGS, tools=TOOLS, logprobs=True,
                                                      stream=True, **kw)
    return [ch.model_dump() async for ch in stream]


@pytest.mark.parametrize("tools", [False, True], ids=["no tools (passed through)", "tools (repaired)"])
async def test_streamed_prose_keeps_its_logprobs(fakes, router, tools):
    up = await fakes()
    whole = completion("".join(TOKENS), "m")
    whole["choices"][0]["logprobs"] = {"content": [entry(t) for t in TOKENS], "refusal": None}
    up.push(Step(json=whole), Step(sse=stream_events(TOKENS), interval=0.01))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw = dict(model="m", messages=MSGS, logprobs=True, **({"tools": TOOLS} if tools else {}))
    resp = await c.chat.completions.create(**kw)
    assert [e.token for e in resp.choices[0].logprobs.content] == TOKENS  # kept on the whole answer
    content, tokens = "", []
    async for ch in await c.chat.completions.create(**kw, stream=True):
        for choice in ch.choices:
            content += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens += [e.token for e in choice.logprobs.content]
    assert content == "Hello there."
    assert tokens == TOKENS


@pytest.mark.parametrize("interval", [0.0, 0.005], ids=["one read", "piece by piece"])
async def test_each_entry_goes_with_its_text(fakes, router, interval):
    """Trailing whitespace the repairer holds (it could come before a call) goes out with the next text, and its
    token's entry with it; the stream's whole text and tokens agree."""
    tokens = ["Sure", ",", " ", "here", " it", " is", ".", "\n"]
    up = await fakes()
    up.push(Step(sse=stream_events(tokens), interval=interval))
    chunks = streamed(await ask_stream(router, up.url))
    never_ahead(chunks)
    assert "".join(c for c, _ in chunks) == "".join(tokens)
    assert [t for _, toks in chunks for t in toks] == tokens
    if interval:
        assert (" here", [" ", "here"]) in chunks


@pytest.mark.parametrize("interval", [0.0, 0.005], ids=["one read", "piece by piece"])
async def test_the_prose_before_a_call_keeps_its_logprobs(fakes, router, interval):
    """The text before a call written in the text goes out as it came, with its entries; the markup's never go
    out (nor the space dropped before it)."""
    up = await fakes()
    up.push(Step(sse=stream_events(["Let", " me", " check", ".", " ", *CALL]), interval=interval))
    docs = await ask_stream(router, up.url)
    msg, finish = message_of(docs)
    assert msg["content"] == "Let me check." and finish == "tool_calls"
    assert [c["function"]["name"] for c in msg["tool_calls"]] == ["get_weather"]
    chunks = streamed(docs)
    never_ahead(chunks)
    assert [t for _, toks in chunks for t in toks] == ["Let", " me", " check", "."]


async def test_text_held_and_released_as_it_came_keeps_its_logprobs(fakes, router):
    """A fenced JSON object that names no tool is held (it could have been a call), then goes out as it came: its
    entries go with it."""
    tokens = ["Here", ":\n", "```", "json", "\n", '{"a"', ": 1}", "\n", "```", "\n", "Done", "."]
    up = await fakes()
    up.push(Step(sse=stream_events(tokens), interval=0.005))
    chunks = streamed(await ask_stream(router, up.url))
    never_ahead(chunks)
    assert "".join(c for c, _ in chunks) == "".join(tokens)
    assert [t for _, toks in chunks for t in toks] == tokens


async def test_after_repair_changed_the_text_no_more_logprobs(fakes, router):
    """Past a call taken out of the text, the content is no longer the upstream's (a paragraph break joins what
    follows): the chunks from there carry none, and the content is the whole answer's."""
    tokens = ["Checking", ".", " ", *CALL, "\n", "Done", "."]
    up = await fakes()
    whole = completion("".join(tokens), "m")
    up.push(Step(json=whole), Step(sse=stream_events(tokens), interval=0.005))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    want = (await c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS, logprobs=True)).choices[0]
    stream = await c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS, logprobs=True, stream=True)
    docs = [ch.model_dump() async for ch in stream]
    msg, _ = message_of(docs)
    assert msg["content"] == want.message.content == "Checking.\n\nDone."
    chunks = streamed(docs)
    never_ahead(chunks)
    assert [t for _, toks in chunks for t in toks] == ["Checking", "."]


async def test_a_refusal_keeps_its_logprobs(fakes, router):
    events = [chunk("m", {"role": "assistant", "content": None})]
    for tok in ["I can't", " help", "."]:
        ev = chunk("m", {"refusal": tok})
        ev["choices"][0]["logprobs"] = {"content": None, "refusal": [entry(tok)]}
        events.append(ev)
    up = await fakes()
    up.push(Step(sse=[*events, chunk("m", {}, "stop")], interval=0.005))
    docs = await ask_stream(router, up.url)
    refusal = [(ch["delta"]["refusal"], [e["token"] for e in ch["logprobs"]["refusal"]])
               for d in docs for ch in d["choices"] if ch["delta"].get("refusal")]
    assert refusal == [("I can't help.", ["I can't", " help", "."])]


def test_tokens_that_do_not_spell_their_piece_go_with_all_of_it() -> None:
    """A piece whose tokens do not spell it (a character cut between two tokens) is one unit: its entries go once
    all of its text went out."""
    lp = StreamLogprobs(1000)
    lp.part(ChunkPart(content="é!", logprobs={"content": [entry("bytes:\\xc3"), entry("bytes:\\xa9!")]}))
    lp.fed("?")  # a piece that came without logprobs
    assert lp.sent("é") == []
    assert [e["token"] for e in lp.sent("!?")] == ["bytes:\\xc3", "bytes:\\xa9!"]


def test_entries_of_reasoning_and_past_the_bound_are_dropped() -> None:
    lp = StreamLogprobs(10)
    lp.part(ChunkPart(reasoning="hm", content="ok", logprobs={"content": [entry("hm"), entry("ok")]}))
    assert lp.sent("ok") == []  # (which tokens were the content's is not known)
    lp.fed("0123456789A", [entry("0123456789A")])  # past the bound: no more
    lp.fed("B", [entry("B")])
    assert lp.sent("0123456789AB") == []


def test_a_batch_keeps_its_stream_chunks_unless_entries_go_with_them() -> None:
    lp = StreamLogprobs(100)
    lp.fed("Hi", [entry("Hi")])
    head = b"data: {"
    items: list[Any] = [StreamChunk(head, {"role": "assistant", "content": ""}), StreamChunk(head, {"content": "H"}),
                        StreamChunk(head, {"content": "i"}), StreamChunk(head, {"reasoning_content": "x"})]
    out = lp.chunks(items, {"id": "c", "model": "m"})
    assert out[:2] == items[:2] and out[3] == items[3]
    assert out[2] == {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "i"}, "logprobs": {
        "content": [entry("Hi")], "refusal": None}, "finish_reason": None}]}
