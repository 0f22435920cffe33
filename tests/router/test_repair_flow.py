"""Tool-call repair on chat completions, seen through the openai client: broken content, broken structured
arguments, broken streams, and each on_failure policy."""

from __future__ import annotations

import json

import openai
import pytest

from tests.dialects.conftest import claude_message
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of
from tests.router.one_tool import MSGS
from tests.router.one_tool import config as cfg

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"], "additionalProperties": False}}}]
BROKEN = "Let me check. <tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris', 'days': '3'}}"




async def test_broken_content_becomes_valid_tool_calls(fakes, router):
    up = await fakes()
    up.push(Step(json=completion(BROKEN, "m")))
    r = await router(cfg(up.url))
    raw = await r.client().chat.completions.with_raw_response.create(model="m", messages=MSGS, tools=WEATHER)
    resp = raw.parse()
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in msg.tool_calls] == ["get_weather"]
    assert json.loads(msg.tool_calls[0].function.arguments) == {"city": "Paris", "days": 3}
    assert msg.content == "Let me check."  # markup never leaks into content
    kinds = raw.headers["x-agentgate-repairs"].split(",")
    assert {"single_quotes", "coerced_type"} <= set(kinds)


async def test_broken_structured_arguments_are_repaired(fakes, router):
    up = await fakes()
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "Get-Weather", "arguments": json.dumps(json.dumps({"city": "Oslo"}))}}]
    up.push(Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    call = resp.choices[0].message.tool_calls[0]
    assert call.id == "call_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


async def test_valid_answer_passes_unchanged(fakes, router):
    up = await fakes()
    calls = [{"id": "call_9", "type": "function", "function": {"name": "get_weather",
                                                               "arguments": '{"city": "Rome"}'}}]
    up.push(Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls")))
    r = await router(cfg(up.url))
    raw = await r.client().chat.completions.with_raw_response.create(model="m", messages=MSGS, tools=WEATHER)
    assert "x-agentgate-repairs" not in raw.headers
    assert raw.parse().choices[0].message.tool_calls[0].function.arguments == '{"city": "Rome"}'


async def test_undeclared_name_is_never_promoted(fakes, router):
    up = await fakes()
    text = '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
    up.push(Step(json=completion(text, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert not resp.choices[0].message.tool_calls and resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == text


async def test_broken_stream_content_streams_prose_then_a_valid_call(fakes, router):
    up = await fakes()
    pieces = ["Let me ", "check. ", "<tool_", "call>{'name': 'get_", "weather', 'arguments': {'city': 'Paris'}}"]
    up.push(Step(sse=stream_of(pieces, "m")))
    r = await router(cfg(up.url))
    stream = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, stream=True)
    text, calls, finish = "", [], None
    async for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        calls += d.tool_calls or []
        finish = c.choices[0].finish_reason or finish
    assert text == "Let me check."  # (trailing space before the held-back markup is not content)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather",
                                                                                     {"city": "Paris"})]
    assert finish == "tool_calls"


async def test_broken_stream_tool_call_fragments_are_assembled_and_repaired(fakes, router):
    up = await fakes()
    frags = [{"index": 0, "id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
             {"index": 0, "function": {"arguments": "{'city': "}}, {"index": 0, "function": {"arguments": "'Lima',}"}}]
    events = [chunk("m", {"role": "assistant"}), *[chunk("m", {"tool_calls": [f]}) for f in frags],
              chunk("m", {}, "tool_calls")]
    up.push(Step(sse=events))
    r = await router(cfg(up.url))
    stream = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, stream=True)
    calls = [tc async for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    # the header goes out as the arguments begin; the rest once repaired
    assert {c.index for c in calls} == {0} and calls[0].id == "call_7" and calls[0].function.name == "get_weather"
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"city": "Lima"}


async def r_client(router, up) -> openai.AsyncOpenAI:
    return (await router(cfg(up.url))).client()


async def test_on_failure_error_is_502_invalid_tool_call(fakes, router):
    up = await fakes()
    up.push(Step(json=completion('<tool_call>{"name": "get_weather", "arguments": {"town": 1}}</tool_call>', "m")))
    r = await router(cfg(up.url, "{on_failure: error}"))
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert info.value.status_code == 502 and info.value.body["code"] == "invalid_tool_call"
    assert "schema_mismatch" in info.value.message


async def test_on_failure_content_keeps_the_text(fakes, router):
    up = await fakes()
    text = '<tool_call>{"name": "get_weather", "arguments": {"town": 1}}</tool_call>'
    up.push(Step(json=completion(text, "m")))
    r = await router(cfg(up.url))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert resp.choices[0].message.content == text and not resp.choices[0].message.tool_calls


@pytest.mark.parametrize("stream", [False, True])
async def test_on_failure_retry_reasks_with_the_validation_error(fakes, router, stream):
    up = await fakes()
    bad = '<tool_call>{"name": "get_weather", "arguments": {"town": 1}}</tool_call>'
    good = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    if stream:
        up.push(Step(sse=stream_of([bad], "m")), Step(sse=stream_of([good], "m")))
    else:
        up.push(Step(json=completion(bad, "m")), Step(json=completion(good, "m")))
    r = await router(cfg(up.url, "{on_failure: retry, retries: 1}"))
    client = r.client()
    if stream:
        s = await client.chat.completions.create(model="m", messages=MSGS, tools=WEATHER, stream=True)
        calls = [tc async for c in s if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    else:
        calls = (await client.chat.completions.create(model="m", messages=MSGS, tools=WEATHER)).choices[0] \
            .message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}]
    assert len(up.requests) == 2
    feedback = up.requests[1].body["messages"]
    assert feedback[-2] == {"role": "assistant", "content": bad}
    assert "schema_mismatch" in feedback[-1]["content"] and "get_weather" in feedback[-1]["content"]


async def test_required_tool_choice_without_a_call_is_retried(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("It is sunny.", "m")),
            Step(json=completion('{"name": "get_weather", "arguments": {"city": "Nice"}}', "m")))
    r = await router(cfg(up.url, "{on_failure: retry, retries: 2}"))
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, tool_choice="required")
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {"city": "Nice"}
    assert len(up.requests) == 2


async def test_repair_header_off_disables_repair_for_one_request(fakes, router):
    up = await fakes()
    up.push(Step(json=completion(BROKEN, "m")), Step(json=completion(BROKEN, "m")))
    r = await router(cfg(up.url))
    client = r.client()
    off = await client.chat.completions.create(model="m", messages=MSGS, tools=WEATHER,
                                               extra_headers={"x-agentgate-repair": "off"})
    assert off.choices[0].message.content == BROKEN and not off.choices[0].message.tool_calls
    on = await client.chat.completions.create(model="m", messages=MSGS, tools=WEATHER)
    assert on.choices[0].message.tool_calls


@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_quoted_in_inline_code_is_left_as_written(fakes, router, stream):
    """A model explaining the format (`<tool_call>{...}</tool_call>` in inline code) made no call: the client gets
    the text, and no call is executed on its behalf."""
    text = ('Models that use hermes write `<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
            '</tool_call>` and wait for the tool result.')
    up = await fakes()
    up.push(Step(sse=stream_of([text[i:i + 9] for i in range(0, len(text), 9)], "m")) if stream
            else Step(json=completion(text, "m")))
    r = await router(cfg(up.url))
    if stream:
        content, calls, finish = "", 0, None
        async for c in await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER,
                                                                stream=True):
            for choice in c.choices:
                content += choice.delta.content or ""
                calls += len(choice.delta.tool_calls or [])
                finish = choice.finish_reason or finish
    else:
        choice = (await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER)).choices[0]
        content, calls, finish = choice.message.content, len(choice.message.tool_calls or []), choice.finish_reason
    assert (content, calls, finish) == (text, 0, "stop")


@pytest.mark.parametrize("n", [2, 2.0])
async def test_several_choices_streamed_reach_the_client_as_they_came(fakes, router, n):
    """A stream with `n` > 1 (every choice tagged with its index) is passed through: the repairing stream reads one
    choice, and every other one was dropped without a word. `n: 2.0` too (vLLM reads it as 2)."""
    def ck(i: int, delta: dict, finish: str | None = None) -> dict:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": i, "delta": delta, "finish_reason": finish}]}

    up = await fakes()
    up.push(Step(sse=[ck(0, {"role": "assistant", "content": ""}), ck(1, {"role": "assistant", "content": ""}),
                      ck(0, {"content": "Hello"}),
                      ck(1, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}),
                      ck(0, {}, "stop"), ck(1, {}, "tool_calls")]))
    r = await router(cfg(up.url))
    async with r.client().chat.completions.stream(model="m", messages=MSGS, tools=WEATHER, n=n) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_completion()
    assert [(c.index, c.finish_reason, c.message.content) for c in final.choices] == [
        (0, "stop", "Hello"), (1, "tool_calls", "")]
    assert [t.function.name for t in final.choices[1].message.tool_calls or []] == ["get_weather"]


PARIS_TEXT = 'Also <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
OSLO = {"id": "call_up0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


def _text_then_structured() -> Step:
    """A `<tool_call>` in the text, cut in pieces, then a structured call."""
    sse = [chunk("m", {"role": "assistant", "content": ""})]
    sse += [chunk("m", {"content": PARIS_TEXT[i:i + 8]}) for i in range(0, len(PARIS_TEXT), 8)]
    return Step(sse=[*sse, chunk("m", {"tool_calls": [{"index": 0, **OSLO}]}), chunk("m", {}, "tool_calls")],
                interval=0.005)


@pytest.mark.parametrize("parallel", [True, False])
async def test_a_text_call_streamed_before_a_structured_one_goes_out_once(fakes, router, parallel):
    """Each call once, the calls of the whole answer (the text call first, as it went out): the text call was sent
    again at the end, with a `failed_after_header` report. With parallel_tool_calls false one call: the text call,
    which went out before the structured one came."""
    up = await fakes()
    up.push(Step(json=completion(PARIS_TEXT, "m", tool_calls=[OSLO], finish_reason="tool_calls")),
            _text_then_structured())
    r = await router(cfg(up.url))
    kw = {} if parallel else {"parallel_tool_calls": False}
    whole = await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, **kw)
    got: dict[int, list[str]] = {}
    extra = None
    async for c in await r.client().chat.completions.create(model="m", messages=MSGS, tools=WEATHER, stream=True,
                                                             **kw):
        for t in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = got.setdefault(t.index, ["", "", ""])
            slot[0] = t.id or slot[0]
            slot[1] += t.function.name or ""
            slot[2] += t.function.arguments or ""
        extra = (c.model_extra or {}).get("agentgate") or extra
    streamed = [json.loads(got[k][2])["city"] for k in sorted(got)]
    assert extra is None and len({v[0] for v in got.values()}) == len(got)
    if parallel:
        assert sorted(json.loads(t.function.arguments)["city"] for t in whole.choices[0].message.tool_calls) == \
            sorted(streamed) == ["Oslo", "Paris"]
        assert streamed == ["Paris", "Oslo"]
    else:
        assert len(whole.choices[0].message.tool_calls) == 1 and streamed == ["Paris"]


async def test_a_text_call_before_a_structured_one_goes_out_once_on_every_route(fakes, router):
    up = await fakes()
    up.push(_text_then_structured(), _text_then_structured())
    r = await router(cfg(up.url))
    tool = WEATHER[0]["function"]
    message = await claude_message(r.url, True, model="m", max_tokens=50, messages=MSGS, tools=[
        {"name": tool["name"], "input_schema": tool["parameters"]}])
    assert [b.input["city"] for b in message.content if b.type == "tool_use"] == ["Paris", "Oslo"]
    async with r.client().responses.stream(model="m", input="x", tools=[
            {"type": "function", "name": tool["name"], "parameters": tool["parameters"]}]) as s:  # type: ignore[list-item]
        resp = await s.get_final_response()
    assert [json.loads(i.arguments)["city"] for i in resp.output if i.type == "function_call"] == ["Paris", "Oslo"]


SECOND_TURN = [*MSGS, {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "sunny"}, {"role": "user", "content": "and Oslo?"}]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_call_never_reuses_an_id_the_conversation_holds(fakes, router, stream):
    """A server numbering its calls per reply sends `call_0` on every turn: the second turn's call had the id of
    the first, which the client ran already (openai-agents stops: "Model reused a completed tool call ID"). It gets
    a new id; an id the conversation does not hold is kept as the upstream sent it."""
    up = await fakes()
    for cid in ("call_0", "call_1"):
        call = {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        if stream:
            up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None}),
                              chunk("m", {"tool_calls": [{"index": 0, **call}]}), chunk("m", {}, "tool_calls")],
                         interval=0.005))
        else:
            up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")))
    r = await router(cfg(up.url))
    ids = []
    for _ in range(2):
        if stream:
            got = [t.id async for c in await r.client().chat.completions.create(
                model="m", messages=SECOND_TURN, tools=WEATHER, stream=True)
                for t in ((c.choices[0].delta.tool_calls or []) if c.choices else []) if t.id]
        else:
            resp = await r.client().chat.completions.create(model="m", messages=SECOND_TURN, tools=WEATHER)
            got = [t.id for t in resp.choices[0].message.tool_calls or []]
        assert len(got) == 1
        ids.append(got[0])
    assert ids[0] not in ("call_0", "") and ids[1] == "call_1"


async def test_retry_feedback_names_custom_tools_too(fakes, router):
    """The retry request lists the tools the model may call by name, a custom (free-form) tool's included."""
    up = await fakes()
    up.push(Step(json=completion("It is sunny.", "m")),
            Step(json=completion('{"name": "get_weather", "arguments": {"city": "Nice"}}', "m")))
    r = await router(cfg(up.url, "{on_failure: retry, retries: 2}"))
    tools = [*WEATHER, {"type": "custom", "custom": {"name": "run_shell"}}]
    resp = await r.client().chat.completions.create(model="m", messages=MSGS, tools=tools,  # type: ignore[arg-type]
                                                    tool_choice="required")
    assert resp.choices[0].message.tool_calls
    assert "one of: get_weather, run_shell," in up.requests[1].body["messages"][-1]["content"]


SEARCH = [{"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]


async def _chat_stream(r, tools) -> tuple[str, list[str], list, str | None]:
    stream = await r.client().chat.completions.create(model="m", messages=MSGS, tools=tools, stream=True)
    text, pieces, calls, finish = "", [], [], None
    async for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        pieces += [d.content] if d.content else []
        calls += d.tool_calls or []
        finish = c.choices[0].finish_reason or finish
    return text, pieces, calls, finish


async def test_a_streamed_call_with_unquoted_text_is_no_call_as_in_the_whole_answer(fakes, router):
    text = 'Searching.\n<tool_call>{"name": "search", "arguments": {"query": 2024 election results}}</tool_call>'
    pieces = ["Searching.", "\n", "<tool_call>", '{"', "name", '": "', "search", '", "', "arguments", '": {"',
              "query", '": ', "2024", " ", "election", " results", "}}", "</tool_call>"]
    up = await fakes()
    up.push(Step(sse=stream_of(pieces, "m"), interval=0.01),  # (apart: a stream read whole goes out whole)
            Step(sse=stream_of([*pieces[:13], " election", *pieces[15:]], "m"), interval=0.01),
            Step(json=completion(text, "m")))
    r = await router(cfg(up.url))
    for _ in range(2):  # (never search({"query": "2024"}) or search({}), finish_reason tool_calls)
        got, _, calls, finish = await _chat_stream(r, SEARCH)
        assert (got, calls, finish) == (text, [], "stop")
    whole = (await r.client().chat.completions.create(model="m", messages=MSGS, tools=SEARCH)).choices[0]
    assert whole.message.content == text and not whole.message.tool_calls


async def test_text_quoting_an_invoke_tag_streams_on(fakes, router):
    pieces = ["In MiniMax XML a call is ", '<invoke name="foo"/>', " and so on.\n",
              *[f"Line {i} of the answer.\n" for i in range(20)]]
    up = await fakes()
    up.push(Step(sse=stream_of(pieces, "m"), interval=0.01))
    r = await router(cfg(up.url))
    got, deltas, calls, finish = await _chat_stream(r, SEARCH)
    assert got == "".join(pieces) and calls == [] and finish == "stop"
    assert len(deltas) >= 20  # piece by piece, not everything after the tag at the stream's end


UNKNOWN = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'


@pytest.mark.parametrize("order", ["repaired first", "repaired last"])
@pytest.mark.parametrize("failed", [False, True], ids=["none failed", "one failed"])
def test_a_whole_answer_records_the_worst_of_its_choices(order, failed):
    """Each choice's result replaced the one before in the request's record (`n` > 1): a repaired choice before a
    valid one was recorded as "valid", no repairs (the access log, the metrics; nothing captured), while
    x-agentgate-repairs named its repairs. The worst outcome counts, failed over repaired, with every choice's
    repairs and failures, and the capture is the first such choice's."""
    from repair import ToolIndex
    from router import pipeline
    from router.config.model import RepairPolicy
    from router.exchange import Exchange

    def choice(i: int, content: str | None, calls: list | None = None) -> dict:
        message = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
        return {"index": i, "message": message, "finish_reason": "stop"}

    valid = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    choices = [choice(0, BROKEN), choice(1, None, [valid]), choice(2, "Just text.")]
    if failed:
        choices.insert(2, choice(3, UNKNOWN))
    doc = {"choices": choices if order == "repaired first" else choices[::-1]}
    ex = Exchange("r", "chat")
    body = {"model": "m", "messages": MSGS, "tools": WEATHER, "n": len(choices)}
    kinds = pipeline._repair_whole(doc, ex, body, RepairPolicy(), ToolIndex(WEATHER), False)
    assert isinstance(kinds, list) and {"single_quotes", "coerced_type"} <= set(kinds)
    outcome, failures, captured = ("failed", ["unknown_name"], UNKNOWN) if failed else ("repaired", [], BROKEN)
    assert (ex.tool_outcome, ex.repairs, ex.failures) == (outcome, kinds, failures)
    assert ex.tool_output is not None and ex.tool_output.text == captured
