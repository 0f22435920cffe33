"""The upstream reader hands each read's events over as one list; with `texts`, a content-only chunk whose
envelope the consumer already has comes as its bare text. Both must say exactly what the documents say, however
the stream is split into reads and however the upstream spells its JSON."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.wire import REPORT_MEMBER
from router.chat_types import ArgsPiece, chunk_items, parse_chunk
from router.exchange import Exchange
from router.pipeline import _Envelope
from router.relay import OpenAIChunks, UpstreamReader, _Plain


class _Reply:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def chunks(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r


class _Upstream:
    name = "up"
    secrets = ()


class _Opened:
    def __init__(self, reads: list[bytes]) -> None:
        self.first = reads[0] if reads else b""
        self.reply = _Reply(reads[1:])
        self.upstream = _Upstream()


async def _collect(reads: list[bytes], texts: bool) -> list[list[Any]]:
    reader = UpstreamReader(_Opened(reads), Exchange("r", "chat"), None)
    return [batch async for batch in reader.docs(texts=texts)]


ENVELOPES = [{"id": "a", "object": "chat.completion.chunk", "created": 1, "model": "m"},
             {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "m"},
             {"id": "a", "object": "chat.completion.chunk", "created": 1.0, "model": "m"},
             {"id": "a", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp"},
             {"object": "chat.completion.chunk", "model": "m"}]
TEXTS = st.sampled_from(["", "a", " the tool", '"quoted"', "back\\slash", "é日本", "\n", '"content":', "<tool_call>",
                         "\u2028", "{\"x\": 1}"])


@st.composite
def events(draw: Any) -> bytes:
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        env = dict(draw(st.sampled_from(ENVELOPES)))
        kind = draw(st.sampled_from(["content", "content", "content", "role", "call", "call", "header", "finish",
                                     "usage", "logprobs"]))
        choice: dict[str, Any] = {"index": 0, "delta": {"content": draw(TEXTS)}, "finish_reason": None}
        if kind == "role":
            choice["delta"] = {"role": "assistant", "content": ""}
        elif kind == "call":
            choice["delta"] = {"tool_calls": [{"index": draw(st.sampled_from([0, 1])),
                                               "function": {"arguments": draw(TEXTS)}}]}
        elif kind == "header":
            choice["delta"] = {"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                               "function": {"name": "f", "arguments": ""}}]}
        elif kind == "finish":
            choice["finish_reason"] = "stop"
        elif kind == "logprobs":
            choice = {"index": 0, "delta": {"content": draw(TEXTS)}, "logprobs": None, "finish_reason": None}
        doc: dict[str, Any] = {**env, "choices": [choice]}
        if kind == "usage":
            doc = {**env, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
        spaced = draw(st.booleans())
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()), separators=(", ", ": ") if spaced else (",", ":"))
        out.append(f"data: {text}\n\n".encode())
    out.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    return b"".join(out)


def _reads(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


ENVELOPE_KEYS = ("id", "created", "system_fingerprint")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_texts_say_what_the_documents_say(stream: bytes, cuts: list[int]) -> None:
    reads = _reads(stream, cuts)
    plain = [d for batch in asyncio.run(_collect(reads, False)) for d in batch]
    with_texts = [d for batch in asyncio.run(_collect(reads, True)) for d in batch]
    assert len(plain) == len(with_texts)
    envelope: dict[str, Any] = {}
    for doc, item in zip(plain, with_texts, strict=True):
        if isinstance(item, (str, ArgsPiece)):  # the document is content only (that text) or one argument piece (that
            # tool-call delta), and changes no envelope member
            chunk = parse_chunk(doc)
            assert chunk.usage is None and len(chunk.parts) == 1 and REPORT_MEMBER not in doc
            part = chunk.parts[0]
            expected = (item, "", (), None) if isinstance(item, str) else ("", "", (item.delta,), None)
            assert (part.content, part.reasoning, part.tool_deltas, part.finish_reason) == expected
            for k in ENVELOPE_KEYS:
                if k in doc:
                    assert k in envelope and envelope[k] == doc[k] and type(envelope[k]) is type(doc[k])
        else:
            assert item == doc
        envelope.update({k: doc[k] for k in ENVELOPE_KEYS if k in doc})


def test_batches_follow_the_reads() -> None:
    one = b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    end = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    batches = asyncio.run(_collect([one + one, one[:10], one[10:] + end], False))
    assert [len(b) for b in batches] == [2, 2]


def test_a_template_is_learned_only_from_a_content_only_chunk() -> None:
    doc = {"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    data = json.dumps(doc).encode()
    plain = _Plain.learn(data, doc)
    assert plain is not None
    assert plain.item(data.replace(b'"hi"', b'"a \\"b\\" \\u00e9"')) == 'a "b" é'
    assert plain.item(data.replace(b'"hi"', b'"a"}, "x": {"y": "b"')) is None  # not one string
    assert plain.item(data.replace(b'"hi"', b'"\\ud800"')) is None  # a lone surrogate: the general path decides
    call = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 2, "function": {"arguments": "{"}}]}}]}
    args = _Plain.learn(json.dumps(call).encode(), call)
    assert args is not None
    assert args.item(json.dumps(call).encode().replace(b'"{"', b'"\\"x\\": 1}"')) == ArgsPiece(
        2, '"x": 1}')
    for other in ({**doc, "usage": {}}, {**doc, "agentgate": {}},
                  {"choices": [{"index": 0, "delta": {"content": "hi", "role": "assistant"}}]},
                  {"choices": [{"index": 1, "delta": {"content": "hi"}}]},
                  {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
                  {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {
                      "arguments": "{"}}]}}]},
                  {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}},
                                                                     {"index": 1, "function": {"arguments": "{"}}]}}]}):
        assert _Plain.learn(json.dumps(other).encode(), other) is None


envelope_values = st.fixed_dictionaries(
    {"id": st.text(max_size=8), "created": st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))},
    optional={"system_fingerprint": st.one_of(st.none(), st.text(max_size=8))})


@settings(max_examples=200, deadline=None)
@given(envelope_values, st.sampled_from([{"role": "assistant", "content": ""}, {"content": "a\u2028\"é"},
                                         {"tool_calls": [{"index": 1, "function": {"arguments": "{\"a\": 1"}}]}]))
def test_a_stream_chunk_is_its_chunk_document(members: dict[str, Any], delta: dict[str, Any]) -> None:
    """The pipeline's chunks made from the encoded envelope (the role chunk, content and argument pieces) are the
    bytes and the parts of the chunk document they stand for, in every dialect's encoder."""
    env = _Envelope("the-model")
    env.absorb(members)
    as_doc, as_chunk = env.chunk(delta), env.stream_chunk(delta)
    assert OpenAIChunks().feed(as_chunk) == OpenAIChunks().feed(as_doc)
    assert chunk_items(as_chunk) == chunk_items(as_doc)
