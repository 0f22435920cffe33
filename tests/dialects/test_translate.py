"""The pure translators on their own: shapes the end-to-end tests do not reach."""

from __future__ import annotations

import json

from router.dialects import anthropic_in, anthropic_out, responses
from router.errors import ApiError
from tests.dialects.conftest import CHAT_WEATHER


def events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for item in raw:
        name, data = item.decode().strip().split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_chat_to_messages_merges_turns_and_repairs_arguments() -> None:
    req = anthropic_out.messages_request({
        "model": "claude", "parallel_tool_calls": False, "tools": [CHAT_WEATHER, {"type": "custom", "name": "x"}],
        "messages": [
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "  \n", "tool_calls": [
                {"id": "call.1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{'city': 'A',}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "[1]"}}]},
            {"role": "tool", "tool_call_id": "call.1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "and?"},
        ]})
    assert req["system"] == "rules" and req["max_tokens"] == anthropic_out.DEFAULT_MAX_TOKENS
    assert req["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert [t["name"] for t in req["tools"]] == ["get_weather"]
    assert req["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "A"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]}
    assert req["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "two"},
        {"type": "text", "text": "and?"}]}
    assert "tool_choice" not in anthropic_out.messages_request({"model": "c", "tool_choice": "required",
                                                                 "messages": []})


def test_thinking_is_left_out_of_a_tool_loop() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    base = {"model": "c", "max_tokens": 100, "temperature": 0.5, "reasoning_effort": "medium",
            "messages": [{"role": "user", "content": "go"}]}
    req = anthropic_out.messages_request(base)
    assert req["thinking"] == {"type": "enabled", "budget_tokens": 8192} and req["max_tokens"] == 8292
    assert "temperature" not in req
    loop = anthropic_out.messages_request({**base, "messages": [
        *base["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}]})
    assert "thinking" not in loop and loop["max_tokens"] == 100 and loop["temperature"] == 0.5


def test_messages_request_tool_result_images_and_documents() -> None:
    req = anthropic_in.parse_request({"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "text", "text": "shot:"},
                {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}}]},
            {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain",
                                                              "data": "abc"}}]}]})
    assert req.chat["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "shot:"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                                     {"type": "text", "text": "Notes\n\nabc"}]}]
    assert req.images == 1 and req.estimate_input_tokens() == anthropic_in.IMAGE_TOKENS + 5  # (20 bytes)


def test_thinking_fields_by_route_kind() -> None:
    on = {"type": "enabled", "budget_tokens": 2048}
    assert anthropic_in.thinking_fields(on, {"openai", "engine"}) == {}
    assert anthropic_in.thinking_fields(on, {"anthropic"}) == {"thinking": on}
    assert anthropic_in.thinking_fields({"type": "disabled"}, {"engine"}) == \
        {"chat_template_kwargs": {"enable_thinking": False}}
    assert anthropic_in.thinking_fields(None, {"engine"}) == {}


def test_messages_stream_drops_whitespace_before_a_call_and_orders_blocks() -> None:
    s = anthropic_in.MessagesStream("m", [], input_estimate=3)
    out = s.feed(chunk({"role": "assistant", "content": ""}))
    out += s.feed(chunk({"content": "\n\n"}))
    out += s.feed(chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "f",
                                                                                    "arguments": '{"a": 1}'}}]}))
    out += s.feed(chunk({"tool_calls": [{"index": 1, "id": "toolu_keep", "function": {"name": "g",
                                                                                        "arguments": "{}"}}]}))
    out += s.feed(chunk({}, "tool_calls"))
    out += s.finish()
    evs = events(out)
    assert [e for e, _ in evs] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                   "content_block_stop", "content_block_start", "content_block_delta",
                                   "content_block_stop", "message_delta", "message_stop"]
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 3
    first, second = evs[2][1]["content_block"], evs[5][1]["content_block"]
    assert first["type"] == "tool_use" and first["id"] == "call_x" and evs[2][1]["index"] == 0
    assert second["id"] == "toolu_keep" and evs[5][1]["index"] == 1
    # no usage from the upstream: estimated from the 12 bytes generated (the text and both calls' arguments)
    assert evs[8][1]["delta"]["stop_reason"] == "tool_use" and evs[8][1]["usage"]["output_tokens"] == 3


def test_messages_stream_empty_and_error() -> None:
    s = anthropic_in.MessagesStream("m", [])
    assert [e for e, _ in events(s.finish())] == ["message_start", "ping", "message_delta", "message_stop"]
    s = anthropic_in.MessagesStream("m", [])
    evs = events(s.error(ApiError(502, "gone", "upstream_error")))
    assert [e for e, _ in evs] == ["message_start", "ping", "error"]
    assert evs[-1][1] == {"type": "error", "error": {"type": "api_error", "message": "gone"}}


def test_responses_stream_reasoning_then_text() -> None:
    req = responses.parse_request({"model": "m", "input": "hi"})
    s = responses.ResponsesStream(req, "resp_1")
    out = s.feed(chunk({"reasoning_content": "hm"})) + s.feed(chunk({"content": "ok"})) + s.feed(chunk({}, "length"))
    out += s.finish()
    evs = events(out)
    assert [e for e, _ in evs] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.incomplete"]
    final = evs[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["type"] for o in final["output"]] == ["reasoning", "message"]
    assert responses.assistant_message(final["output"]) == {"role": "assistant", "content": "ok",
                                                             "reasoning_content": "hm"}


def test_anthropic_events_to_chunks() -> None:
    t = anthropic_out.MessagesToChunks("claude", include_usage=True)
    out = t.event({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}})
    out += t.event({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}})
    out += t.event({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"a":'}})
    out += t.event({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7}})
    out += t.event({"type": "message_stop"})
    docs = [json.loads(line[6:]) for line in out.decode().split("\n\n") if line.startswith("data: {")]
    assert docs[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "toolu_1"
    assert docs[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"a":'
    assert docs[3]["choices"][0]["finish_reason"] == "length"
    assert docs[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert out.endswith(b"data: [DONE]\n\n") and t.done
    assert json.loads(anthropic_out.error_body(529, b"not json")) == {"error": {
        "message": "Anthropic answered 529.", "type": "api_error", "param": None, "code": "api_error"}}


def test_a_tool_choice_without_tools_is_not_sent() -> None:
    """OpenAI's chat API refuses `tool_choice` and `parallel_tool_calls` without `tools`: a Messages request with a
    tool_choice and no tools, or a Responses request whose only tools are hosted ones (left out), sends neither."""
    req = anthropic_in.parse_request({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                                      "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})
    assert "tool_choice" not in req.chat and "parallel_tool_calls" not in req.chat
    with_tools = anthropic_in.parse_request({
        "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})
    assert with_tools.chat["tool_choice"] == "auto" and with_tools.chat["parallel_tool_calls"] is False
    hosted = responses.parse_request({"model": "m", "input": "hi", "tools": [{"type": "web_search"}],
                                      "tool_choice": "auto", "parallel_tool_calls": False})
    chat = responses.build_chat(hosted, [])
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_messages_stream_estimates_output_tokens_of_a_call_without_usage() -> None:
    """An upstream that sends no usage: the output tokens are estimated from what was generated, the arguments
    of a call included (a stream of one call said 0)."""
    s = anthropic_in.MessagesStream("m", [])
    s.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {
        "name": "get_weather", "arguments": '{"city": "' + "Paris " * 20 + '"}'}}]}, "finish_reason": "tool_calls"}]})
    delta = next(d for e, d in events(s.finish()) if e == "message_delta")
    assert delta["usage"]["output_tokens"] > 10 and delta["delta"]["stop_reason"] == "tool_use"


def test_tool_use_keeps_the_upstreams_call_id_anthropic_takes() -> None:
    """The client sends a tool_use id back with the call: the upstream's own id is kept where Anthropic's pattern
    (`^[a-zA-Z0-9_-]+$`) takes it (Mistral refuses any id but its 9 letters and digits: a `toolu_…` made here
    broke every second turn); a missing, repeated or unfit one (Kimi's `functions.f:0`) gets a fresh `toolu_…`."""
    ids = ["D681PevKs", "call_00_abc", "D681PevKs", "functions.get_weather:0", None]
    calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} if i else
             {"type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]
    doc = {"choices": [{"index": 0, "finish_reason": "tool_calls",
                        "message": {"role": "assistant", "content": None, "tool_calls": calls}}]}
    whole = [b["id"] for b in anthropic_in.to_message(doc, "m", [])["content"]]
    s = anthropic_in.MessagesStream("m", [])
    out = s.feed(chunk({"role": "assistant", "content": ""}))
    for k, call in enumerate(calls):
        out += s.feed(chunk({"tool_calls": [{"index": k, **call}]}))
    out += s.feed(chunk({}, "tool_calls")) + s.finish()
    streamed = [d["content_block"]["id"] for e, d in events(out) if e == "content_block_start"]
    for got in (whole, streamed):
        assert got[:2] == ["D681PevKs", "call_00_abc"]
        assert all(i.startswith("toolu_") for i in got[2:]) and len(set(got)) == 5
