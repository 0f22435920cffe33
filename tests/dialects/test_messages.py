"""The Anthropic Messages API in front of an OpenAI-compatible backend, driven by the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
import json
import math

import aiohttp
import anthropic
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, CHAT_WEATHER, claude, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of

BROKEN_HERMES = "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>"
USAGE = {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24, "prompt_tokens_details": {"cached_tokens": 8}}


def usage_chunk(model: str) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
            "usage": USAGE}


async def raw_events(url: str, body: dict) -> list[tuple[str, dict]]:
    """The SSE events of a streamed /v1/messages answer as (event name, data)."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/messages", json=body) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        text = (await resp.read()).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append((lines["event"], data))
    return events


async def post(url: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/messages", data=data,
                                                    headers={"Content-Type": "application/json",
                                                             **(headers or {})}) as resp:
        return resp.status, await resp.json()


def anthropic_error(doc: dict, kind: str) -> str:
    assert doc["type"] == "error" and doc["error"]["type"] == kind and doc["error"]["message"]
    return doc["error"]["message"]


async def test_text_and_request_translation(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("Hello there", "up-model", usage=USAGE)))
    r = await router(CFG.format(url=up.url))
    msg = await claude(r.url).messages.create(
        model="renamed", max_tokens=64, system=[{"type": "text", "text": "Be brief.",
                                                 "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}],
        stop_sequences=["END"], metadata={"user_id": "u1"}, extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5})
    assert msg.id.startswith("msg_") and msg.model == "renamed" and msg.role == "assistant"
    assert [(b.type, b.text) for b in msg.content] == [("text", "Hello there")]  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (12, 8, 4)
    body = up.requests[0].body
    assert body["model"] == "up-model" and "stream" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    ]
    assert (body["max_tokens"], body["stop"], body["temperature"], body["top_p"]) == (64, ["END"], 0.2, 0.9)
    assert "top_k" not in body and "user" not in body  # Anthropic-only; client ids are not forwarded


async def test_broken_tool_call_becomes_tool_use_and_tool_result_round_trips(fakes, router):
    up = await fakes()
    up.push(Step(json=completion(BROKEN_HERMES, "m")))
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    ask = {"role": "user", "content": "Weather in Paris?"}
    msg = await c.messages.create(model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                  tool_choice={"type": "any"}, messages=[ask])  # type: ignore[list-item]
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["tool_use"]
    use = msg.content[0]
    assert use.type == "tool_use" and use.id.startswith("call_")  # the id the repair gave the call
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert up.requests[0].body["tools"] == [CHAT_WEATHER] and up.requests[0].body["tool_choice"] == "required"

    up.push(Step(json=completion("Sunny in Paris.", "m")))
    msg2 = await c.messages.create(model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=[  # type: ignore
        ask,
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "is_error": True,
             "content": [{"type": "text", "text": "service down"}]},
            {"type": "text", "text": "Try again?"}]},
    ])
    assert msg2.content[0].type == "text" and msg2.content[0].text == "Sunny in Paris."
    assert up.requests[1].body["messages"][1:] == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": use.id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": use.id, "content": "Error: service down"},
        {"role": "user", "content": "Try again?"},
    ]


async def test_stream_text_event_sequence(fakes, router):
    up = await fakes()
    up.push(Step(sse=[*stream_of(["Hel", "lo"], "m"), usage_chunk("m")]))
    r = await router(CFG.format(url=up.url))
    events = await raw_events(r.url, {"model": "m", "max_tokens": 32, "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]})
    assert [e for e, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["model"] == "m" and start["content"] == [] and start["stop_reason"] is None
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert events[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[6][1]["usage"]["output_tokens"] == 4 and events[6][1]["usage"]["input_tokens"] == 12

    up.push(Step(sse=stream_of(["Hel", "lo"], "m")))
    async with claude(r.url).messages.stream(model="m", max_tokens=32,
                                             messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "Hello" and final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert up.requests[-1].body["stream"] is True and up.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_stream_broken_tool_arguments_arrive_as_valid_tool_use(fakes, router):
    up = await fakes()
    sse = [chunk("m", {"role": "assistant", "content": ""}),
           chunk("m", {"content": "Checking."}),
           chunk("m", {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": "get_weather", "arguments": ""}}]}),
           chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": "{'city': "}}]}),
           chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": "'Paris',}"}}]}),
           chunk("m", {}, "tool_calls")]
    up.push(Step(sse=sse), Step(sse=sse))
    r = await router(CFG.format(url=up.url))
    async with claude(r.url).messages.stream(model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore
                                             messages=[{"role": "user", "content": "weather?"}]) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    use = final.content[1]
    assert use.type == "tool_use" and use.input == {"city": "Paris"} and use.id == "call_1"  # the upstream's id

    events = await raw_events(r.url, {"model": "m", "max_tokens": 64, "stream": True, "tools": [ANTHROPIC_WEATHER],
                                      "messages": [{"role": "user", "content": "weather?"}]})
    starts = [d["content_block"] for e, d in events if e == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["input"] == {} and starts[1]["name"] == "get_weather"
    partial = "".join(d["delta"]["partial_json"] for e, d in events
                      if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"city": "Paris"}
    stops = [d["index"] for e, d in events if e == "content_block_stop"]
    assert stops == [0, 1]


async def test_thinking_blocks_from_reasoning_content(fakes, router):
    up = await fakes()
    doc = completion("Hi!", "m")
    doc["choices"][0]["message"]["reasoning_content"] = "The user greets me."
    up.push(Step(json=doc))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                      chunk("m", {"reasoning_content": "Think"}), chunk("m", {"reasoning_content": "ing."}),
                      chunk("m", {"content": "Hi!"}), chunk("m", {}, "stop")]))
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    thinking = {"type": "enabled", "budget_tokens": 2048}
    msg = await c.messages.create(model="m", max_tokens=4096, thinking=thinking,  # type: ignore[arg-type]
                                  messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "The user greets me."  # type: ignore[union-attr]
    # a generic OpenAI-compatible provider gets no field it may refuse
    assert "thinking" not in up.requests[0].body and "chat_template_kwargs" not in up.requests[0].body
    async with c.messages.stream(model="m", max_tokens=4096, thinking=thinking,  # type: ignore[arg-type]
                                 messages=[{"role": "user", "content": "hi"}]) as s:
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking."  # type: ignore[union-attr]
    assert final.content[1].text == "Hi!"  # type: ignore[union-attr]


async def test_streamed_thinking_block_ends_with_a_signature_delta(fakes, router):
    """Anthropic ends every thinking block with a `signature_delta`, and @ai-sdk/anthropic reads a block's signature
    only from it: without one it dropped the reasoning from the history it sends back (the next turn reached the
    upstream without `reasoning_content`). The block ends with an empty one, as the whole answer's block carries
    `"signature": ""`; a text block gets none."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                      chunk("m", {"reasoning_content": "Think"}), chunk("m", {"reasoning_content": "ing."}),
                      chunk("m", {"content": "Hi!"}), chunk("m", {}, "stop")]))
    r = await router(CFG.format(url=up.url))
    events = await raw_events(r.url, {"model": "m", "max_tokens": 64, "stream": True,
                                      "messages": [{"role": "user", "content": "hi"}]})
    blocks = [(e, d["delta"]["type"] if e == "content_block_delta" else d.get("index"))
              for e, d in events if e.startswith("content_block")]
    assert blocks == [("content_block_start", 0), ("content_block_delta", "thinking_delta"),
                      ("content_block_delta", "thinking_delta"), ("content_block_delta", "signature_delta"),
                      ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", "text_delta"),
                      ("content_block_stop", 1)]
    assert {"type": "signature_delta", "signature": ""} in [d["delta"] for e, d in events
                                                            if e == "content_block_delta"]


async def test_stop_reasons(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("cut", "m", finish_reason="length")))
    stopped = completion("done", "m")
    stopped["choices"][0]["stop_reason"] = "END"  # the matched stop string, as vLLM reports it
    up.push(Step(json=stopped))
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    msg = await c.messages.create(model="m", max_tokens=3, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "max_tokens"
    msg = await c.messages.create(model="m", max_tokens=30, stop_sequences=["END"],
                                  messages=[{"role": "user", "content": "x"}])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("tools", [False, True], ids=["plain", "repaired"])
async def test_a_stop_string_reported_as_matched_stop_is_the_stop_sequence(fakes, router, stream, tools):
    """SGLang names the stop string that ended the text `matched_stop` (vLLM: `stop_reason`; a token id when
    the model's own end token stopped it): the answer's stop reason is "stop_sequence" with that string, through
    the repaired path too (tools declared), not "end_turn"."""
    up = await fakes()
    if stream:
        last = chunk("m", {}, "stop")
        last["choices"][0]["matched_stop"] = "END"
        up.push(Step(sse=[*stream_of(["Sunny"], "m")[:-1], last]))
    else:
        done = completion("Sunny", "m")
        done["choices"][0]["matched_stop"] = "END"
        up.push(Step(json=done))
    r = await router(CFG.format(url=up.url))
    kw = {"tools": [ANTHROPIC_WEATHER]} if tools else {}
    msg = await claude_message(r.url, stream, model="m", max_tokens=30, stop_sequences=["END"],
                               messages=[{"role": "user", "content": "x"}], **kw)
    assert [(b.type, b.text) for b in msg.content] == [("text", "Sunny")]
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("repair", ["no-tools", "off"])
async def test_tool_calls_finish_without_a_call_is_end_turn(fakes, router, stream, repair):
    """An upstream that says finish_reason "tool_calls" with text only (no tools declared, or declared with repair
    off, so nothing turns the text into a call): no tool_use block, so the stop reason is "end_turn" (it said
    "tool_use", and a client loop waited for tool results it had no call for)."""
    up = await fakes()
    up.push(Step(sse=stream_of(["Just", " text."], "m", "tool_calls"), interval=0.01) if stream else
            Step(json=completion("Just text.", "m", finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    kw = {"tools": [ANTHROPIC_WEATHER], "extra_headers": {"x-agentgate-repair": "off"}} if repair == "off" else {}
    msg = await claude_message(r.url, stream, model="m", max_tokens=64,
                               messages=[{"role": "user", "content": "Summarise the conversation."}], **kw)
    assert [(b.type, b.text) for b in msg.content] == [("text", "Just text.")]
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": "hi"}, "messages"),
    ({"model": "m", "max_tokens": "5", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}, "video"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    # integers past the float range (valid JSON): out of range, not an OverflowError (a 500)
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "temperature": 10**400},
     "temperature"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "top_p": -(10**400)}, "top_p"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"name": "t"}]}, "input_schema"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    # what Anthropic refuses too: a thinking budget under 1024, a user message without content
    ({"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "x"}],
      "thinking": {"type": "enabled", "budget_tokens": 1023}}, "budget_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}, "messages.0.content"),
    ({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "user", "content": ""}]},
     "messages.2.content"),
])
async def test_invalid_requests_are_anthropic_shaped_400s(fakes, router, body, param):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, doc = await post(r.url, body)
    assert status == 400
    assert param in anthropic_error(doc, "invalid_request_error")
    assert not up.requests


async def test_what_anthropic_takes_is_served(fakes, router):
    """The least thinking budget, a budget past max_tokens (the interleaved-thinking beta allows one), adaptive
    thinking, an empty final assistant message (a prefill) and a user message of thinking blocks alone go
    through."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for thinking in ({"type": "enabled", "budget_tokens": 1024}, {"type": "adaptive"}, {"type": "disabled"}):
        status, _ = await post(r.url, {"model": "m", "max_tokens": 5, "thinking": thinking,
                                       "messages": [{"role": "user", "content": "x"},
                                                    {"role": "assistant", "content": []}]},
                                 {"anthropic-beta": "interleaved-thinking-2025-05-14"})
        assert status == 200
    status, _ = await post(r.url, {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "redacted_thinking", "data": "abc"}]}]})
    assert status == 200


async def test_errors_are_anthropic_shaped(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    ask = [{"role": "user", "content": "x"}]
    status, doc = await post(r.url, b"{not json")
    assert status == 400 and anthropic_error(doc, "invalid_request_error")
    with pytest.raises(anthropic.NotFoundError) as nf:
        await c.messages.create(model="nope", max_tokens=5, messages=ask)  # type: ignore[arg-type]
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    up.push(Step(status=400, json={"error": {"message": "context too long", "type": "invalid_request_error",
                                             "code": "context_length_exceeded"}}))
    with pytest.raises(anthropic.BadRequestError) as bad:
        await c.messages.create(model="m", max_tokens=5, messages=ask)  # type: ignore[arg-type]
    assert "context too long" in bad.value.message
    assert bad.value.response.headers["x-agentgate-provider"] == "lab"  # as on /v1/chat/completions
    up.push(Step(status=500), Step(status=500))
    with pytest.raises(anthropic.InternalServerError) as err:
        await c.messages.create(model="m", max_tokens=5, messages=ask)  # type: ignore[arg-type]
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "api_error"  # type: ignore


async def test_an_upstream_timeout_is_anthropics_timeout_error(fakes, router):
    """Anthropic answers a request that timed out 504 `timeout_error` (the SDK's GatewayTimeoutError), not
    `api_error`."""
    up = await fakes()
    up.push(Step(gate=asyncio.Event()))  # never answers
    r = await router(CFG.format(url=up.url).replace("retries: 1,", "retries: 0, timeouts: {first_byte: 0.2},"))
    status, doc = await post(r.url, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert status == 504
    anthropic_error(doc, "timeout_error")


async def test_api_key_via_x_api_key(fakes, router):
    up = await fakes()
    r = await router("server: {api_keys: [sk-good]}\n" + CFG.format(url=up.url))
    ask = [{"role": "user", "content": "x"}]
    with pytest.raises(anthropic.AuthenticationError) as auth:
        await claude(r.url, "sk-bad").messages.create(model="m", max_tokens=5, messages=ask)  # type: ignore
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    msg = await claude(r.url, "sk-good").messages.create(model="m", max_tokens=5, messages=ask)  # type: ignore
    assert msg.content[0].text == "echo: x"  # type: ignore[union-attr]


async def test_failure_mid_stream_ends_with_error_event(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c", "d"], "m"), reset_after=2))
    r = await router(CFG.format(url=up.url))
    seen = []
    with pytest.raises(anthropic.APIStatusError) as err:
        async with claude(r.url).messages.stream(model="m", max_tokens=5,
                                                 messages=[{"role": "user", "content": "x"}]) as s:
            async for text in s.text_stream:
                seen.append(text)
    assert seen == ["a"]
    assert err.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_count_tokens_estimate(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    system, text = "You are terse.", "How many tokens is this sentence?"
    counted = await claude(r.url).messages.count_tokens(model="m", system=system,
                                                        messages=[{"role": "user", "content": text}])
    assert counted.input_tokens == math.ceil(len((system + text).encode()) / 4)
    with_tools = await claude(r.url).messages.count_tokens(model="m", tools=[ANTHROPIC_WEATHER],  # type: ignore
                                                           messages=[{"role": "user", "content": text}])
    assert with_tools.input_tokens > counted.input_tokens
    assert not up.requests
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages/count_tokens",
                                                    json={"model": "m", "messages": []}) as resp:
        assert resp.status == 400 and (await resp.json())["type"] == "error"
