"""Messages clients in front of Anthropic providers only: the body goes as the client sent it, the answer comes as
Anthropic sent it, through the real `anthropic` SDK. Through the chat form the router dropped thinking signatures
(and so turned thinking off in tool loops), every `cache_control` breakpoint (no prompt caching for Claude Code),
a tool result's `is_error`, the `anthropic-beta` header, and folded cache writes into input tokens."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, claude, claude_message
from tests.fakes.anthropic_upstream import API_KEY, AStep, error_doc, message, stream_events
from tests.fakes.openai_upstream import Step, completion

CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
SIGNED = [{"type": "thinking", "thinking": "plan", "signature": "EqQBCgIY"},
          {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]
USAGE = {"input_tokens": 20, "output_tokens": 30, "cache_creation_input_tokens": 5000, "cache_read_input_tokens": 7}
SYSTEM = [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]
BETA = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"


async def _serving(fake_anthropic, router, key: str = API_KEY):
    fake = await fake_anthropic()
    return fake, await router(CFG.format(url=fake.url, key=key))


def _turn_two(first: list[dict]) -> list[dict]:
    return [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": first},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "is_error": True,
                                          "content": "permission denied", "cache_control": {"type": "ephemeral"}}]}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_tool_loop_keeps_what_the_chat_form_cannot_hold(fake_anthropic, router, stream):
    fake, r = await _serving(fake_anthropic, router)
    if stream:
        fake.push(AStep(events=stream_events(SIGNED, "claude-sonnet-4-5", stop_reason="tool_use")))
    else:
        fake.push(AStep(json=message(SIGNED, "claude-sonnet-4-5", stop_reason="tool_use", usage=USAGE)))
    fake.push(AStep(json=message([{"type": "text", "text": "Sorry."}], "claude-sonnet-4-5")))
    c = claude(r.url)
    kw = {"model": "sonnet", "max_tokens": 4096, "system": SYSTEM, "tools": [ANTHROPIC_WEATHER],
          "metadata": {"user_id": "user_device_session"},
          "thinking": {"type": "enabled", "budget_tokens": 2048}, "extra_headers": {"anthropic-beta": BETA}}
    if stream:
        async with c.messages.stream(messages=[{"role": "user", "content": "Weather?"}], **kw) as s:  # type: ignore[arg-type]
            first = await s.get_final_message()
    else:
        first = await c.messages.create(messages=[{"role": "user", "content": "Weather?"}], **kw)  # type: ignore[arg-type]
        assert first.usage.cache_creation_input_tokens == 5000 and first.usage.input_tokens == 20
    assert first.model == "sonnet" and first.stop_reason == "tool_use"
    assert first.content[0].type == "thinking" and first.content[0].signature == "EqQBCgIY"
    blocks = [b.model_dump(exclude_none=True) for b in first.content]
    await c.messages.create(messages=_turn_two(blocks), **kw)  # type: ignore[arg-type]
    one, two = fake.requests
    assert one.body["model"] == two.body["model"] == "claude-sonnet-4-5"
    assert one.body["system"] == SYSTEM and one.body["thinking"] == two.body["thinking"]
    assert "metadata" not in one.body  # device and session ids are never forwarded
    assert one.headers["anthropic-beta"] == BETA and one.headers["x-api-key"] == API_KEY
    assert two.body["messages"][1]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "EqQBCgIY"}
    assert two.body["messages"][2]["content"][0]["is_error"] is True
    assert two.body["messages"][2]["content"][0]["cache_control"] == {"type": "ephemeral"}


async def test_a_client_error_is_anthropics_and_a_credential_is_never_echoed(fake_anthropic, router):
    fake, r = await _serving(fake_anthropic, router)
    fake.push(AStep(status=400, json=error_doc("invalid_request_error", f"messages.0: bad (key {API_KEY})")))
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude(r.url).messages.create(model="sonnet", max_tokens=10,
                                            messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 400 and "messages.0: bad" in info.value.message
    assert API_KEY not in json.dumps(info.value.body)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("status", "etype"), [(402, "billing_error"), (409, "conflict_error")])
async def test_any_4xx_but_429_is_returned_as_it_is(fake_anthropic, router, status, etype, stream):
    fake, r = await _serving(fake_anthropic, router)
    fake.push(AStep(status=status, json=error_doc(etype, f"Your credit balance is too low ({API_KEY})")))
    with pytest.raises(anthropic.APIStatusError) as info:
        ask = [{"role": "user", "content": "x"}]
        if stream:
            async with claude(r.url).messages.stream(model="sonnet", max_tokens=10, messages=ask) as s:
                await s.get_final_message()
        else:
            await claude(r.url).messages.create(model="sonnet", max_tokens=10, messages=ask)
    assert info.value.status_code == status and info.value.body["error"]["type"] == etype  # type: ignore[index]
    assert "Your credit balance is too low" in info.value.message and API_KEY not in json.dumps(info.value.body)
    assert info.value.response.headers["x-agentgate-provider"] == "claude"


async def test_a_stream_keeps_its_events_and_hides_a_credential(fake_anthropic, router):
    fake, r = await _serving(fake_anthropic, router)
    events = stream_events([{"type": "text", "text": f"the key is {API_KEY}!"}], "claude-sonnet-4-5")
    fake.push(AStep(events=events))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json={
            "model": "sonnet", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "x"}]}) as resp:
        text = (await resp.read()).decode()
    assert resp.status == 200 and API_KEY not in text
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names == [name for name, _ in events]
    start = json.loads(text.split("\n")[1][6:])
    assert start["message"]["model"] == "sonnet"


async def test_a_stream_that_stops_early_ends_with_an_error_event(fake_anthropic, router):
    fake, r = await _serving(fake_anthropic, router)
    fake.push(AStep(events=stream_events([{"type": "text", "text": "half"}], "claude-sonnet-4-5")[:-2]))
    with pytest.raises(anthropic.APIStatusError):
        async with claude(r.url).messages.stream(model="sonnet", max_tokens=10,
                                                 messages=[{"role": "user", "content": "x"}]) as s:
            await s.get_final_message()


async def test_a_route_that_may_reach_another_kind_is_translated(fake_anthropic, fakes, router):
    """With a fallback that is not Anthropic the body is translated for every hop (what the chat form holds)."""
    fake = await fake_anthropic()
    up = await fakes()
    up.push(Step(json=completion("from the fallback", "m")))
    fake.push(AStep(status=529, json=error_doc("overloaded_error", "Overloaded")))
    r = await router(f"""
providers:
  claude: {{type: anthropic, base_url: '{fake.url}', api_key: '{API_KEY}', retries: 0}}
  lab: {{type: openai, base_url: '{up.url}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5, fallbacks: [local]}}
  - {{name: local, provider: lab}}
""")
    out = await claude(r.url).messages.create(model="sonnet", max_tokens=10, system=SYSTEM,
                                              messages=[{"role": "user", "content": "x"}])
    assert out.content[0].text == "from the fallback"  # type: ignore[union-attr]
    assert fake.requests[0].body["system"] == "You are Claude Code."  # translated: the chat form's system text


async def test_count_tokens_is_anthropics(fake_anthropic, router):
    fake, r = await _serving(fake_anthropic, router)
    body = {"model": "sonnet", "system": SYSTEM, "messages": [{"role": "user", "content": "count me " * 50}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages/count_tokens", json=body) as resp:
        doc = await resp.json()
    (sent,) = fake.requests
    assert sent.body["model"] == "claude-sonnet-4-5" and sent.body["system"] == SYSTEM
    assert resp.headers["x-agentgate-token-count"] == "exact"
    assert doc == {"input_tokens": len(json.dumps({**body, "model": "claude-sonnet-4-5"},
                                                  separators=(",", ":")).encode()) // 3}


async def test_an_event_naming_message_stop_in_its_text_does_not_end_the_stream(fake_anthropic, router):
    """Code that handles Anthropic's events, written by the model: a text delta holding `"message_stop"` ended the
    relay there (no error, no stop reason)."""
    fake, r = await _serving(fake_anthropic, router)
    pieces = ['if event.type == "message_stop', '":\n    break\n', "message_stop", "more after"]
    events = stream_events([{"type": "text", "text": "x"}], "claude-sonnet-4-5")
    deltas = [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    at = next(i for i, (name, _) in enumerate(events) if name == "content_block_delta")
    events[at:at + 2] = deltas
    fake.push(AStep(events=events))
    async with claude(r.url).messages.stream(model="sonnet", max_tokens=50,
                                             messages=[{"role": "user", "content": "x"}]) as s:
        final = await s.get_final_message()
    assert final.content[0].text == "".join(pieces) and final.stop_reason == "end_turn"  # type: ignore[union-attr]


async def test_what_only_anthropic_takes_is_anthropics_to_judge(fake_anthropic, router):
    """A server tool named by tool_choice, a Files API image: bodies the translation's checks refused (400)."""
    fake, r = await _serving(fake_anthropic, router)
    body = {"model": "sonnet", "max_tokens": 50,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "web_search"},
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "file", "file_id": "file_011"}},
                {"type": "text", "text": "search this"}]}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages", json=body) as resp:
        assert resp.status == 200, await resp.text()
    assert fake.requests[0].body["tool_choice"] == body["tool_choice"]


async def test_a_200_that_is_an_error_falls_back(fake_anthropic, router):
    first, second = await fake_anthropic(), await fake_anthropic()
    first.push(AStep(json=error_doc("overloaded_error", "Overloaded")))
    second.push(AStep(json=message([{"type": "text", "text": "from the fallback"}], "claude-sonnet-4-5")))
    r = await router(f"""
providers:
  p0: {{type: anthropic, base_url: '{first.url}', api_key: '{API_KEY}', retries: 0}}
  p1: {{type: anthropic, base_url: '{second.url}', api_key: '{API_KEY}', retries: 0}}
models:
  - {{name: sonnet, provider: p0, model: claude-sonnet-4-5, fallbacks: [backup]}}
  - {{name: backup, provider: p1, model: claude-sonnet-4-5}}
""")
    out = await claude(r.url).messages.create(model="sonnet", max_tokens=10,
                                              messages=[{"role": "user", "content": "x"}])
    assert out.content[0].text == "from the fallback"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_anthropic_overloaded_reaches_the_client_as_overloaded(fake_anthropic, router, stream):
    """Anthropic's 529 `overloaded_error` (retries spent) is a 503 `overloaded_error`, not an `api_error`: what
    clients (Claude Code's fallback model among them) read as "busy, try later"."""
    fake, r = await _serving(fake_anthropic, router)
    fake.push(AStep(status=529, json=error_doc("overloaded_error", "Overloaded")))
    c = claude(r.url)
    with pytest.raises(anthropic.APIStatusError) as err:
        if stream:
            async with c.messages.stream(model="sonnet", max_tokens=10,
                                         messages=[{"role": "user", "content": "x"}]) as s:
                await s.get_final_message()
        else:
            await c.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 503
    assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_thinking_another_model_made_is_left_out_after_a_switch_to_claude(fake_anthropic, fakes, router,
                                                                                stream):
    """A translated route's answer holds the upstream's reasoning as a thinking block with an empty signature; the
    client keeps it, and after a switch to a Claude model (`/model`, `--continue --model`) resent it, forwarded as
    it was: Anthropic refuses unsigned thinking (400 "Invalid `signature` in `thinking` block"), every turn of the
    session. Such blocks (and a message holding nothing else) are left out; signed ones go as they are."""
    fake, up = await fake_anthropic(), await fakes()
    doc = completion("Hi.", "fake-model")
    doc["choices"][0]["message"]["reasoning_content"] = "The user greets me."
    up.push(Step(json=doc))
    r = await router(f"""
providers:
  claude: {{type: anthropic, base_url: '{fake.url}', api_key: '{API_KEY}', retries: 0}}
  lab: {{type: openai, base_url: '{up.url}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
  - {{name: coder, provider: lab, model: fake-model}}
""")
    c = claude(r.url)
    turn1 = [{"role": "user", "content": "hi"}]
    first = await c.messages.create(model="coder", max_tokens=2048, messages=turn1,  # type: ignore[arg-type]
                                    thinking={"type": "enabled", "budget_tokens": 1024})
    made = [b.model_dump(exclude_none=True) for b in first.content]
    assert made[0] == {"type": "thinking", "thinking": "The user greets me.", "signature": ""}
    only_thought = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}  # no signature at all
    history = [*turn1, {"role": "assistant", "content": made}, {"role": "user", "content": "again"},
               {"role": "assistant", "content": [*SIGNED[:1], {"type": "text", "text": "Signed."}]},
               {"role": "user", "content": "and?"}, only_thought, {"role": "user", "content": "once more"}]
    out = await claude_message(r.url, stream, model="sonnet", max_tokens=2048, messages=history,
                               thinking={"type": "enabled", "budget_tokens": 1024})
    assert out.content[0].text == "echo: once more"
    sent = fake.requests[-1].body["messages"]
    assert sent == [history[0], {"role": "assistant", "content": made[1:]}, *history[2:5], history[6]]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages/count_tokens",
                                                    json={"model": "sonnet", "messages": history}) as resp:
        assert resp.status == 200
    assert fake.requests[-1].body["messages"] == sent


def test_a_body_without_unsigned_thinking_goes_as_it_is() -> None:
    from router.api.messages_native import signed_history

    body = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": SIGNED}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    raw = json.dumps(body).encode()
    assert signed_history(raw, body) is body
    assert signed_history(b'{"thinking": {"type": "enabled"}}', body) is body  # no block: not even looked at
