"""One repair owner per request: a reply from our engine worker (which repairs its own output) is validated by the
router, never scanned and repaired a second time, and what the engine repaired is reported and counted once.

Real MLX workers serve scripted tiny models; the router runs in this process, so the tests can see that the
router's repair entry points are never called for those replies."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import openai
import pytest

import repair
import router.pipeline
import router.repair_owner
from router.repair_owner import engine_repaired
from tests.fakes.openai_upstream import Step, completion
from tests.ops.conftest import sample
from tests.waiting import wait_until

pytest.importorskip("engines.worker.server")

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "weather?"}]
BROKEN = "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>"  # single quotes
VALID = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
ROCKETS = '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>'
UNKNOWN = "Launching. " + ROCKETS


def _config(tmp: Path, entries: dict[str, tuple[str, str]]) -> str:
    models = "".join(
        f"  - name: {name}\n    engine: mlx\n    model: {json.dumps('tiny:script=' + script)}\n"
        f"    engine_args: ['--no-constrain']\n{extra}"  # the grammar would keep the model's markup from breaking
        for name, (script, extra) in entries.items())
    return f"engines:\n  runtime_dir: '{tmp}'\nmodels:\n{models}"


@pytest.fixture
def repair_spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the router entered its repair paths (they still work: the spies only count)."""
    calls = {"repair_message": 0, "StreamRepairer": 0}

    def counting_repair(*args: object, **kw: object) -> repair.RepairResult:
        calls["repair_message"] += 1
        return repair.repair_message(*args, **kw)  # type: ignore[arg-type]

    class CountingStreamRepairer(repair.StreamRepairer):
        def __init__(self, *args: object, **kw: object) -> None:
            calls["StreamRepairer"] += 1
            super().__init__(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(router.pipeline, "repair_message", counting_repair)
    monkeypatch.setattr(router.repair_owner, "StreamRepairer", CountingStreamRepairer)
    return calls


async def _stream(client, model: str, **kw):  # the streamed reply, assembled
    content, calls = "", {}
    finish = None
    stream = await client.chat.completions.create(model=model, messages=ASK, tools=WEATHER, max_tokens=64,
                                                  stream=True, **kw)
    async for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            call["name"] += (tc.function and tc.function.name) or ""
            call["arguments"] += (tc.function and tc.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


async def test_engine_repairs_are_validated_not_redone_and_counted_once(router, tmp_path, repair_spies):
    r = await router(_config(tmp_path, {"fixed": (BROKEN, "")}))
    client = r.client()
    raw = await client.chat.completions.with_raw_response.create(model="fixed", messages=ASK, tools=WEATHER,
                                                                 max_tokens=64)
    resp = raw.parse()
    call = resp.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert resp.choices[0].finish_reason == "tool_calls" and not resp.choices[0].message.content
    assert raw.headers["x-agentgate-repairs"] == "single_quotes"  # the engine's repair, shown as the router's
    assert "agentgate" not in resp.model_extra  # the engine's report is the router's to read, not the client's

    content, calls, finish = await _stream(client, "fixed")
    assert calls == [{"name": "get_weather", "arguments": '{"city": "Paris"}'}] and finish == "tool_calls"
    assert not content.strip()

    metrics = r.state.metrics
    await wait_until(lambda: sample(metrics.render().decode(), "agentgate_tool_calls_total", model="fixed") == 2)
    text = metrics.render().decode()
    assert sample(text, "agentgate_tool_calls_total", model="fixed", outcome="repaired") == 2
    assert sample(text, "agentgate_tool_call_repairs_total", model="fixed", kind="single_quotes") == 2  # once each
    assert sample(text, "agentgate_tool_call_repairs_total", model="fixed") == 2  # and nothing else
    assert repair_spies == {"repair_message": 0, "StreamRepairer": 0}


async def test_markup_the_engine_left_as_prose_stays_prose(router, tmp_path, repair_spies):
    r = await router(_config(tmp_path, {"plain": (VALID, "")}))
    client = r.client()
    # tool_choice "none": the engine leaves even a valid call as the text the model wrote
    resp = await client.chat.completions.create(model="plain", messages=ASK, tools=WEATHER, max_tokens=64,
                                                tool_choice="none")
    assert resp.choices[0].message.content == VALID and not resp.choices[0].message.tool_calls
    content, calls, _ = await _stream(client, "plain", tool_choice="none")
    assert content == VALID and calls == []
    assert repair_spies == {"repair_message": 0, "StreamRepairer": 0}


async def test_a_call_the_engine_could_not_make_valid_is_reported_once(router, tmp_path, repair_spies):
    r = await router(_config(tmp_path, {
        "keep": (UNKNOWN, ""),
        "strict": (ROCKETS, "    repair: {on_failure: error}\n"),
    }))
    client = r.client()
    resp = await client.chat.completions.create(model="keep", messages=ASK, tools=WEATHER, max_tokens=64)
    assert resp.choices[0].message.content == UNKNOWN and not resp.choices[0].message.tool_calls
    content, calls, _ = await _stream(client, "keep")
    assert content == UNKNOWN and calls == []

    metrics = r.state.metrics
    await wait_until(lambda: sample(metrics.render().decode(), "agentgate_tool_calls_total", model="keep") == 2)
    text = metrics.render().decode()
    assert sample(text, "agentgate_tool_calls_total", model="keep", outcome="failed") == 2
    assert sample(text, "agentgate_tool_call_failures_total", model="keep", reason="unknown_name") == 2

    # on_failure "error": the engine's own words reach the client; streamed, before the first byte (the router
    # holds the markup the engine reports it could not make valid, as it held it when it repaired itself)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model="strict", messages=ASK, tools=WEATHER, max_tokens=64,
                                                 stream=stream)
        assert refused.value.status_code == 502
        assert "launch_rockets" in str(refused.value) and "unknown_name" in str(refused.value)
    assert repair_spies == {"repair_message": 0, "StreamRepairer": 0}


async def test_a_remote_providers_claim_to_have_repaired_is_ignored(fakes, router, repair_spies):
    """Only a local engine the router supervises is trusted to have repaired: an OpenAI provider's reply is repaired
    whatever headers it sends."""
    up = await fakes()
    up.push(Step(json=completion(BROKEN, "m"), headers={"x-agentgate-repaired": "repair"}))
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}', retries: 0}}\n"
                     "models:\n  - {name: m, provider: lab}\n")
    resp = await r.client().chat.completions.create(model="m", messages=ASK, tools=WEATHER)
    assert resp.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert repair_spies["repair_message"] == 1
    assert not engine_repaired("openai", {"x-agentgate-repaired": "repair"})
    assert not engine_repaired("engine", {})  # an external engine command: repaired here


async def test_a_model_entrys_repair_mode_reaches_the_engine(router, tmp_path, repair_spies):
    """`repair: {mode: off}` on an engine entry: the engine repairs nothing and adds no report (nobody would read
    it, so the client would see it); `mode: detect`: the engine promotes only calls that were already valid."""
    r = await router(_config(tmp_path, {
        "raw": (UNKNOWN, "    repair: {mode: off}\n"),
        "detect": (BROKEN, "    repair: {mode: detect}\n"),
        "fixed": (BROKEN, ""),
    }))
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(r.url + "/v1/chat/completions", json={
                    "model": "raw", "messages": ASK, "tools": WEATHER, "max_tokens": 64, "stream": stream}) as resp:
                body = await resp.read()
            assert resp.status == 200, body
            assert UNKNOWN.split(" ")[0].encode() in body
            assert b'"agentgate"' not in body  # no report member, whole or streamed
    client = r.client()
    for model, text, n_calls in (("detect", BROKEN, 0), ("fixed", "", 1)):  # detect: reported, not applied
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=ASK, tools=WEATHER,
                                                                     max_tokens=64)
        message = raw.parse().choices[0].message
        assert (message.content or "") == text and len(message.tool_calls or []) == n_calls
        assert raw.headers.get("x-agentgate-repairs") == "single_quotes"
        content, calls, _ = await _stream(client, model)
        assert content == text and len(calls) == n_calls
    assert repair_spies == {"repair_message": 0, "StreamRepairer": 0}
