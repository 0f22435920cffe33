"""The translated routes' kept encodings: a Messages history translated once per distinct message (`HistoryMemo`)
gives what translating it afresh gives, the chat body's bytes made with the kept encodings are the body encoded,
and a Response's echoed tools put in from their kept encoding give the Response encoded whole."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router import jsoncodec
from router.chat_types import StreamChunk
from router.dialects import anthropic_in, responses
from router.dialects.common import Conversations, HistoryMemo, Turn, chat_bytes, sse_event
from router.errors import ApiError


class _Fresh(HistoryMemo):
    """The path before the memo: every message translated for its request."""

    def get(self, message: dict[str, Any], make: Callable[[dict[str, Any], int], Turn], at: int) -> Turn:
        return make(message, at)


class _Kept:
    """Each test's memos, as an app holds them (small bounds); kept across a hypothesis test's examples."""

    messages = anthropic_in.Translations()
    answers = responses.Translations()  # the Responses route's

    @classmethod
    def renew(cls) -> None:
        def small() -> HistoryMemo:
            return HistoryMemo(max_entries=64, max_bytes=256 << 10, max_entry_bytes=16 << 10)

        cls.messages = anthropic_in.Translations(history=small())
        cls.answers = responses.Translations(history=small())


@pytest.fixture(autouse=True)
def fresh_memos() -> None:
    _Kept.renew()


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False,
                     allow_infinity=False) | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=6)
_image = st.sampled_from([
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
    {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
    {"type": "image", "source": {"type": "file", "file_id": "f"}},  # refused
    {"type": "image"},  # refused
])
_document = st.sampled_from([
    {"type": "document", "source": {"type": "text", "data": "notes"}, "title": "T"},
    {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": "aGk="}},
    {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
    {"type": "document", "source": {"type": "nope"}},  # refused
])
_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a},
              st.sampled_from(["toolu_1", "call_2", ""]), st.sampled_from(["read", "write", ""]),
              st.dictionaries(_text, _json, max_size=3) | _json),
    st.builds(lambda c, e: {"type": "tool_result", "tool_use_id": "toolu_1", "content": c,
                            **({"is_error": e} if e is not None else {})},
              st.none() | _text | st.lists(st.one_of(st.builds(lambda t: {"type": "text", "text": t}, _text),
                                                     _image, _document), max_size=3),
              st.none() | st.booleans()),
    _image, _document,
    st.just({"type": "thinking", "thinking": "hm", "signature": "s"}),
    st.sampled_from([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                     {"type": "web_search_tool_result", "tool_use_id": "s", "content": []},
                     {"type": "mcp_tool_use"}, {"type": "bogus"}, {"text": "no type"}]),
)
_message = st.one_of(
    st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant"]), _text),
    st.builds(lambda r, c: {"role": r, "content": c},
              st.sampled_from(["user", "user", "assistant", "system", "robot"]), st.lists(_block, max_size=4)),
    st.builds(lambda c: {"role": "system", "content": [{"type": "text", "text": c}]}, _text),
)


def _outcome(body: dict[str, Any], memos: anthropic_in.Translations) -> tuple[Any, ...]:
    try:
        req = anthropic_in.parse_request(copy.deepcopy(body), memos)
    except ApiError as err:
        return ("error", err.status, err.code, err.message, err.param)
    return (req.chat, req.text_bytes, req.images, req.dropped.kinds, req.estimate_input_tokens())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_message, min_size=1, max_size=6), st.lists(_message, min_size=1, max_size=3),
       st.lists(_message, max_size=2))
def test_kept_history_translates_as_afresh(first: list[dict[str, Any]], more: list[dict[str, Any]],
                                           other: list[dict[str, Any]]) -> None:
    """An agent's turns (the history resent with more each time), and other conversations between them: each
    request translated with the memo is what translating it afresh gives (errors included), and the chat body's
    bytes made with the kept encodings are the chat body encoded."""
    memos = _Kept.messages
    memo = memos.history
    turns = [first, other, first + more, first + more + other, first, more]
    for messages in turns:
        body = {"model": "m", "max_tokens": 5, "system": "sys", "messages": messages}
        kept = _outcome(body, memos)
        afresh = _outcome(body, anthropic_in.Translations(history=_Fresh()))
        assert kept == afresh
        if kept[0] != "error":
            req = anthropic_in.parse_request(copy.deepcopy(body), memos)
            raw = chat_bytes(req.chat, req.tools_json, memo)
            assert raw in (b"", jsoncodec.dumps(req.chat))
            assert len(memo) <= 64 and memo.bytes <= 256 << 10


def test_resent_history_is_found_and_shared() -> None:
    history = [{"role": "user", "content": [{"type": "text", "text": "list files"}]},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ls",
                                                  "input": {"dir": "é", "n": 1.5}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}]}]
    memos = _Kept.messages
    first = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": copy.deepcopy(history)}, memos)
    second = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": copy.deepcopy(history)}, memos)
    memo = memos.history
    assert memo.hits == 3 and len(memo) == 3
    assert all(a is b for a, b in zip(first.chat["messages"], second.chat["messages"], strict=True))  # shared
    assert first.chat["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"dir": "é", "n": 1.5}'
    raw = chat_bytes(second.chat, None, memo)
    assert raw == jsoncodec.dumps(second.chat) and json.loads(raw) == second.chat


def test_history_memo_stays_bounded_under_new_messages() -> None:
    """A client sending new messages every time cannot grow it; a message over the entry bound is never kept, nor
    one orjson cannot encode (translated for its request, as before)."""
    memos = _Kept.messages
    memo = memos.history
    for i in range(400):
        anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"turn {i} " + "x" * (i * 40)}]}]}, memos)
        assert len(memo) <= 64 and memo.bytes <= 256 << 10
    huge = {"role": "user", "content": [{"type": "text", "text": "y" * (20 << 10)}]}
    big_int = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n",
                                                 "input": {"v": 2 ** 70}}]}
    for m in (huge, big_int):
        before = memo.misses, memo.bytes
        req = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [m]}, memos)
        again = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [m]}, memos)
        assert again.chat == req.chat and memo.json_of(req.chat["messages"][0]) is None
        assert (memo.misses, memo.bytes) == (before[0] + 2, before[1])


def test_a_refused_message_is_refused_every_time() -> None:
    bad = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": 7}]}
    for _ in range(2):
        with pytest.raises(ApiError) as caught:
            anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [bad]}, _Kept.messages)
        assert caught.value.status == 400 and "tool_use_id" in caught.value.message
    assert len(_Kept.messages.history) == 0


_part = st.one_of(
    st.builds(lambda t: {"type": "input_text", "text": t}, _text),
    st.builds(lambda t: {"type": "output_text", "text": t}, _text),
    st.just({"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "low"}),
    st.just({"type": "input_file", "filename": "a.txt", "file_data": "aGk="}),
    st.just({"type": "refusal", "refusal": "no"}),
    st.just({"type": "bogus"}),
)
_input_item = st.one_of(
    st.builds(lambda r, c: {"type": "message", "role": r, "content": c},
              st.sampled_from(["user", "assistant", "developer", "system", "robot"]), _text | st.lists(_part,
                                                                                                   max_size=3)),
    st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant"]), _text),
    st.builds(lambda c, n, a, ns: {"type": "function_call", "call_id": c, "name": n, "arguments": a,
                                   **({"namespace": ns} if ns is not None else {})},
              st.sampled_from(["c1", "c2", ""]), st.sampled_from(["read", "ls"]),
              st.sampled_from(["{}", '{"a":1}', "", 3]),
              st.none() | st.just("fs")),
    st.builds(lambda c, t: {"type": "custom_tool_call", "call_id": c, "name": "apply_patch", "input": t},
              st.sampled_from(["c3", "c4"]), _text),
    st.builds(lambda k, o: {"type": k, "call_id": "c1", "output": o},
              st.sampled_from(["function_call_output", "custom_tool_call_output"]),
              _text | st.lists(_part, max_size=3) | st.just(7)),
    st.sampled_from([{"type": "reasoning", "summary": []}, {"type": "web_search_call", "id": "ws"},
                     {"type": "mcp_call"}, {"type": "nope"}, {"content": "no type or role"}, "not an object"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_input_item, min_size=1, max_size=6), st.lists(_input_item, min_size=1, max_size=3))
def test_kept_input_items_translate_as_afresh(first: list[Any], more: list[Any]) -> None:
    """Codex's turns (its input resent with more each time): each request translated with the memo is what
    translating it afresh gives, and no kept translation is changed by a request (calls join a copy of a kept
    assistant message)."""
    def outcome(items: list[Any], memos: responses.Translations) -> tuple[Any, ...]:
        try:
            req = responses.parse_request({"model": "m", "input": copy.deepcopy(items), "store": False}, memos)
        except ApiError as err:
            return ("error", err.status, err.code, err.message, err.param)
        chat = responses.build_chat(req, [])
        raw = chat_bytes(chat, req.tools_json, memos.history)
        assert raw in (b"", jsoncodec.dumps(chat))
        return (req.input_messages, req.dropped.kinds, chat)

    for items in (first, first + more, first + more + first, more):
        kept = outcome(items, _Kept.answers)
        afresh = outcome(items, responses.Translations(history=_Fresh()))
        assert kept == afresh
        # the kept translations were not changed by the requests using them
        assert outcome(items, _Kept.answers) == afresh


_tool = st.builds(lambda n, d, strict: {"type": "function", "name": n, "description": d, "strict": strict,
                                        "parameters": {"type": "object", "properties": {"p": {"type": "string",
                                                                                              "description": d}}}},
                  st.sampled_from(["read", "write", "grep"]), _text, st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(_tool, max_size=3, unique_by=lambda t: t["name"]),
       st.dictionaries(_text, _text, max_size=3), _json, st.none() | _text)
def test_response_json_is_the_response_encoded(tools: list[dict[str, Any]], metadata: dict[str, Any], extra: Any,
                                               text: str | None) -> None:
    """A Response (and each streamed event that carries one) with its echoed tools put in from their kept encoding
    is the Response encoded whole, as before; a value orjson cannot encode (an integer beyond 64 bits) takes the
    standard library's way as before."""
    tools = [{**t, "parameters": {**t["parameters"], "examples": [extra]}} for t in tools]  # (echoed as sent)
    body = {"model": "m", "input": "hi", "tools": tools, "metadata": metadata, "store": False}
    req = responses.parse_request(body)
    doc = responses.response_object(req, "resp_1", 1, status="completed", output=[], usage=None)
    assert responses.response_json(req, doc) == jsoncodec.dumps(doc)
    stream = responses.ResponsesStream(req, "resp_1")
    events = stream.feed({"choices": [{"index": 0, "delta": {"content": text or ""}}]})
    events += stream.finish()
    assert stream.response is not None
    done = events[-1]
    assert done == sse_event("response.completed", {"type": "response.completed",
                                                    "sequence_number": len(events) - 1, "response": stream.response})
    failed = responses.ResponsesStream(req, "resp_2")
    out = failed.error(ApiError(502, "gone", "upstream_error"))
    assert failed.response is not None
    assert out[-1] == sse_event("response.failed", {"type": "response.failed", "sequence_number": len(out) - 1,
                                                    "response": failed.response})


# --- streamed calls: argument deltas from envelopes encoded once per call ----------------------------------------

class _OldMessages(anthropic_in.MessagesStream):
    """The encoder before: every delta unpacked through the chunk's parts, every event encoded whole (the
    Responses deltas as its `_event` wrote them)."""

    def feed(self, doc: dict[str, Any] | StreamChunk) -> list[bytes]:
        return self._feed_parts(doc, self._start())

    def _partial_json(self, text: str) -> bytes:
        self._out_bytes += len(text)
        return self._delta({"type": "input_json_delta", "partial_json": text})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                 "delta": delta})


class _OldResponses(responses.ResponsesStream):
    def feed(self, doc: dict[str, Any] | StreamChunk) -> list[bytes]:
        out = self._feed_parts(doc, self._start())
        self._unsent = []  # (returned: `error` sends only what a failed call numbered)
        return out

    def _call_args(self, index: int, text: str) -> list[bytes]:
        item = self._tools[index]
        self._grow(text)
        if self._custom(item):
            return []
        return [self._event("response.function_call_arguments.delta", {
            "item_id": item["id"], "output_index": self.items.index(item), "delta": text})]

    def _open_delta(self, prefix: bytes, text: str, tail: bytes) -> bytes:
        item = self._open
        assert item is not None
        if prefix.startswith(b"event: response.output_text.delta"):
            return self._event("response.output_text.delta", {
                "item_id": item["id"], "output_index": self.items.index(item), "content_index": 0, "delta": text,
                "logprobs": []})
        return self._event("response.reasoning_text.delta", {
            "item_id": item["id"], "output_index": self.items.index(item), "content_index": 0, "delta": text})


_piece = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_args = st.builds(lambda i, t: {"tool_calls": [{"index": i, "function": {"arguments": t}}]}, st.integers(0, 1),
                  st.text(min_size=1, max_size=6))
_delta = st.one_of(
    _args, _args, _args,
    st.builds(lambda t: {"content": t}, _piece),
    st.builds(lambda t: {"reasoning_content": t}, _piece),
    st.builds(lambda i, n: {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                            "function": {"name": n, "arguments": ""}}]},
              st.integers(0, 1), st.sampled_from(["read", "apply_patch", "fs__ls", "other"])),
    st.builds(lambda i, t: {"tool_calls": [{"index": i, "function": {"arguments": t}}]}, st.integers(0, 2), _piece),
    st.builds(lambda i, t: {"tool_calls": [{"index": i, "function": {"arguments": t, "name": ""}}]},
              st.integers(0, 2), _piece),
    st.builds(lambda t: {"tool_calls": [{"index": True, "function": {"arguments": t}}]}, _piece),
    st.builds(lambda t: {"tool_calls": [{"index": 0, "function": {"arguments": t}},
                                        {"index": 1, "function": {"arguments": t}}]}, _piece),
)
_item = st.one_of(
    st.builds(lambda d: StreamChunk(b"", d), _delta),
    st.builds(lambda d, f: {"choices": [{"index": 0, "delta": d, "finish_reason": f}]}, _delta,
              st.sampled_from([None, "stop", "tool_calls", "length"])),
    st.just({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
)
_STREAM_TOOLS = [{"type": "function", "name": "read", "parameters": {"type": "object"}},
                 {"type": "custom", "name": "apply_patch"},
                 {"type": "namespace", "name": "fs", "tools": [{"type": "function", "name": "ls"}]}]


def _ids(monkeypatch: pytest.MonkeyPatch) -> None:
    count = iter(range(10 ** 9))
    fake = lambda prefix: f"{prefix}{next(count)}"  # noqa: E731 - a deterministic new_id
    monkeypatch.setattr(anthropic_in, "new_id", fake)
    monkeypatch.setattr(responses, "new_id", fake)


_ARGS0 = [StreamChunk(b"", {"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in ("0", "000000")]
_TEXT = StreamChunk(b"", {"content": "000000"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_item, min_size=1, max_size=5), max_size=8))
@example(reads=[[_ARGS0[0], _TEXT, _ARGS0[0]],  # text waiting behind a call when the Response passes its bound:
                [_ARGS0[0], StreamChunk(b"", {"tool_calls": [{"index": 0, "id": "call_0", "type": "function",  # the
                                                             "function": {"name": "read", "arguments": ""}}]}),
                 _TEXT, _TEXT, _ARGS0[1]],  # error event still goes out (writing what waited failed too)
                [_TEXT, _ARGS0[0], _ARGS0[0], _ARGS0[1], StreamChunk(b"", {"content": "0"})]])
def test_streamed_events_are_the_bytes_of_before(monkeypatch: pytest.MonkeyPatch,
                                                 reads: list[list[dict[str, Any] | StreamChunk]]) -> None:
    """Messages and Responses streams (fed read by read, as the relay does): the same bytes, event for event,
    as the encoders that unpacked every delta and encoded every event whole; a failure is raised alike."""
    req = responses.parse_request({"model": "m", "input": "hi", "tools": _STREAM_TOOLS, "store": False})
    monkeypatch.setattr(responses.time, "time", lambda: 1234.0)
    encoders: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
        (lambda: anthropic_in.MessagesStream("m", ["END"], 7), lambda: _OldMessages("m", ["END"], 7)),
        (lambda: responses.ResponsesStream(req, "resp_1", max_chars=40),
         lambda: _OldResponses(req, "resp_1", max_chars=40))]
    for new, old in encoders:
        results = []
        for make in (new, old):
            _ids(monkeypatch)
            enc = make()
            out: list[Any] = []
            try:
                for read in reads:
                    out.append(b"".join(b for item in read for b in enc.feed(item)))
                out += enc.finish()
            except ApiError as err:
                out += ["failed", err.code, enc.error(err)]
            results.append(out)
        assert results[0] == results[1]


def test_the_same_message_objects_are_found_without_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A history whose parsed messages are the very objects of an earlier request (what the router's KnownHistory
    hands out) is found by identity: nothing encoded again, the same translation; an equal copy is found by its
    bytes and becomes the message found by identity; evicted entries leave no identity behind."""
    from router.dialects import common

    memos = anthropic_in.Translations(history=HistoryMemo(max_entries=4, max_bytes=1 << 20),
                                      conversations=Conversations(max_runs=0))  # (each message looked up)
    history = [{"role": "user", "content": [{"type": "text", "text": f"turn {i}"}]} for i in range(3)]
    first = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": history}, memos)
    encoded = 0
    real = common._orjson_bytes

    def counted(value: object) -> bytes | None:
        nonlocal encoded
        encoded += 1
        return real(value)

    monkeypatch.setattr(common, "_orjson_bytes", counted)
    again = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": history}, memos)
    assert encoded == 0 and again.chat == first.chat and memos.history.hits == 3
    copies = copy.deepcopy(history)
    third = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": copies}, memos)
    assert encoded == 3 and third.chat == first.chat
    anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": copies}, memos)
    assert encoded == 3  # the copies are now the messages found by identity
    monkeypatch.undo()
    for i in range(8):
        anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"other {i}"}]}]}, memos)
    memo = memos.history
    assert len(memo) <= 4 and len(memo._sources) == len(memo)


@pytest.mark.parametrize("kind", ["text", "small_values"])
def test_history_memo_counts_what_it_holds(kind: str) -> None:
    """Its byte bound holds for memory within 2x: it kept orjson's own bytes (an allocation ~8x their length) and
    counted the parsed message it keeps as long as its encoding (an empty object is 64 bytes, its JSON 2)."""
    import gc
    import os
    import tracemalloc

    import orjson

    from router.dialects.common import Memos

    memos: Memos[Any] = Memos(history=HistoryMemo(max_entries=100_000, max_bytes=2 << 20,
                                                  max_entry_bytes=64 << 10))
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(600 if kind == "text" else 300):  # each fills the 2 MiB bound (~280 or ~80 entries)
            tok = os.urandom(6).hex()
            said: Any = ({"type": "text", "text": f"done {tok} " + "z" * 2000} if kind == "text" else
                         {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"n": tok, "x": [{}] * 300}})
            body = orjson.loads(orjson.dumps({"model": "m", "max_tokens": 16, "messages": [
                {"role": "user", "content": [{"type": "text", "text": f"do {tok}"}]},
                {"role": "assistant", "content": [said]}]}))
            anthropic_in.parse_request(body, memos)
            del body
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    counted = memos.history.bytes
    assert counted <= 2 << 20
    assert held <= 2 * counted, (held, counted)
