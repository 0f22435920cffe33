"""A provider key no one upstream event holds whole still never reaches the client: the redaction judges what the
router sends, after repair decoded a key written with escapes inside a call, joined a key streamed in pieces, or
a client would join a key split over events; and a key an upstream echoes in base64 (an `Authorization` header
it got) is redacted like the literal one."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import aiohttp
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


# --- the shapes a stream can take ---------------------------------------------------------------------------------

def _choice(index: Any, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish, **extra}]}


def _sse_payloads(body: bytes) -> list[Any]:
    return [json.loads(line[6:]) for line in body.decode().split("\n")
            if line.startswith("data: {")]


async def _raw(r: Any, body: dict[str, Any]) -> list[Any]:
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        return _sse_payloads(await resp.read())


def _joined(payloads: list[Any], pick: Any) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for p in payloads:
        for choice in p.get("choices") or []:
            for key, text in pick(choice):
                out[key] = out.get(key, "") + text
    return out


def _content(choice: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(choice["index"], (choice.get("delta") or {}).get("content") or "")]


def _args(choice: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(c["index"], (c.get("function") or {}).get("arguments") or "")
            for c in (choice.get("delta") or {}).get("tool_calls") or []]


HALF = len(KEY) // 2
ESC = escaped(KEY)
SHAPES: dict[str, tuple[list[Any], Any]] = {
    "choices interleaved (n=2)": (
        [_choice(0, {"content": "key " + KEY[:HALF]}), _choice(1, {"content": "hello"}),
         _choice(0, {"content": KEY[HALF:] + " ok"}), _choice(1, {"content": " there"}),
         _choice(0, {}, "stop"), _choice(1, {}, "stop")], _content),
    "parallel calls' arguments interleaved": (
        [_choice(0, {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function", "function": {
            "name": "read_file", "arguments": ""}} for i in (0, 1)]}),
         _choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"path": "' + KEY[:HALF]}}]}),
         _choice(0, {"tool_calls": [{"index": 1, "function": {"arguments": '{"path": "b.py"}'}}]}),
         _choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": KEY[HALF:] + '"}'}}]}),
         _choice(0, {}, "tool_calls")], _args),
    "a JSON-escaped spelling cut in two": (
        [_choice(0, {"content": "a " + ESC[:15]}), _choice(0, {"content": ESC[15:] + " b"}),
         _choice(0, {}, "stop")], _content),
    "a percent-encoded spelling cut in two": (
        [_choice(0, {"content": "a %7"}), _choice(0, {"content": "3" + KEY[1:] + " b"}), _choice(0, {}, "stop")],
        _content),
    "logprob tokens": (
        [_choice(0, {"content": p}, logprobs={"content": [{"token": p, "logprob": -0.1, "bytes": list(p.encode()),
                                                           "top_logprobs": []}]})
         for p in ("key ", KEY[:HALF], KEY[HALF:])] + [_choice(0, {}, "stop")],
        lambda c: [("t", "".join(t["token"] for t in (c.get("logprobs") or {}).get("content") or []))]),
    "a legacy function_call": (
        [_choice(0, {"function_call": {"name": "read_file", "arguments": '{"path": "' + KEY[:HALF]}}),
         _choice(0, {"function_call": {"arguments": KEY[HALF:] + '"}'}}), _choice(0, {}, "function_call")],
        lambda c: [("f", ((c.get("delta") or {}).get("function_call") or {}).get("arguments") or "")]),
    "reasoning_details": (
        [_choice(0, {"reasoning_details": [{"type": "reasoning.text", "index": 0, "text": "see " + KEY[:HALF]}]}),
         _choice(0, {"reasoning_details": [{"type": "reasoning.text", "index": 0, "text": KEY[HALF:]}]}),
         _choice(0, {"content": "done"}, "stop")],
        lambda c: [("r", "".join(d.get("text") or "" for d in (c.get("delta") or {}).get("reasoning_details") or []))]),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_every_channel_of_a_stream_is_gated(fakes, router, shape):
    """Choices and calls interleaved wait each for their own next piece (one flushed another's: a key cut between
    two of them passed), spellings cut mid-escape are held, and every field a client joins is a channel."""
    events, pick = SHAPES[shape]
    up = await fakes()
    up.push(Step(sse=events))
    r = await router(config(up.url, retries=0))
    joined = _joined(await _raw(r, {"model": "m", "messages": U, "stream": True}), pick)
    assert joined and all(KEY not in text and ESC not in text for text in joined.values()), joined
    assert any("[redacted]" in text for text in joined.values()), joined


@pytest.mark.parametrize("where", ["choice", "call"])
async def test_an_index_that_is_no_integer_is_no_internal_error(fakes, router, where):
    """An upstream's odd index (a list, an object) on a keyed provider's stream: passed on, no 500 (it broke the
    gate's held text, keyed by it)."""
    up = await fakes()
    odd: dict[str, Any] = _choice([0], {"content": "the tests"}) if where == "choice" else _choice(0, {"tool_calls": [
        {"index": {"a": 1}, "id": "c", "function": {"name": "read_file", "arguments": '{"path": "s'}}]})
    up.push(Step(sse=[odd, _choice(0, {"content": " pass"}), _choice(0, {}, "stop")]))
    r = await router(config(up.url, retries=0))
    payloads = await _raw(r, {"model": "m", "messages": U, "stream": True})
    assert payloads and not any("error" in p for p in payloads), payloads


async def test_text_held_goes_out_before_a_call_and_before_an_error(fakes, router):
    """The content's end a key could begin with ("s") goes out before the call that follows it (its header had
    no `arguments`: the call overtook it), and before the error event of a stream cut short."""
    header = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read_file"}}
    events = [_choice(0, {"role": "assistant", "content": "see the tests"}), _choice(0, {"tool_calls": [header]}),
              _choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"path": "a"}'}}]}),
              _choice(0, {}, "tool_calls")]
    up = await fakes()
    up.push(Step(sse=events), Step(sse=events),
            Step(sse=[_choice(0, {"content": "answer is"}), _choice(0, {"content": " s"}),
                      _choice(0, {"content": "x"})], reset_after=2))
    r = await router(config(up.url, retries=0))
    async with claude(r.url).messages.stream(model="m", max_tokens=10, messages=U) as s:  # type: ignore[arg-type]
        message = await s.get_final_message()
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "see the tests"),
                                                                            ("tool_use", None)]
    payloads = await _raw(r, {"model": "m", "messages": U, "stream": True})
    kinds = ["content" if p["choices"][0]["delta"].get("content") else "call"
             if p["choices"][0]["delta"].get("tool_calls") else "other" for p in payloads if p.get("choices")]
    assert kinds.index("call") > max(i for i, k in enumerate(kinds) if k == "content"), kinds
    payloads = await _raw(r, {"model": "m", "messages": U, "stream": True})
    assert _joined(payloads, _content) == {0: "answer is s"} and "error" in payloads[-1]


async def test_native_anthropic_text_held_goes_out_before_the_signature_and_the_error(router):
    """A thinking block's held end goes out before its signature (not after it); a block cut by an error event
    loses nothing it held."""
    fake = FakeAnthropic()
    await fake.start()
    try:
        events = stream_events([{"type": "thinking", "thinking": "I think this"}, {"type": "text", "text": "ok"}],
                               "claude-sonnet-4-5")
        events[3] = ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "thinking_delta", "thinking": "I think s"}})
        cut = stream_events([{"type": "text", "text": "answer is"}], "claude-sonnet-4-5")
        cut.insert(5, ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": " s"}}))
        cut[6:] = [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})]
        fake.push(AStep(events=events), AStep(events=cut))
        r = await router(ANTHROPIC_CFG.format(url=fake.url, key=API_KEY))
        async with aiohttp.ClientSession() as s:
            body = {"model": "sonnet", "max_tokens": 64, "messages": U, "stream": True}
            async with s.post(r.url + "/v1/messages", json=body) as resp:
                sent = [json.loads(line[6:]) for line in (await resp.read()).decode().split("\n")
                        if line.startswith("data: ")]
            deltas = [e["delta"] for e in sent if e["type"] == "content_block_delta" and e["index"] == 0]
            assert [d["type"] for d in deltas] == ["thinking_delta", "thinking_delta", "signature_delta"]
            assert "".join(d.get("thinking", "") for d in deltas) == "I think s"
            async with s.post(r.url + "/v1/messages", json=body) as resp:
                sent = [json.loads(line[6:]) for line in (await resp.read()).decode().split("\n")
                        if line.startswith("data: ")]
        assert "".join(e["delta"].get("text", "") for e in sent if e["type"] == "content_block_delta") == "answer is s"
        assert sent[-1]["type"] == "error"
    finally:
        await fake.stop()


def test_the_beginning_of_a_secret_goes_out_once_not_four_characters_at_a_time():
    """Releases (another kind of text between every piece) let out at most 4 characters of one secret in all
    (they let out 4 each time: 24 of 25)."""
    gate = SecretGate((KEY,))
    out = ""
    for i in range(0, len(KEY), 4):
        out += gate.text(0, KEY[i:i + 4]) + gate.release(0)
    assert out.startswith(KEY[:4] + "[redacted]") and KEY[:5] not in out


@pytest.mark.parametrize(("secret", "spelled"), [
    ("S3cr%2Ft-Pa55word", "user%3AS3cr%252Ft-Pa55word%40host"),  # a URL password echoed percent-encoded
    ("AKIA/abc/def/ghijklmnop", '{"key": "AKIA\\/abc\\/def\\/ghijklmnop"}'),  # JSON's escaped slashes
])
def test_spellings_of_secrets_with_escapable_characters_are_held(secret, spelled):
    for cut in range(1, len(spelled)):
        gate = SecretGate((secret,))
        out = gate.text(0, spelled[:cut]) + gate.text(0, spelled[cut:]) + "".join(gate.flush().values())
        assert "[redacted]" in out and secret[:5] not in out.replace("\\/", "/").replace("%25", "%"), (cut, out)


def _logprobs_chunk(token: str, legacy: bool = False) -> dict[str, Any]:
    if legacy:
        return {"id": "cmpl", "object": "text_completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "text": token, "finish_reason": None, "logprobs": {
                "tokens": [token], "token_logprobs": [-0.1], "top_logprobs": [{token: -0.1}], "text_offset": [0]}}]}
    return _choice(0, {"content": token}, logprobs={"content": [{
        "token": token, "logprob": -0.1, "bytes": list(token.encode()),
        "top_logprobs": [{"token": token, "logprob": -0.1, "bytes": list(token.encode())}]}]})


@pytest.mark.parametrize("legacy", [False, True], ids=["chat", "completions"])
async def test_logprobs_keep_their_tokens_whole_and_never_spell_a_key(fakes, router, legacy):
    """Logprob tokens are never cut (a token ending in "s" kept its "s" for the next one: "Ye", "s it"), and no
    token, alternative or byte list spells a key cut over several (the alternatives were not looked at)."""
    plain = ["Yes", " it", " is", " s", "k", "."]
    leaky = ["key: ", *[KEY[i:i + 3] for i in range(0, len(KEY), 3)], " ok"]
    finish = ({**_logprobs_chunk("", legacy), "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
              if legacy else _choice(0, {}, "stop"))
    up = await fakes()
    up.push(Step(sse=[*(_logprobs_chunk(t, legacy) for t in plain), finish]),
            Step(sse=[*(_logprobs_chunk(t, legacy) for t in leaky), finish]))
    r = await router(config(up.url, retries=0))
    path, body = ("/v1/completions", {"model": "m", "prompt": "x", "stream": True}) if legacy else (
        "/v1/chat/completions", {"model": "m", "messages": U, "stream": True})

    async def tokens() -> list[str]:
        async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body) as resp:
            sent = _sse_payloads(await resp.read())
        logprobs = [c["logprobs"] for p in sent for c in p.get("choices") or [] if c.get("logprobs")]
        if legacy:
            return [t for lp in logprobs for t in lp.get("tokens") or []] + [
                k for lp in logprobs for top in lp.get("top_logprobs") or [] for k in (top or {})]
        entries = [e for lp in logprobs for e in lp.get("content") or []]
        return [e["token"] for e in entries] + [bytes(e["bytes"]).decode() for e in entries] + [
            a["token"] for e in entries for a in e.get("top_logprobs") or []]

    assert (await tokens())[:len(plain)] == plain
    leaked = "".join(await tokens())
    assert KEY[:5] not in leaked and "[redacted]" in leaked, leaked


async def test_a_call_named_again_without_arguments_keeps_what_its_arguments_held(fakes, router):
    up = await fakes()
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": ""}}
    up.push(Step(sse=[_choice(0, {"tool_calls": [head]}),
                      _choice(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"path": "tests'}}]}),
                      _choice(0, {"tool_calls": [{"index": 0, "function": {"name": "read_file", "arguments": None}}]},
                              "length")]))
    r = await router(config(up.url, retries=0))
    payloads = await _raw(r, {"model": "m", "messages": U, "stream": True})
    assert _joined(payloads, _args) == {0: '{"path": "tests'}
