"""What some OpenAI-compatible servers send that OpenAI does not, seen by Messages and Responses clients in front of
them: an error body in another shape, a streamed call's arguments as an object."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, RESPONSES_WEATHER, claude
from tests.fakes.openai_upstream import Step, chunk

REFUSED = "Conversation roles must alternate user/assistant/user/assistant/..."  # (a template's refusal; an
# overflow is worded as each client recognises it: test_context_overflow.py)
ERROR_BODIES = {
    "flat (vLLM before 0.10, SGLang)": {"object": "error", "message": REFUSED, "type": "BadRequestError",
                                        "param": None, "code": 400},
    "a string (LM Studio)": {"error": REFUSED},
    "OpenAI's": {"error": {"message": REFUSED, "type": "invalid_request_error", "code": "invalid_value"}},
}


def _client(url: str, **kw: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", list(ERROR_BODIES))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_upstream_4xx_message_reaches_every_route(fakes, router, shape, stream):
    """The upstream's own words (what an agent reads to decide what to do), whatever the shape
    of its error body; the chat route passes the body through, the translated routes read it."""
    up = await fakes()
    up.push(*[Step(status=400, json=ERROR_BODIES[shape])] * 2)
    r = await router(CFG.format(url=up.url))
    with pytest.raises(anthropic.BadRequestError) as a_err:
        kw = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
              "tools": [ANTHROPIC_WEATHER]}
        if stream:
            async with claude(r.url).messages.stream(**kw) as s:  # type: ignore[arg-type]
                await s.get_final_message()
        else:
            await claude(r.url).messages.create(**kw)  # type: ignore[arg-type]
    assert a_err.value.body["error"]["message"] == REFUSED  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as o_err:
        await _client(r.url).responses.create(model="m", input="x", tools=[RESPONSES_WEATHER], stream=stream)
    assert REFUSED in o_err.value.message


@pytest.mark.parametrize("repair", ["on", "off"])
async def test_streamed_arguments_sent_as_an_object_are_kept(fakes, router, repair):
    """A call whose streamed `function.arguments` is an object (sent whole) keeps them on the translated routes,
    repaired or not (unrepaired, the Messages block's input was {} and the Responses item's arguments "{}")."""
    up = await fakes()
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    events = [chunk("m", {"role": "assistant", "content": None}), chunk("m", {"tool_calls": [call]}),
              chunk("m", {}, "tool_calls")]
    up.push(Step(sse=events), Step(sse=events))
    r = await router(CFG.format(url=up.url))
    headers = {"x-agentgate-repair": repair}
    async with claude(r.url).messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
            extra_headers=headers) as s:
        message = await s.get_final_message()
    assert [b.input for b in message.content if b.type == "tool_use"] == [{"city": "Paris"}]
    async with _client(r.url).responses.stream(model="m", input="x", tools=[RESPONSES_WEATHER],  # type: ignore[list-item]
                                               extra_headers=headers) as rs:
        response = await rs.get_final_response()
    assert [json.loads(i.arguments) for i in response.output if i.type == "function_call"] == [{"city": "Paris"}]


@pytest.mark.parametrize("args", ["", None, "  "])
async def test_a_call_with_no_arguments_streams_what_its_done_event_says(fakes, router, args):
    """Unrepaired, a no-argument call whose arguments come as "" or null: its deltas add up to the "{}" that
    `function_call_arguments.done` and the item carry (no delta was sent: a client building the arguments from the
    deltas had "")."""
    up = await fakes()
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None}), chunk("m", {"tool_calls": [call]}),
                      chunk("m", {}, "tool_calls")]))
    r = await router(CFG.format(url=up.url))
    deltas, done = "", None
    stream = await _client(r.url).responses.create(model="m", input="x", tools=[RESPONSES_WEATHER], stream=True,
                                                   extra_headers={"x-agentgate-repair": "off"})
    async for event in stream:
        if event.type == "response.function_call_arguments.delta":
            deltas += event.delta
        elif event.type == "response.function_call_arguments.done":
            done = event.arguments
    assert deltas == done and json.loads(done) == {}
