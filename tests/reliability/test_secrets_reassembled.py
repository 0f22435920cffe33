"""A provider key no one upstream event holds whole still never reaches the client: the redaction judges what the
router sends, after repair decoded a key written with escapes inside a call, joined a key streamed in pieces, or
a client would join a key split over events; and a key an upstream echoes in base64 (an `Authorization` header
it got) is redacted like the literal one."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.capture import Redactor as CaptureRedactor
from router.redact import SecretGate, scrub_text
from tests.dialects.conftest import claude
from tests.fakes.anthropic_upstream import API_KEY, AStep, FakeAnthropic, stream_events
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.reliability.test_red_team import UPSTREAM_KEY, config, escaped

KEY = UPSTREAM_KEY
TOOL = {"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}
U = [{"role": "user", "content": "x"}]


# --- the gate on its own --------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(before=st.text(alphabet="sk-aXUP \n", max_size=12), after=st.text(alphabet="sk-aXUP \n", max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8), channels=st.integers(1, 3))
def test_a_secret_cut_anywhere_never_passes_the_gate(before, after, cuts, channels):
    """Whatever pieces a text comes in, on one channel or several interleaved, what passes the gate on each
    channel (and what it held, at the end) is the text redacted whole: no secret, nothing lost or reordered."""
    text = before + KEY + after
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    secrets = (KEY, "sk-other-CANARY-77")
    gate = SecretGate(secrets)
    out = dict.fromkeys(range(channels), "")
    for piece in pieces:
        for channel in range(channels):
            out[channel] += gate.text(channel, piece)
    for channel, held in gate.flush().items():
        out[channel] += held
    assert out == dict.fromkeys(range(channels), scrub_text(text, secrets))


def test_base64_and_escaped_spellings_are_redacted():
    """By the router's redaction and by the capture ring's (the repair inspector kept a model's escaped key)."""
    captures = CaptureRedactor([KEY])
    for text in (base64.b64encode(f"Bearer {KEY}".encode()).decode(), base64.b64encode(KEY.encode()).decode(),
                 base64.urlsafe_b64encode(f"x:{KEY}!".encode()).decode(), escaped(KEY), f"%{ord(KEY[0]):02X}{KEY[1:]}",
                 escaped(KEY[:4]).upper().replace("\\U", "\\u") + KEY[4:]):
        assert "[redacted]" in scrub_text(text, [KEY]), text
        assert "[redacted]" in captures.text(text), text


# --- through the router -----------------------------------------------------------------------------------------

def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _text_events(text: str, size: int) -> list[Any]:
    return [chunk("m", {"role": "assistant", "content": ""}),
            *[chunk("m", {"content": p}) for p in _pieces(text, size)], chunk("m", {}, "stop")]


def _native_call_events(args: str, size: int) -> list[Any]:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": ""}}
    return [chunk("m", {"role": "assistant", "content": None}), chunk("m", {"tool_calls": [head]}),
            *[chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _pieces(args, size)],
            chunk("m", {}, "tool_calls")]


CASES = {
    "a key split over text events": (lambda: _text_events(f"KEY={KEY} done", 5), False),
    "a text call with the key, streamed in pieces": (
        lambda: _text_events('<tool_call>{"name": "read_file", "arguments": {"path": "' + KEY + '"}}</tool_call>', 7),
        True),
    "a native call's arguments in fragments": (lambda: _native_call_events(json.dumps({"path": KEY}), 5), True),
    "the key in base64, one event": (
        lambda: _text_events("auth was " + base64.b64encode(f"Bearer {KEY}".encode()).decode(), 400), False),
}


async def _chat(r: Any, tools: bool) -> str:
    stream = await r.client().chat.completions.create(model="m", messages=U, stream=True,
                                                      **({"tools": [TOOL]} if tools else {}))
    text, args = "", ""
    async for c in stream:
        if c.choices:
            text += c.choices[0].delta.content or ""
            for call in c.choices[0].delta.tool_calls or []:
                args += call.function.arguments or "" if call.function else ""
    return text + args


async def _messages(r: Any, tools: bool) -> str:
    kw: dict[str, Any] = {"tools": [{"name": "read_file", "input_schema": TOOL["function"]["parameters"]}]} \
        if tools else {}
    async with claude(r.url).messages.stream(model="m", max_tokens=64, messages=U, **kw) as s:
        message = await s.get_final_message()
    return json.dumps(message.model_dump(), ensure_ascii=False)


async def _responses(r: Any, tools: bool) -> str:
    kw: dict[str, Any] = {"tools": [{"type": "function", **TOOL["function"]}]} if tools else {}
    async with r.client().responses.stream(model="m", input="x", **kw) as s:
        response = await s.get_final_response()
    return json.dumps([o.model_dump() for o in response.output], ensure_ascii=False)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("route", ["chat", "messages", "responses"])
async def test_a_key_no_event_holds_whole_never_reaches_the_client(fakes, router, case, route):
    """What the client puts together from a stream (the SDKs' own accumulation) holds no key, on every route,
    tools declared or not (no tools on the chat route: the events pass through, each read for the key)."""
    events, tools = CASES[case]
    up = await fakes()
    up.push(Step(sse=events()), Step(sse=events()))
    r = await router(config(up.url, retries=0))
    for declared in {tools, False} if route == "chat" else {tools}:
        got = await {"chat": _chat, "messages": _messages, "responses": _responses}[route](r, declared)
        assert KEY not in got and "[redacted]" in got, got[:400]


async def test_a_key_written_with_escapes_inside_a_call_is_redacted_after_repair(fakes, router):
    """Not streamed: the model's text holds a call whose argument spells the key with JSON escapes; the body's
    redaction reads the text as the model wrote it, repair decodes the escapes: the call goes out redacted."""
    text = '<tool_call>{"name": "read_file", "arguments": {"path": "' + escaped(KEY) + '"}}</tool_call>'
    up = await fakes()
    up.push(*[Step(json=completion(text, "m"))] * 3)
    r = await router(config(up.url, retries=0))
    done = await r.client().chat.completions.create(model="m", messages=U, tools=[TOOL])  # type: ignore[list-item]
    calls = done.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"path": "[redacted]"}]  # type: ignore[union-attr]
    answer = await claude(r.url).messages.create(model="m", max_tokens=64, messages=U, tools=[  # type: ignore[list-item]
        {"name": "read_file", "input_schema": TOOL["function"]["parameters"]}])
    assert KEY not in json.dumps(answer.model_dump()) and "[redacted]" in json.dumps(answer.model_dump())
    resp = await r.client().responses.create(model="m", input="x", tools=[{"type": "function", **TOOL["function"]}])
    assert KEY not in json.dumps(resp.model_dump()) and "[redacted]" in json.dumps(resp.model_dump())


async def test_a_key_echoed_in_base64_in_an_error_never_reaches_the_client(fakes, router):
    echoed = base64.b64encode(f"Bearer {KEY}".encode()).decode()
    up = await fakes()
    up.push(*[Step(status=400, json={"error": {"message": f"bad auth header {echoed}", "type": "x"}})] * 3)
    r = await router(config(up.url, retries=0))
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().chat.completions.create(model="m", messages=U)
    assert echoed not in str(bad.value.body) and "[redacted]" in str(bad.value.body)
    with pytest.raises(anthropic.BadRequestError) as a_bad:
        await claude(r.url).messages.create(model="m", max_tokens=5, messages=U)  # type: ignore[arg-type]
    assert echoed not in str(a_bad.value.body)


ANTHROPIC_CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""


async def test_a_key_split_over_native_anthropic_deltas_is_redacted(router):
    """Messages passed through to an Anthropic provider: a key cut between two text deltas (and between two
    pieces of a tool's input) goes out redacted, the rest of the text as it came."""
    fake = FakeAnthropic()
    await fake.start()
    try:
        await _native_split(fake, router)
    finally:
        await fake.stop()


async def _native_split(fake: FakeAnthropic, router: Any) -> None:
    blocks = [{"type": "text", "text": f"the key is {API_KEY} ok"},
              {"type": "tool_use", "id": "toolu_01A", "name": "read_file", "input": {"path": API_KEY}}]
    fake.push(AStep(events=stream_events(blocks, "claude-sonnet-4-5")))
    r = await router(ANTHROPIC_CFG.format(url=fake.url, key=API_KEY))
    async with claude(r.url).messages.stream(model="sonnet", max_tokens=64, messages=U) as s:  # type: ignore[arg-type]
        message = await s.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in message.content] == [
        {"type": "text", "text": "the key is [redacted] ok"},
        {"type": "tool_use", "id": "toolu_01A", "name": "read_file", "input": {"path": "[redacted]"}}]
