"""The upstream reader hands each read's events over as one list; with `texts`, a content-only chunk whose
envelope the consumer already has comes as its bare text. Both must say exactly what the documents say, however
the stream is split into reads and however the upstream spells its JSON."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.wire import REPORT_MEMBER
from router.chat_types import ArgsPiece, chunk_items, parse_chunk
from router.exchange import Exchange
from router.pipeline import _Envelope
from router.relay import OpenAIChunks, UpstreamReader, _Plain
from tests.fakes.reads import Opened


async def _collect(reads: list[bytes], texts: bool) -> list[list[Any]]:
    reader = UpstreamReader(Opened(reads), Exchange("r", "chat"), None)
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
    usual = draw(st.sampled_from(ENVELOPES))  # most events keep the stream's envelope (runs form)
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        env = dict(usual if draw(st.integers(min_value=0, max_value=3)) else draw(st.sampled_from(ENVELOPES)))
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


def _meaning(batch: list[Any], envelope: dict[str, Any]) -> list[Any]:
    """What a read's items say: each document as itself, except that a content-only or argument-only one that
    changes no envelope member says its text (its call's piece), like a text (an `ArgsPiece`) item; texts (pieces of
    one call) in a row joined."""
    out: list[Any] = []
    for item in batch:
        said: Any = item
        if isinstance(item, str):
            said = ("text", item)
        elif isinstance(item, ArgsPiece):
            said = ("args", item.call, item.text)
        else:
            chunk = parse_chunk(item)
            same = all(k not in item or (k in envelope and envelope[k] == item[k]
                                         and type(envelope[k]) is type(item[k])) for k in ENVELOPE_KEYS)
            if same and chunk.usage is None and len(chunk.parts) == 1 and REPORT_MEMBER not in item \
                    and set(item) <= {"id", "object", "created", "model", "system_fingerprint", "choices"}:
                part = chunk.parts[0]
                if (part.reasoning, part.finish_reason, part.tool_deltas) == ("", None, ()) \
                        and set(item["choices"][0]["delta"]) == {"content"}:
                    said = ("text", part.content)
                elif (part.content, part.reasoning, part.finish_reason) == ("", "", None) \
                        and len(part.tool_deltas) == 1 and set(part.tool_deltas[0]) == {"index", "function"} \
                        and set(part.tool_deltas[0]["function"]) == {"arguments"}:
                    said = ("args", part.tool_deltas[0]["index"], part.tool_deltas[0]["function"]["arguments"])
            envelope.update({k: item[k] for k in ENVELOPE_KEYS if k in item})
        if type(said) is tuple and out and type(out[-1]) is tuple and out[-1][:-1] == said[:-1]:
            out[-1] = (*said[:-1], out[-1][-1] + said[-1])
        else:
            out.append(said)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_texts_say_what_the_documents_say(stream: bytes, cuts: list[int]) -> None:
    """With `texts`, a read's items say what its documents say: a text (an argument piece) stands for one or more
    content-only (argument-only) documents in a row that change no envelope member."""
    reads = _reads(stream, cuts)
    plain = asyncio.run(_collect(reads, False))
    with_texts = asyncio.run(_collect(reads, True))
    assert len(plain) == len(with_texts)
    plain_env: dict[str, Any] = {}
    texts_env: dict[str, Any] = {}
    for docs, items in zip(plain, with_texts, strict=True):
        assert _meaning(items, texts_env) == _meaning(docs, plain_env)
        # a text or piece item never follows one of its kind: one read's run goes on as one
        for a, b in itertools.pairwise(items):
            assert not (type(a) is type(b) is str)
            assert not (type(a) is type(b) is ArgsPiece and a.call == b.call)


def test_runs_of_one_read_go_on_as_one() -> None:
    def content(text: str) -> bytes:
        return b'data: {"choices":[{"index":0,"delta":{"content":"' + text.encode() + b'"},"finish_reason":null}]}\n\n'

    def args(call: int, text: str) -> bytes:
        return (b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":%d,"function":{"arguments":"%s"}}]},'
                b'"finish_reason":null}]}\n\n' % (call, text.encode()))

    end = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    first = content("a") + content("b") + content("c") + args(0, "{") + args(0, "1") + args(0, "2") + content("x")
    batches = asyncio.run(_collect([first, content("d") + content("e"), end], True))
    # the first of each kind is parsed (and teaches its spelling); the rest of a run in one read is one item
    assert [b[1:] for b in batches[:1]] == [["bc", batches[0][2], ArgsPiece(0, "12"), "x"]]
    assert batches[1] == ["de"]


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
