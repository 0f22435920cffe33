"""The pass-through reader hands the events of a read that need no look on as one piece (`UpstreamReader._plain_run`):
the bytes the client gets, what the reader notes (the end, the finish reason, usage, an upstream error) and where
an error stops the stream must be what handling every event on its own gives, however the upstream's bytes are
cut into reads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import relay
from router.errors import ApiError
from router.exchange import Exchange
from router.metrics import Metrics
from router.sse import RenameRewriter

SECRET = "sk-live-0123456789"
METRICS = Metrics()


class _Breaker:
    def failure(self) -> None:
        pass

    def success(self) -> None:
        pass


class _Upstream:
    name = "up"
    breaker = _Breaker()

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets


class _Reply:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def _gen(self) -> Any:
        for c in self._chunks:
            yield c

    def chunks(self) -> Any:
        return self._gen()


class _Opened:
    def __init__(self, reads: list[bytes], secrets: tuple[str, ...]) -> None:
        self.first = reads[0] if reads else b""
        self.reply = _Reply(reads[1:])
        self.upstream = _Upstream(secrets)


def _chunk(delta: dict[str, Any], finish: str | None, spaced: bool) -> str:
    doc = {"id": "c", "object": "chat.completion.chunk", "model": "up-model",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return json.dumps(doc) if spaced else json.dumps(doc, separators=(",", ":"))


_TEXTS = st.sampled_from(["hi", "a\nb", "\\u0073k", SECRET, "[DONE]", '"usage"', "finish_reason", "é", ""])

_PAYLOADS = st.one_of(
    st.builds(lambda t, sp: _chunk({"content": t}, None, sp), _TEXTS, st.booleans()),
    st.builds(lambda f, sp: _chunk({}, f, sp), st.sampled_from(["stop", "tool_calls", "length"]), st.booleans()),
    st.just('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'),
    st.just('{"error":{"message":"overloaded ' + SECRET + '"}}'),
    st.just("[DONE]"),
    st.just(" [DONE] "),
    st.just("not json"),
)


@st.composite
def _events(draw: st.DrawFn) -> bytes:
    payload = draw(_PAYLOADS)
    shape = draw(st.sampled_from(["plain", "nospace", "multiline", "comment", "named"]))
    if shape == "nospace":
        return b"data:" + payload.encode() + b"\n\n"
    if shape == "multiline" and len(payload) > 4:
        cut = draw(st.integers(1, len(payload) - 1))
        return b"data: " + payload[:cut].encode() + b"\ndata: " + payload[cut:].encode() + b"\n\n"
    if shape == "comment":
        return b": keepalive\n\n"
    if shape == "named":
        return b"event: x\ndata: " + payload.encode() + b"\n\n"
    return b"data: " + payload.encode() + b"\n\n"


@st.composite
def _stream(draw: st.DrawFn) -> tuple[list[bytes], tuple[str, ...]]:
    data = b"".join(draw(st.lists(_events(), min_size=1, max_size=12)))
    if draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n")
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    secrets = draw(st.sampled_from([(), (SECRET,), ("line\nbreak",)]))
    return reads, secrets


async def _read(reads: list[bytes], secrets: tuple[str, ...], plain: bool) -> tuple[Any, ...]:
    ex = Exchange("r", "/v1/chat/completions")
    reader = relay.UpstreamReader(_Opened(reads, secrets), ex, METRICS)
    if not plain:
        reader._plain_run = lambda events: (b"", 0)  # type: ignore[method-assign]
    encoder = relay.PassThrough(reader, RenameRewriter("up-model", "asked").event)
    out: list[bytes] = []
    error = None
    try:
        async for items in reader.raw():
            out.append(encoder.feed_all(items))
    except ApiError as exc:
        error = (exc.status, exc.code, exc.message)
    return (b"".join(out), error, reader.done, reader.finish_reason, reader.usage, ex.prompt_tokens,
            ex.completion_tokens, b"".join(encoder.finish()))


@settings(max_examples=600, deadline=None)
@given(_stream())
def test_a_plain_read_in_one_piece_is_every_event_on_its_own(stream: tuple[list[bytes], tuple[str, ...]]) -> None:
    reads, secrets = stream
    fast = asyncio.run(_read(reads, secrets, plain=True))
    slow = asyncio.run(_read(reads, secrets, plain=False))
    assert fast == slow
    if secrets == (SECRET,):
        assert SECRET.encode() not in fast[0]


@pytest.mark.parametrize("payload", [
    '{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',
    '{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason": null}]}',
    ": comment",
])
def test_a_read_of_plain_events_is_one_piece(payload: str) -> None:
    reader = relay.UpstreamReader(_Opened([b""], ()), Exchange("r", "/x"), METRICS)
    events = [b"data: " + payload.encode() + b"\n\n"] * 3 if payload[0] == "{" else [payload.encode() + b"\n\n"]
    assert reader._plain_run(events) == (b"".join(events), len(events))


@pytest.mark.parametrize("payload", [
    '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    '{"choices":[],"usage":{"prompt_tokens":1}}',
    '{"error":{"message":"x"}}',
    "[DONE]",
])
def test_a_read_that_needs_a_look_is_not(payload: str) -> None:
    reader = relay.UpstreamReader(_Opened([b""], ()), Exchange("r", "/x"), METRICS)
    plain = b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
    assert reader._plain_run([plain, plain, b"data: " + payload.encode() + b"\n\n", plain]) == (plain * 2, 2)


def test_a_secret_with_a_line_break_is_looked_for_in_joined_lines() -> None:
    # the payload of a two-line event joins its lines with a newline: the secret stands only there
    event = b'data: {"choices":[{"index":0,"delta":{"content":"line\ndata: break"},"finish_reason":null}]}\n\n'
    fast = asyncio.run(_read([event], ("line\nbreak",), plain=True))
    assert fast == asyncio.run(_read([event], ("line\nbreak",), plain=False))
    assert b"break" not in fast[0]
