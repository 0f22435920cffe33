"""The translated routes' tools lists, translated once per distinct list (`ToolsMemo`), the chat body's bytes made
with the list's kept encoding (`chat_bytes`), and the dialects' SSE framing."""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp
import pytest

from repair import ToolIndex
from router import jsoncodec
from router.dialects import anthropic_in, responses
from router.dialects.common import ToolsJson, ToolsMemo, chat_bytes, sse_event
from router.errors import ApiError
from router.state import STATE
from router.toolcache import KnownTools
from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step, completion


def _schema(i: int) -> dict[str, Any]:
    return {"type": "object", "properties": {"path": {"type": "string", "description": f"Fichier n°{i} — ü"},
                                             "n": {"type": "integer"}}, "required": ["path"]}


def _messages_body(tools: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "system": "You are a coding agent.", "tools": tools,
            "messages": [{"role": "user", "content": "list files"},
                         {"role": "assistant", "content": [
                             {"type": "text", "text": "Looking."},
                             {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.py"}},
                             {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": "print(1)"}]}], **extra}


MESSAGES_TOOLS = [
    {"name": "read", "description": "Read a file.", "input_schema": _schema(1)},
    {"name": "write", "input_schema": _schema(2)},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "web_search_20250305", "name": "web_search"},
    {"type": "custom", "name": "grep", "description": "Search.", "input_schema": _schema(3)},
]

RESPONSES_TOOLS = [
    {"type": "function", "name": "read", "description": "Read a file.", "parameters": _schema(1), "strict": True},
    {"type": "function", "name": "write", "parameters": _schema(2)},
    {"type": "custom", "name": "apply_patch", "description": "Patch.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
    {"type": "namespace", "name": "fs", "description": "Files.", "tools": [
        {"type": "function", "name": "ls", "parameters": _schema(4)}, {"type": "web_search"}]},
    {"type": "web_search_preview"},
]


def _responses_body(tools: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "instructions": "Be brief.", "tools": tools, "store": False,
            "input": [{"role": "user", "content": "hi"},
                      {"type": "function_call", "call_id": "c1", "name": "read", "arguments": '{"path":"a"}'},
                      {"type": "function_call_output", "call_id": "c1", "output": "x"}], **extra}


def test_messages_tools_translated_once_and_the_same_as_fresh() -> None:
    memos = anthropic_in.Translations()
    first = anthropic_in.parse_request(copy.deepcopy(_messages_body(MESSAGES_TOOLS)), memos)
    again = anthropic_in.parse_request(copy.deepcopy(_messages_body(MESSAGES_TOOLS)), memos)
    assert memos.tools.hits == 1 and len(memos.tools) == 1
    assert again.chat["tools"] is first.chat["tools"]  # shared, read-only
    fresh = anthropic_in.parse_request(copy.deepcopy(_messages_body(MESSAGES_TOOLS)))
    for req in (first, again):
        assert req.chat == fresh.chat
        assert req.text_bytes == fresh.text_bytes
        assert req.dropped.kinds == fresh.dropped.kinds == ["server_tool_use", "web_search_20250305"]
        assert req.estimate_input_tokens() == fresh.estimate_input_tokens()


def test_messages_text_bytes_count_the_tools_as_before() -> None:
    """The estimate counts each chat tool's function (client tools: the whole tool) as the standard library
    writes it, as it always did."""
    req = anthropic_in.parse_request({"model": "m", "max_tokens": 1, "tools": MESSAGES_TOOLS[:3],
                                      "messages": [{"role": "user", "content": "hé"}]})
    tools = req.chat["tools"]
    expected = len("hé".encode()) + sum(len(json.dumps(t["function"], ensure_ascii=False).encode())
                                        for t in tools[:2]) + len(json.dumps(tools[2], ensure_ascii=False).encode())
    assert req.text_bytes == expected


def test_bad_tools_are_refused_every_time() -> None:
    bad = [*MESSAGES_TOOLS[:1], {"name": "x"}]
    messages_memos, responses_memos = anthropic_in.Translations(), responses.Translations()
    for _ in range(2):
        with pytest.raises(ApiError) as caught:
            anthropic_in.parse_request(_messages_body(bad), messages_memos)
        assert caught.value.status == 400 and "input_schema" in caught.value.message
    assert len(messages_memos.tools) == 0
    dup = [RESPONSES_TOOLS[0], RESPONSES_TOOLS[0]]
    for _ in range(2):
        with pytest.raises(ApiError):
            responses.parse_request(_responses_body(dup), responses_memos)
    assert len(responses_memos.tools) == 0


def test_responses_tools_translated_once_and_the_same_as_fresh() -> None:
    memos = responses.Translations()
    first = responses.parse_request(copy.deepcopy(_responses_body(RESPONSES_TOOLS)), memos)
    again = responses.parse_request(copy.deepcopy(_responses_body(RESPONSES_TOOLS)), memos)
    assert memos.tools.hits == 1
    fresh = responses.parse_request(copy.deepcopy(_responses_body(RESPONSES_TOOLS)))
    for req in (first, again):
        assert req.params == fresh.params and req.echo == fresh.echo
        assert req.client_tools == fresh.client_tools
        assert req.dropped.kinds == fresh.dropped.kinds == ["web_search", "web_search_preview"]
        assert responses.build_chat(req, []) == responses.build_chat(fresh, [])


@pytest.mark.parametrize("extra", [{}, {"temperature": 0.5, "top_k": 3, "stream": True},
                                   {"tool_choice": {"type": "tool", "name": "read"}}])
def test_messages_chat_bytes_are_the_chat_body_encoded(extra: dict[str, Any]) -> None:
    for _ in range(2):
        req = anthropic_in.parse_request(_messages_body(MESSAGES_TOOLS, **extra))
        chat = {**req.chat, **anthropic_in.thinking_fields({"type": "enabled", "budget_tokens": 9}, {"engine"})}
        raw = chat_bytes(chat, req.tools_json)
        assert raw == jsoncodec.dumps(chat) and json.loads(raw) == chat


@pytest.mark.parametrize("choice", [None, "required", {"type": "function", "name": "read"},
                                    {"type": "allowed_tools", "mode": "auto",
                                     "tools": [{"type": "function", "name": "write"}]}])
def test_responses_chat_bytes_are_the_chat_body_encoded(choice: object) -> None:
    body = _responses_body(RESPONSES_TOOLS, **({"tool_choice": choice} if choice is not None else {}))
    req = responses.parse_request(body)
    chat = responses.build_chat(req, [])
    raw = chat_bytes(chat, req.tools_json)
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        assert raw == b""  # a narrowed list is not the one whose bytes were kept
    else:
        assert raw == jsoncodec.dumps(chat)


def test_chat_bytes_only_for_the_very_list() -> None:
    tools = [{"type": "function", "function": {"name": "a", "parameters": {}}}]
    kept = ToolsJson.of(tools)
    assert kept is not None
    assert chat_bytes({"model": "m", "tools": copy.deepcopy(tools)}, kept) == b""
    assert chat_bytes({"model": "m", "tools": tools}, None) == b""
    assert chat_bytes({"model": "m", "tools": tools, "max_tokens": 2 ** 70}, kept) == \
        json.dumps({"model": "m", "tools": tools, "max_tokens": 2 ** 70}, separators=(",", ":")).encode()
    assert ToolsJson.of([]) is None
    lone = ToolsJson.of([{"name": "\ud800"}])  # a lone surrogate: as its escape
    assert lone is not None and json.loads(lone.data) == [{"name": "\ud800"}]


def test_memo_stays_bounded_under_new_lists() -> None:
    """A client sending a new tools list on every request cannot grow the memo: bounded in entries and bytes; a
    list over the entry bound is never kept."""
    memo: ToolsMemo[Any] = ToolsMemo(max_entries=16, max_bytes=64 << 10, max_entry_bytes=8 << 10)
    memos = anthropic_in.Translations(tools=memo)
    for i in range(5000 // 10):
        tools = [{"name": f"t{i}_{j}", "input_schema": _schema(j)} for j in range(10)]
        anthropic_in.parse_request({"model": "m", "max_tokens": 1, "tools": tools,
                                    "messages": [{"role": "user", "content": "x"}]}, memos)
        assert len(memo) <= 16 and memo.bytes <= 64 << 10
    huge = [{"name": f"h{j}", "input_schema": _schema(j)} for j in range(200)]
    assert memo.key(huge) is None
    for _ in range(2):
        req = anthropic_in.parse_request({"model": "m", "max_tokens": 1, "tools": huge,
                                          "messages": [{"role": "user", "content": "x"}]}, memos)
        assert len(req.chat["tools"]) == 200 and not req.learn_tools
    assert memo.bytes <= 64 << 10
    assert memo.key([{"n": 2 ** 70}]) is not None  # beyond orjson: the standard library encodes it


@pytest.mark.parametrize("doc", [
    {"type": "ping"},
    {"type": "content_block_delta", "index": 3,
     "delta": {"type": "text_delta", "text": "héllo\n\t\"quoted\" \u2028 <"}},
    {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 12, "x": 0.25}},
    {"a": [1, -2, 3.5, True, False, None, "\u001f\u007f/"], "é": {"nested": []}},
])
def test_sse_event_is_the_compact_standard_text(doc: dict[str, Any]) -> None:
    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    assert sse_event("content_block_delta", doc) == f"event: content_block_delta\ndata: {payload}\n\n".encode()


def test_sse_event_writes_a_lone_surrogate_as_its_escape() -> None:
    assert sse_event("x", {"text": "\ud800"}) == b'event: x\ndata: {"text":"\\ud800"}\n\n'


def test_responses_stream_start_events_as_whole_documents() -> None:
    """The two opening events share one encoding of the snapshot: the same bytes as each event encoded whole."""
    big = {"type": "function", "name": "big", "parameters": {"type": "integer", "maximum": 2 ** 70}}  # (past orjson)
    req = responses.parse_request(_responses_body([*RESPONSES_TOOLS, big], metadata={"é": "ü"}))
    stream = responses.ResponsesStream(req, "resp_1")
    start = stream.feed({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    snap = responses.response_object(req, "resp_1", stream.created_at, status="in_progress", output=[], usage=None)
    for seq, name in enumerate(("response.created", "response.in_progress")):
        assert start[seq] == sse_event(name, {"type": name, "sequence_number": seq, "response": snap})
    assert json.loads(start[2].split(b"data: ", 1)[1])["sequence_number"] == 2


def test_a_list_is_offered_for_learning_once_then_found_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """First sight: translated, not offered (a list sent once is never learned). Second: offered, and that very
    list is then found by identity (what `KnownTools` hands to later requests) without being encoded."""
    raw = json.dumps(_messages_body(MESSAGES_TOOLS)).encode()
    known = KnownTools()
    memos = anthropic_in.Translations()
    first = anthropic_in.parse_request(jsoncodec.loads(raw), memos)
    body = jsoncodec.loads(raw)
    second = anthropic_in.parse_request(body, memos)
    assert not first.learn_tools and second.learn_tools
    known.learn(raw, body["tools"], ToolIndex(body["tools"]))
    later = known.parse(raw)
    assert later is not None and later["tools"] is body["tools"]

    def no_key(tools: list[Any]) -> bytes:
        raise AssertionError("encoded again")

    monkeypatch.setattr(memos.tools, "key", no_key)
    third = anthropic_in.parse_request(later, memos)
    assert not third.learn_tools and third.chat == second.chat and third.tools_json is second.tools_json
    monkeypatch.undo()
    fourth = anthropic_in.parse_request(jsoncodec.loads(raw), memos)  # not the known list: found by its bytes
    assert not fourth.learn_tools and fourth.chat == second.chat


async def test_routes_learn_the_agents_tools_and_answer_the_same(fakes: Any, router: Any) -> None:
    """Claude Code's and Codex's resent tools: from the third turn on parsed without them (the router's
    `KnownTools`), translated by identity, the upstream sent the same body every time."""
    up = await fakes()
    call = {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"path":"a.py"}'}}
    for _ in range(8):
        up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    bodies = {"/v1/messages": _messages_body(MESSAGES_TOOLS), "/v1/responses": _responses_body(RESPONSES_TOOLS)}
    async with aiohttp.ClientSession() as s:
        for path, body in bodies.items():
            for _ in range(4):
                async with s.post(r.url + path, data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200, await resp.text()
                    doc = await resp.json()
                if path == "/v1/messages":
                    assert [b["input"] for b in doc["content"] if b["type"] == "tool_use"] == [{"path": "a.py"}]
                else:
                    assert [json.loads(o["arguments"]) for o in doc["output"]] == [{"path": "a.py"}]
                    assert [t["type"] for t in doc["tools"]] == ["function", "function", "custom", "namespace"]
    known = r.app[STATE].tool_indexes.known
    for body in bodies.values():  # both clients' lists learned (on their second turn)
        parsed = known.parse(json.dumps(body).encode())
        assert parsed is not None and parsed == body
    sent = [json.dumps(q.body, sort_keys=True) for q in up.requests]
    assert len(set(sent[:4])) == 1 and len(set(sent[4:])) == 1
