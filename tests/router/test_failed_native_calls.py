"""An upstream's structured call that cannot be made valid (a tool nobody declared, arguments its schema refuses)
goes to the client as the upstream sent it, reported, with the default `on_failure: content`: dropped, it left an
empty answer, and Codex and Claude Code ended the turn with nothing said or done (exit 0), where without the router
their own tool layer answers "no such tool" or the validation error and the model corrects itself. Arguments cut
off or broken are still never sent (a command cut in half is another command)."""

from __future__ import annotations

import json

import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, RESPONSES_WEATHER, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MSGS = [{"role": "user", "content": "x"}]
CALLS = {
    "unknown name": ("run_shell", '{"command": "ls"}'),
    "missing required": ("get_weather", '{"days": 3}'),
}


def cfg(url: str, on_failure: str = "content") -> str:
    return f"""
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab, repair: {{on_failure: {on_failure}}}}}
"""


def _answer(name: str, args: str, stream: bool) -> Step:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}
    if not stream:
        return Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls"))
    return Step(sse=[chunk("m", {"role": "assistant", "content": None}), chunk("m", {"tool_calls": [
        {"index": 0, **call, "function": {"name": name, "arguments": ""}}]}),
        chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}), chunk("m", {}, "tool_calls")])


@pytest.mark.parametrize("case", list(CALLS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_chat_gets_the_call_as_sent(fakes, router, case, stream):
    name, args = CALLS[case]
    up = await fakes()
    up.push(_answer(name, args, stream))
    r = await router(cfg(up.url))
    if stream:
        got: dict[int, list[str]] = {}
        finish = None
        async for c in await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER,
                                                                 stream=True):
            for t in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                slot = got.setdefault(t.index, ["", ""])
                slot[0] += t.function.name or ""
                slot[1] += t.function.arguments or ""
            finish = (c.choices[0].finish_reason if c.choices else None) or finish
        calls = [tuple(v) for v in got.values()]
    else:
        resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
        calls = [(t.function.name, t.function.arguments) for t in resp.choices[0].message.tool_calls or []]
        finish = resp.choices[0].finish_reason
    assert [(n, json.loads(a)) for n, a in calls] == [(name, json.loads(args))] and finish == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_messages_and_responses_clients_get_it_too(fakes, router, stream):
    up = await fakes()
    up.push(_answer("run_shell", '{"command": "ls"}', stream), _answer("run_shell", '{"command": "ls"}', False))
    r = await router(cfg(up.url))
    kw = {"model": "m", "max_tokens": 10, "messages": MSGS, "tools": [ANTHROPIC_WEATHER]}
    message = await claude_message(r.url, stream, **kw)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == [("run_shell", {"command": "ls"})]
    assert message.stop_reason == "tool_use"
    resp = await r.client().responses.create(model="m", input="x", tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    assert [(i.name, json.loads(i.arguments)) for i in resp.output if i.type == "function_call"] == \
        [("run_shell", {"command": "ls"})]


async def test_cut_arguments_are_still_never_sent(fakes, router):
    up = await fakes()
    up.push(_answer("get_weather", '{"city": "Par', False))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert not resp.choices[0].message.tool_calls


async def test_on_failure_error_still_refuses(fakes, router):
    up = await fakes()
    up.push(_answer("run_shell", '{"command": "ls"}', False))
    r = await router(cfg(up.url, "error"))
    with pytest.raises(Exception) as err:
        await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert getattr(err.value, "status_code", None) == 502


def _many(calls: list[tuple[str, str, str]], stream: bool) -> Step:
    """An answer with several structured calls (name, arguments, id)."""
    tcs = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for n, a, i in calls]
    if not stream:
        return Step(json=completion(None, "m", tool_calls=tcs, finish_reason="tool_calls"))
    events = [chunk("m", {"role": "assistant", "content": None})]
    for k, tc in enumerate(tcs):
        events += [chunk("m", {"tool_calls": [{"index": k, **tc, "function": {**tc["function"], "arguments": ""}}]}),
                   *[chunk("m", {"tool_calls": [{"index": k, "function": {"arguments": tc["function"]["arguments"][
                       j:j + 4]}}]}) for j in range(0, len(tc["function"]["arguments"]), 4)]]
    return Step(sse=[*events, chunk("m", {}, "tool_calls")])


async def _calls(r, stream: bool, **kw) -> list[tuple[str, dict, str]]:
    if not stream:
        resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, **kw)
        return [(t.function.name, json.loads(t.function.arguments), t.id)
                for t in resp.choices[0].message.tool_calls or []]
    got: dict[int, list[str]] = {}
    async for c in await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, stream=True,
                                                             **kw):
        for t in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = got.setdefault(t.index, ["", "", ""])
            slot[0] += t.function.name or ""
            slot[1] += t.function.arguments or ""
            slot[2] = t.id or slot[2]
    return [(n, json.loads(a), i) for n, a, i in got.values()]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_stream_and_whole_answers_agree(fakes, router, stream):
    """Each call once, the valid ones first, under the declared name, with ids of their own (a stream had sent a
    call twice when the kept one took the id a valid one streamed under, or its header a normalised name)."""
    up = await fakes()
    up.push(_many([("Get-Weather", '{"town":"Paris"}', "up_1")], stream),
            _many([("nope", '{"a": 1}', "same"), ("get_weather", '{"city": "Paris"}', "same")], stream))
    r = await router(cfg(up.url))
    assert [c[:2] for c in await _calls(r, stream)] == [("get_weather", {"town": "Paris"})]
    calls = await _calls(r, stream)
    assert [c[:2] for c in calls] == [("get_weather", {"city": "Paris"}), ("nope", {"a": 1})]
    assert len({c[2] for c in calls}) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_tool_choice_and_parallel_limits_hold(fakes, router, stream):
    """parallel_tool_calls false: one call, the valid one; a named tool_choice: no call to another tool, valid or
    not."""
    up = await fakes()
    up.push(_many([("nope", '{"a": 1}', "c1"), ("get_weather", '{"city": "Paris"}', "c2")], stream),
            _many([("run_cmd", '{"x": 1}', "c3")], stream))
    r = await router(cfg(up.url))
    assert [c[:2] for c in await _calls(r, stream, parallel_tool_calls=False)] == [
        ("get_weather", {"city": "Paris"})]
    assert await _calls(r, stream, tool_choice={"type": "function", "function": {"name": "get_weather"}}) == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_call_its_schema_refuses_keeps_its_place(fakes, router, stream):
    """A call to a declared tool that its schema refuses is kept where the upstream put it, as a stream sends it
    (its header went out before its arguments failed): the whole answer had moved it after the valid calls, so
    the same calls came in another order, with other indexes, stream and non-stream. A call to an undeclared tool
    still comes after them (a stream cannot start it: it sends it at its end)."""
    up = await fakes()
    answer = _many([("get_weather", "{}", "up0"), ("get_weather", '{"city": "Paris"}', "up1"),
                    ("nope", '{"a": 1}', "up2"), ("get_weather", '{"city": "Oslo"}', "up3")], stream)
    up.push(Step(sse=answer.sse, interval=0.002) if stream else answer)  # (streamed: read event by event)
    r = await router(cfg(up.url))
    assert await _calls(r, stream) == [("get_weather", {}, "up0"), ("get_weather", {"city": "Paris"}, "up1"),
                                       ("get_weather", {"city": "Oslo"}, "up3"), ("nope", {"a": 1}, "up2")]
