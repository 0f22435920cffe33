"""The upstream's reasoning, given to a Messages client as a `thinking` block and to a Responses client as a
`reasoning` item, goes back to the upstream as the assistant message's `reasoning_content` when the client sends
it back (or the router's own store has it: `previous_response_id`). DeepSeek's thinking mode refuses a tool loop's
next turn without it (400 "The `reasoning_content` in the thinking mode must be passed back to the API"); before,
the router dropped it and every second turn of such a loop failed on both routes."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from router.dialects import anthropic_in, anthropic_out, responses
from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, RESPONSES_WEATHER, claude, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of

THOUGHT = "I should look up the weather."
CALL = {"id": "call_00_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def _deepseek(stream: bool) -> Step:
    """A thinking-mode answer: reasoning, then a call."""
    if stream:
        return Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": THOUGHT}),
                         chunk("m", {"tool_calls": [{**CALL, "index": 0}]}), chunk("m", {}, "tool_calls")])
    doc = completion(None, "m", tool_calls=[CALL], finish_reason="tool_calls")
    doc["choices"][0]["message"]["reasoning_content"] = THOUGHT
    return Step(json=doc)


def _assistant_turns(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "assistant"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_messages_thinking_goes_back_as_reasoning_content(fakes, router, stream):
    up = await fakes()
    up.push(_deepseek(stream), Step(json=completion("It is 18C.", "m")))
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude_message(r.url, stream, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=ask)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    use = first.content[1]
    await claude(r.url).messages.create(model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=[  # type: ignore
        *ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]}])
    assert _assistant_turns(up.requests[1].body) == [
        {"role": "assistant", "content": None, "reasoning_content": THOUGHT, "tool_calls": [CALL]}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("stored", [False, True], ids=["input_items", "previous_response_id"])
async def test_responses_reasoning_item_goes_back_as_reasoning_content(fakes, router, stream, stored):
    up = await fakes()
    up.push(_deepseek(stream), Step(json=completion("It is 18C.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "store": stored}
    if stream:
        async with c.responses.stream(input=ask, **kw) as s:  # type: ignore[arg-type]
            first = await s.get_final_response()
    else:
        first = await c.responses.create(input=ask, **kw)  # type: ignore[arg-type]
    assert [i.type for i in first.output] == ["reasoning", "function_call"]
    call = first.output[1]
    answer = {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}  # type: ignore[union-attr]
    if stored:
        await c.responses.create(previous_response_id=first.id, input=[answer], **kw)  # type: ignore[arg-type,list-item]
    else:
        await c.responses.create(input=[*ask, *[i.model_dump(exclude_none=True) for i in first.output], answer],
                                 **kw)  # type: ignore[arg-type]
    assert _assistant_turns(up.requests[1].body) == [
        {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning_content": THOUGHT}]



@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_stateless_client_gets_the_reasoning_back_through_encrypted_content(fakes, router, stream):
    """A client keeping no state (`store: false`, `include: ["reasoning.encrypted_content"]`: Codex) sends a
    reasoning item back with its summary and encrypted_content only, never its content: the router writes the
    reasoning's text there (base64 behind its own prefix, not a secret: the content holds it too) and reads it back,
    so the upstream gets its reasoning as it wants it."""
    up = await fakes()
    up.push(_deepseek(stream), Step(json=completion("It is 18C.", "m")), _deepseek(False))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "store": False,
                          "include": ["reasoning.encrypted_content"]}
    if stream:
        async with c.responses.stream(input=ask, **kw) as s:  # type: ignore[arg-type]
            first = await s.get_final_response()
    else:
        first = await c.responses.create(input=ask, **kw)  # type: ignore[arg-type]
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.encrypted_content  # type: ignore[union-attr]
    back = {"type": "reasoning", "id": reasoning.id, "summary": [],
            "encrypted_content": reasoning.encrypted_content}  # type: ignore[union-attr]
    answer = {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}  # type: ignore[union-attr]
    await c.responses.create(input=[*ask, back, call.model_dump(exclude_none=True), answer],  # type: ignore[list-item]
                             **kw)  # type: ignore[arg-type]
    assert _assistant_turns(up.requests[1].body) == [
        {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning_content": THOUGHT}]
    without = await c.responses.create(input=ask, model="m", store=False)  # not asked for: none written
    assert without.output[0].type == "reasoning"
    assert all(getattr(i, "encrypted_content", None) is None for i in without.output)
    assert responses.unsealed("gAAAAB") == "" and responses.unsealed(responses.SEALED_PREFIX + "%%") == ""

def test_only_the_routers_own_reasoning_goes_back() -> None:
    """Signed thinking (Anthropic's), redacted thinking and an encrypted reasoning item (OpenAI's) are not sent as
    text; reasoning with no assistant output after it goes nowhere; several pieces of one turn go together."""
    use = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}
    req = anthropic_in.parse_request({"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "signed", "signature": "EqQBCkYIBx"},
                                          {"type": "redacted_thinking", "data": "EmwKAhgB"}, use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "18C"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "one. ", "signature": ""},
                                          {"type": "text", "text": "Hot."},
                                          {"type": "thinking", "thinking": "two."}]},
        {"role": "user", "content": "b"}]})
    turns = _assistant_turns(req.chat)
    assert "reasoning_content" not in turns[0] and turns[1]["reasoning_content"] == "one. two."

    fc = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    mine = {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Mine."}]}
    summed = {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "Summed."}]}
    openai = {"type": "reasoning", "id": "rs_3", "summary": [{"type": "summary_text", "text": "Theirs."}],
              "encrypted_content": "gAAAAB"}
    rreq = responses.parse_request({"model": "m", "input": [
        {"role": "user", "content": "a"}, mine, {"role": "user", "content": "b"},  # followed by no answer
        openai, fc, {"type": "function_call_output", "call_id": "c1", "output": "x"},
        summed, {"role": "assistant", "content": "Hot."}, mine, fc | {"call_id": "c2"}]})
    turns = _assistant_turns({"messages": rreq.input_messages})
    assert "reasoning_content" not in turns[0]
    assert turns[1]["reasoning_content"] == "Summed.Mine." and len(turns[1]["tool_calls"]) == 1
    assert responses.assistant_message([mine, fc])["reasoning_content"] == "Mine."  # type: ignore[index]
    assert "reasoning_content" not in responses.assistant_message([openai, fc])  # type: ignore[operator]


def test_an_anthropic_upstream_gets_no_reasoning_from_the_history() -> None:
    """As before: the chat form's `reasoning_content` is not Anthropic's (its thinking needs a signature)."""
    out = anthropic_out.messages_request({"model": "claude", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "Hot.", "reasoning_content": THOUGHT}, {"role": "user", "content": "b"}]})
    assert json.dumps(out).count(THOUGHT) == 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_upstream_refusing_the_field_gets_the_history_without_it(fakes, router, stream):
    """Mistral's API refuses any field it does not know (422 extra_forbidden), `reasoning_content` on an assistant
    message too, though its reasoning models give reasoning (as `thinking` content parts): the turn goes once more
    without it, where it went through before reasoning was sent back. A refusal of anything else is the client's."""
    up = await fakes()
    refused = Step(status=422, json={"object": "error", "message": {"detail": [{
        "type": "extra_forbidden", "loc": ["body", "messages", 1, "assistant", "reasoning_content"],
        "msg": "Extra inputs are not permitted", "input": THOUGHT}]}, "type": "invalid_request_error"})
    magistral = completion(None, "m", tool_calls=[CALL], finish_reason="tool_calls")
    magistral["choices"][0]["message"]["content"] = [{"type": "thinking", "thinking": [{"type": "text",
                                                                                         "text": THOUGHT}]}]
    answer = Step(sse=stream_of(["It is 18C."], "m")) if stream else Step(json=completion("It is 18C.", "m"))
    up.push(Step(json=magistral), refused, answer)
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude_message(r.url, False, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=ask)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    history = [*ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[1].id,
                                             "content": "18C"}]}]
    second = await claude_message(r.url, stream, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER],
                                  messages=history)
    assert [b.text for b in second.content] == ["It is 18C."]
    assert [_assistant_turns(q.body)[0].get("reasoning_content") for q in up.requests[1:]] == [THOUGHT, None]

    up.push(Step(status=400, json={"error": {"message": "The `reasoning_content` in the thinking mode must be "
                                                        "passed back to the API.", "type": "invalid_request_error"}}))
    with pytest.raises(anthropic.BadRequestError):
        await claude(r.url).messages.create(model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore
                                            messages=history)
    assert len(up.requests) == 4  # not sent again


async def test_an_upstream_that_refused_the_field_is_not_sent_it_again(fakes, router):
    """After an upstream refused `reasoning_content` as unknown, the next turns to it (for that model) go without it
    at once: before, every turn of a tool loop was refused once first. The same upstream's other model still gets
    it (a gateway's models may differ)."""
    up = await fakes()
    refused = Step(status=422, json={"object": "error", "message": {"detail": [{
        "type": "extra_forbidden", "loc": ["body", "messages", 1, "assistant", "reasoning_content"],
        "msg": "Extra inputs are not permitted", "input": THOUGHT}]}, "type": "invalid_request_error"})
    answer = Step(json=completion("It is 18C.", "m"))
    up.push(_deepseek(False), refused, answer, answer, answer, answer)
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude_message(r.url, False, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=ask)
    history = [*ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[1].id,
                                             "content": "18C"}]}]
    for model in ("m", "m", "m", "renamed"):
        second = await claude_message(r.url, False, model=model, max_tokens=64, tools=[ANTHROPIC_WEATHER],
                                      messages=history)
        assert [b.text for b in second.content] == ["It is 18C."]
    assert [_assistant_turns(q.body)[0].get("reasoning_content") for q in up.requests[1:]] == [
        THOUGHT, None, None, None, THOUGHT]


async def test_an_upstream_refusing_stream_options_and_the_field_gets_neither(fakes, router):
    """A strict upstream (every unknown field refused) answers a Messages stream whose history holds reasoning with
    a 422 for `stream_options`, then with one for `reasoning_content`: the third request has neither (before, the
    second re-send put `stream_options` back and the client got the 422)."""
    up = await fakes()
    magistral = completion(None, "m", tool_calls=[CALL], finish_reason="tool_calls")
    magistral["choices"][0]["message"]["content"] = [{"type": "thinking", "thinking": [{"type": "text",
                                                                                         "text": THOUGHT}]}]

    def refused(field: str) -> Step:
        return Step(status=422, json={"object": "error", "message": {"detail": [{
            "type": "extra_forbidden", "loc": ["body", field], "msg": "Extra inputs are not permitted"}]},
            "type": "invalid_request_error"})

    up.push(Step(json=magistral), refused("stream_options"), refused("reasoning_content"),
            Step(sse=stream_of(["It is 18C."], "m")))
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude_message(r.url, False, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=ask)
    history = [*ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[1].id,
                                             "content": "18C"}]}]
    second = await claude_message(r.url, True, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=history)
    assert [b.text for b in second.content] == ["It is 18C."]
    last = up.requests[3].body
    assert "stream_options" not in last and "reasoning_content" not in _assistant_turns(last)[0]
