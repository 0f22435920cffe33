"""What the SDKs read that a translation or a repaired stream could lose: an OpenAI upstream's refusal (on every
route, stream and not, tools declared or not), a structured-output request to an Anthropic upstream, cache writes
in the usage, and a failed Response's error code."""

from __future__ import annotations

import json

import pydantic
import pytest
from openai.types.responses import Response, ResponseUsage

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, CHAT_WEATHER, RESPONSES_WEATHER, claude_message
from tests.dialects.test_responses import raw_stream
from tests.fakes.anthropic_upstream import API_KEY, AStep, message
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of

REFUSAL = "I'm sorry, I can't help with that."
U = [{"role": "user", "content": "x"}]


def _refusal_step(stream: bool, interval: float) -> Step:
    if not stream:
        doc = completion(None, "m")
        doc["choices"][0]["message"]["refusal"] = REFUSAL
        return Step(json=doc)
    half = len(REFUSAL) // 2
    return Step(sse=[chunk("m", {"role": "assistant", "content": None, "refusal": ""}),
                     chunk("m", {"refusal": REFUSAL[:half]}), chunk("m", {"refusal": REFUSAL[half:]}),
                     chunk("m", {}, "stop")], interval=interval)


@pytest.mark.parametrize("interval", [0.0, 0.02], ids=["one-read", "paced"])
@pytest.mark.parametrize("tools", [False, True], ids=["no-tools", "tools"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_refusal_reaches_every_route(fakes, router, stream, tools, interval):
    """OpenAI's `refusal` (content null) is the chat message's refusal, stream or not, repaired or not (a repaired
    stream dropped it); a Responses message with a refusal part (the output was empty); Messages text with
    stop_reason "refusal" (the content was empty, the stop reason end_turn)."""
    up = await fakes()
    up.push(*[_refusal_step(stream, interval)] * 3)
    r = await router(CFG.format(url=up.url))
    kw: dict = {"tools": [CHAT_WEATHER]} if tools else {}
    if stream:
        chunks = [c async for c in await r.client().chat.completions.create(model="m", messages=U, stream=True, **kw)]
        assert "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices) == REFUSAL
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    else:
        done = await r.client().chat.completions.create(model="m", messages=U, **kw)
        assert done.choices[0].message.refusal == REFUSAL
    rkw: dict = {"tools": [RESPONSES_WEATHER]} if tools else {}
    if stream:
        async with r.client().responses.stream(model="m", input="x", **rkw) as rs:
            resp = await rs.get_final_response()
    else:
        resp = await r.client().responses.create(model="m", input="x", **rkw)
    assert resp.status == "completed"
    assert [(o.type, [p.model_dump() for p in o.content]) for o in resp.output] == \
        [("message", [{"type": "refusal", "refusal": REFUSAL}])]
    akw: dict = {"tools": [ANTHROPIC_WEATHER]} if tools else {}
    answer = await claude_message(r.url, stream, model="m", max_tokens=10, messages=U, **akw)
    assert answer.stop_reason == "refusal"
    assert [(b.type, b.text) for b in answer.content] == [("text", REFUSAL)]


async def test_a_refused_turn_continues_with_what_it_said(fakes, router):
    """A stored Response that refused continues (`previous_response_id`) with the refusal as the assistant's
    words (the turn was left out of the history)."""
    up = await fakes()
    up.push(_refusal_step(False, 0), Step(json=completion("ok", "m")))
    r = await router(CFG.format(url=up.url))
    first = await r.client().responses.create(model="m", input="x")
    await r.client().responses.create(model="m", input="y", previous_response_id=first.id)
    assert up.requests[1].body["messages"][-2:] == [{"role": "assistant", "content": REFUSAL},
                                                    {"role": "user", "content": "y"}]


ANTHROPIC_CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
ANSWER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                 "additionalProperties": False}


class Answer(pydantic.BaseModel):
    city: str


async def test_structured_output_reaches_an_anthropic_upstream(fake_anthropic, router):
    """A JSON schema asked for on the chat or Responses route is Anthropic's structured output
    (`output_config.format`: it was dropped, and `.parse()` failed on a prose answer); `json_object`, which
    Messages has no form for, is a line of the system prompt."""
    fake = await fake_anthropic()
    fake.push(*[AStep(json=message([{"type": "text", "text": '{"city": "Oslo"}'}], "claude-sonnet-4-5"))] * 3)
    r = await router(ANTHROPIC_CFG.format(url=fake.url, key=API_KEY))
    parsed = await r.client().chat.completions.parse(model="sonnet", messages=U, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(city="Oslo")
    sent = fake.requests[0].body
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert sent["output_config"]["format"]["schema"]["properties"] == {"city": {"title": "City", "type": "string"}}
    resp = await r.client().responses.parse(model="sonnet", input="x", text_format=Answer)
    assert resp.output_parsed == Answer(city="Oslo")
    assert fake.requests[1].body["output_config"]["format"]["schema"]["required"] == ["city"]
    await r.client().chat.completions.create(model="sonnet", response_format={"type": "json_object"}, messages=[
        {"role": "system", "content": "Reply in JSON."}, *U])
    sent = fake.requests[2].body
    assert sent["system"] == "Reply in JSON.\n\nAnswer with one JSON object and nothing else."
    assert "output_config" not in sent


async def test_cache_writes_reach_every_route(fakes, fake_anthropic, router):
    """Prompt tokens written to a cache: an Anthropic upstream's `cache_creation_input_tokens` is the chat usage's
    `prompt_tokens_details.cache_write_tokens` (as OpenRouter reports them), which Messages reads back as
    `cache_creation_input_tokens` and Responses as `input_tokens_details.cache_write_tokens` (a member the SDK's
    ResponseUsage requires: it was missing)."""
    fake = await fake_anthropic()
    fake.push(AStep(json=message([{"type": "text", "text": "hi"}], "claude-sonnet-4-5", usage={
        "input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 6})))
    r = await router(ANTHROPIC_CFG.format(url=fake.url, key=API_KEY))
    done = await r.client().chat.completions.create(model="sonnet", messages=U)
    assert done.usage is not None and done.usage.prompt_tokens == 20
    assert done.usage.model_dump(exclude_none=True)["prompt_tokens_details"] == {"cached_tokens": 4,
                                                                                 "cache_write_tokens": 6}
    up = await fakes()
    usage = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23,
             "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 6}}
    up.push(*[Step(json=completion("hi", "m", usage=usage))] * 2, Step(json=completion("hi", "m")))
    r2 = await router(CFG.format(url=up.url))
    answer = await claude_message(r2.url, False, model="m", max_tokens=10, messages=U)
    assert (answer.usage.input_tokens, answer.usage.cache_read_input_tokens,
            answer.usage.cache_creation_input_tokens) == (10, 4, 6)
    for expected in (6, 0):  # none reported: 0
        resp = await r2.client().responses.create(model="m", input="x")
        assert resp.usage is not None
        ResponseUsage.model_validate(resp.usage.model_dump())  # strict: every member the SDK requires
        assert resp.usage.input_tokens_details.cache_write_tokens == expected


async def test_a_failed_response_says_an_error_code_the_api_has(fakes, router):
    """A stream that fails mid-way: the `error` event says what failed (our code); the failed Response's
    `error.code` is one of the Responses API's own (`server_error`; ours was outside the SDK's enum)."""
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c", "d"], "m"), reset_after=2))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True})
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_reset_mid_stream"
    failed = events[-1]["response"]
    assert failed["error"]["code"] == "server_error" and "failed mid-stream" in failed["error"]["message"]
    Response.model_validate(json.loads(json.dumps(failed)))


async def test_input_items_page_through_a_long_conversation(fakes, router):
    """The SDK pages `input_items` with `after` (the last id of a page) while `has_more`: the ids are the same
    every time the list is read, `after` and `before` are honoured (the SDK read the first page again and again,
    without end, once a conversation passed 20 items)."""
    up = await fakes()
    up.push(*[Step(json=completion(f"answer {i}", "m")) for i in range(13)])
    r = await router(CFG.format(url=up.url))
    last = None
    for i in range(13):
        last = await r.client().responses.create(model="m", input=f"question {i}",
                                                 **({"previous_response_id": last.id} if last else {}))
    assert last is not None
    listed = []
    async for item in r.client().responses.input_items.list(last.id, limit=7, order="asc"):
        listed.append(item)
        assert len(listed) <= 25
    texts = [item.content[0].text for item in listed]  # type: ignore[union-attr]
    assert texts == [t for i in range(13) for t in (f"question {i}", f"answer {i}")][:25]
    again = await r.client().responses.input_items.list(last.id, limit=100, order="asc")
    assert [i.id for i in again.data] == [i.id for i in listed] and not again.has_more
    newest = await r.client().responses.input_items.list(last.id, limit=3)
    assert [i.id for i in newest.data] == [i.id for i in listed][::-1][:3] and newest.has_more
    before = await r.client().responses.input_items.list(last.id, order="asc", extra_query={"before": listed[5].id})
    assert [i.id for i in before.data] == [i.id for i in listed][:5]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_refusal_comes_after_the_text_before_it(fakes, router, stream):
    """Text, then a refusal: Messages joins them with a blank line, stream or not (the stream joined them with
    nothing), and a repaired stream sends the refusal after the text the repairer held ("<" could begin a call:
    the refusal went out before it)."""
    up = await fakes()
    if stream:
        step = Step(sse=[chunk("m", {"role": "assistant", "content": "Look <"}), chunk("m", {"refusal": "No."}),
                         chunk("m", {}, "stop")], interval=0.01)
    else:
        doc = completion("Look <", "m")
        doc["choices"][0]["message"]["refusal"] = "No."
        step = Step(json=doc)
    up.push(step, step)
    r = await router(CFG.format(url=up.url))
    for tools in ([], [ANTHROPIC_WEATHER]):
        answer = await claude_message(r.url, stream, model="m", max_tokens=10, messages=U,
                                      **({"tools": tools} if tools else {}))
        assert [(b.type, b.text) for b in answer.content] == [("text", "Look <\n\nNo.")]
        assert answer.stop_reason == "refusal"
