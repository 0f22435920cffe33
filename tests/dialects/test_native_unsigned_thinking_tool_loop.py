"""A tool loop begun on a translated route (its answer: a thinking block with an empty signature, then a tool_use)
and continued on a Claude model (Claude Code's fallback model, `--continue --model` after an interrupted turn): the
pass-through left the unsigned thinking block out but kept `thinking` on, so the turn the loop continues started
with tool_use, which Anthropic refuses with thinking on ("When `thinking` is enabled, a final `assistant` message
must start with a thinking block"). Such a request goes without thinking, as a translated route's does."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

import tests.fakes.anthropic_upstream as fake_mod
from tests.dialects.conftest import ANTHROPIC_WEATHER, claude_message
from tests.fakes.anthropic_upstream import API_KEY, error_doc

CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
THINKING = {"type": "enabled", "budget_tokens": 2048}
CALL = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
RESULT = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny"}]}


def _history(thought: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": [thought, CALL]},
            RESULT]


UNSIGNED = {"type": "thinking", "thinking": "I should call get_weather.", "signature": ""}  # a translated answer's


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _with_thinking_rule(original: Any) -> Any:
    """The fake's checks and Anthropic's rule for thinking in a tool loop."""
    def check(headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]] | None:
        refused = original(headers, body)
        messages = body["messages"] if refused is None else []
        if not isinstance(body.get("thinking"), dict) or len(messages) < 2:
            return refused
        first = _blocks(messages[-2])[0]["type"]
        if any(b["type"] == "tool_result" for b in _blocks(messages[-1])) and \
                first not in ("thinking", "redacted_thinking"):
            return 400, error_doc("invalid_request_error", f"messages.{len(messages) - 2}.content.0.type: Expected "
                                  f"`thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is "
                                  "enabled, a final `assistant` message must start with a thinking block")
        return None
    return check


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_tool_loop_continued_after_unsigned_thinking_is_answered(fake_anthropic, router, monkeypatch,
                                                                         stream):
    monkeypatch.setattr(fake_mod, "check_request", _with_thinking_rule(fake_mod.check_request))
    fake = await fake_anthropic()
    r = await router(CFG.format(url=fake.url, key=API_KEY))
    kw = {"model": "sonnet", "max_tokens": 4096, "tools": [ANTHROPIC_WEATHER], "thinking": THINKING}
    out = await claude_message(r.url, stream, messages=_history(UNSIGNED), **kw)
    assert out.stop_reason == "end_turn"
    sent = fake.requests[-1].body
    assert "thinking" not in sent and sent["messages"][1]["content"] == [CALL]
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/messages/count_tokens",
                                                    json={**kw, "messages": _history(UNSIGNED)}) as resp:
        assert resp.status == 200
    assert "thinking" not in fake.requests[-1].body


def test_thinking_stays_where_the_turn_keeps_its_leading_block() -> None:
    from router.api.messages_native import signed_history

    signed = {"type": "thinking", "thinking": "plan", "signature": "EqQBCgIY"}
    for thought in (signed, {"type": "redacted_thinking", "data": "EmwKAhgB"}):
        # an unsigned block elsewhere goes; the tool loop's turn still starts with its own thinking
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [UNSIGNED, {
            "type": "text", "text": "Hello."}]}, *_history(thought)]
        body = {"model": "sonnet", "messages": messages, "thinking": THINKING}
        out = signed_history(json.dumps(body).encode(), body)
        assert out["thinking"] == THINKING and len(out["messages"]) == 5
    body = {"model": "sonnet", "messages": _history(UNSIGNED), "thinking": {"type": "disabled"}}
    assert signed_history(json.dumps(body).encode(), body)["thinking"] == {"type": "disabled"}
