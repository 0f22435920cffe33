"""`tool_choice: "none"` and an upstream that calls a tool all the same (Ollama ignores tool_choice): the structured
call was dropped, and the client got an empty answer (`finish_reason: "stop"`, nothing recorded). It now comes as
text after the content, one JSON line a call, as a server that honours "none" leaves the call the model wrote in its
content; no call goes out, and a `tool_choice_none` repair says what happened. Whole and streamed answers agree, on
every route that sends "none" (Messages' `{"type": "none"}`, Responses' "none")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, RESPONSES_WEATHER, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.ops.conftest import sample
from tests.router.one_tool import MSGS, TOOLS
from tests.router.one_tool import config as cfg
from tests.waiting import wait_until

ARGS = '{"city": "Paris"}'
SHOWN = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
SAID = "Let me look."


def _answer(stream: bool, content: str | None = SAID) -> Step:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
    if not stream:
        return Step(json=completion(content, "m", tool_calls=[call], finish_reason="tool_calls"))
    head = {"index": 0, **call, "function": {"name": "get_weather", "arguments": ""}}
    return Step(sse=[chunk("m", {"role": "assistant", "content": content}), chunk("m", {"tool_calls": [head]}),
                     chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": ARGS[:9]}}]}),
                     chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": ARGS[9:]}}]}),
                     chunk("m", {}, "tool_calls")])


async def _chat(r: Any, stream: bool) -> tuple[str | None, list[Any], str | None, str | None]:
    """(content, tool calls, finish reason, x-agentgate-repairs) of a chat answer under tool_choice none."""
    kw: dict[str, Any] = {"model": "m", "messages": MSGS, "tools": TOOLS, "tool_choice": "none"}
    if not stream:
        raw = await r.client().chat.completions.with_raw_response.create(**kw)
        choice = raw.parse().choices[0]
        return choice.message.content, choice.message.tool_calls or [], choice.finish_reason, \
            raw.headers.get("x-agentgate-repairs")
    content: list[str] = []
    calls: list[Any] = []
    finish = None
    async for c in await r.client().chat.completions.create(stream=True, **kw):
        for ch in c.choices:
            content.append(ch.delta.content or "")
            calls += ch.delta.tool_calls or []
            finish = ch.finish_reason or finish
    return "".join(content), calls, finish, None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("said", [SAID, None], ids=["after text", "alone"])
async def test_a_structured_call_comes_as_text(fakes: Any, router: Any, stream: bool, said: str | None) -> None:
    up = await fakes()
    up.push(_answer(stream, said))
    r = await router(cfg(up.url))
    content, calls, finish, repairs = await _chat(r, stream)
    assert content == (f"{said}\n{SHOWN}" if said else SHOWN) and calls == [] and finish == "stop"
    if not stream:
        assert repairs == "tool_choice_none"
    metrics = r.state.metrics
    await wait_until(lambda: sample(metrics.render().decode(), "agentgate_tool_calls_total", model="m") == 1)
    text = metrics.render().decode()
    assert sample(text, "agentgate_tool_calls_total", model="m", outcome="repaired") == 1
    assert sample(text, "agentgate_tool_call_repairs_total", model="m", kind="tool_choice_none") == 1


async def test_a_call_in_the_text_stays_unreported(fakes: Any, router: Any) -> None:
    """The text's own call markup under none stays as written, as before, and nothing is reported."""
    up = await fakes()
    written = f"<tool_call>{SHOWN}</tool_call>"
    up.push(Step(json=completion(written, "m")))
    r = await router(cfg(up.url))
    content, calls, finish, repairs = await _chat(r, False)
    assert (content, calls, finish, repairs) == (written, [], "stop", None)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_messages_and_responses_clients_get_the_text(fakes: Any, router: Any, stream: bool) -> None:
    up = await fakes()
    up.push(_answer(stream), _answer(stream))
    r = await router(cfg(up.url))
    message = await claude_message(r.url, stream, model="m", max_tokens=10, messages=MSGS, tools=[ANTHROPIC_WEATHER],
                                   tool_choice={"type": "none"})
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", f"{SAID}\n{SHOWN}")]
    assert message.stop_reason == "end_turn"
    kw: dict[str, Any] = {"model": "m", "input": "x", "tools": [RESPONSES_WEATHER], "tool_choice": "none"}
    if stream:
        async with r.client().responses.stream(**kw) as s:
            resp = await s.get_final_response()
    else:
        resp = await r.client().responses.create(**kw)
    assert [i.type for i in resp.output] == ["message"] and resp.output_text == f"{SAID}\n{SHOWN}"
