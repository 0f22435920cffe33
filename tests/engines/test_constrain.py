"""Constrained decoding end to end: random-weight tiny models whose calls and JSON replies must still be valid."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import jsonschema
import pytest

from engines.worker.constrain import plan_chat, strict_schema
from tests.engines.conftest import WEATHER_TOOL

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "user", "content": "Plan the trip and call the tools."}]
TRIP = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "alerts": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "where": {"type": "object", "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                   "lon": {"type": "number", "minimum": -180, "maximum": 180}},
                  "required": ["lat", "lon"]},
    },
    "required": ["city", "days", "unit", "alerts", "tags", "where"],
}
TOOLS = [
    {"type": "function", "function": {"name": "plan_trip", "parameters": TRIP}},
    {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string", "maxLength": 20}}, "required": ["path"]}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


async def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                     headers=headers or {}) as r:
        return r.status, dict(r.headers), await r.json()


async def _stream(url: str, body: dict) -> tuple[dict, list[dict]]:
    """Streamed tool calls reassembled by index."""
    calls: dict[int, dict] = {}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                     json={**body, "stream": True}) as r:
        assert r.status == 200
        headers = dict(r.headers)
        async for line in r.content:
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:])["choices"]:
                for tc in choice["delta"].get("tool_calls") or []:
                    entry = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
                    entry["name"] += tc["function"].get("name") or ""
                    entry["arguments"] += tc["function"].get("arguments") or ""
    return headers, [calls[i] for i in sorted(calls)]


def _valid(name: str, arguments: str) -> None:
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])


async def test_required_and_named_calls_validate_stream_and_not(engine):
    e = await engine("random")
    for temperature in (0.0, 1.0):
        for choice in ("required", {"type": "function", "function": {"name": "read_file"}}):
            body = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": choice,
                    "temperature": temperature, "max_tokens": 160, "seed": 7}
            status, headers, doc = await _post(e.url, body)
            assert status == 200, doc
            assert headers["x-agentgate-constrained"] == "tools"
            assert headers["x-agentgate-tool-calls"] == "valid"
            msg = doc["choices"][0]["message"]
            assert doc["choices"][0]["finish_reason"] == "tool_calls" and msg["tool_calls"]
            for call in msg["tool_calls"]:
                _valid(call["function"]["name"], call["function"]["arguments"])
                if isinstance(choice, dict):
                    assert call["function"]["name"] == "read_file"
            s_headers, calls = await _stream(e.url, body)
            assert s_headers["x-agentgate-constrained"] == "tools" and calls
            for call in calls:
                _valid(call["name"], call["arguments"])


async def test_constrained_rows_share_a_batch_with_free_ones(engine):
    """Constrained and unconstrained sequences decode in one batch (the grammars' masks are applied in one pass
    over the batch's rows): every constrained call validates, free rows (one with a per-row repetition penalty)
    run to their limit."""
    import asyncio

    e = await engine("random")
    required = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": "required",
                "temperature": 1.0, "max_tokens": 160}
    free = {"model": "random", "messages": USER, "max_tokens": 48, "temperature": 1.0,
            "logit_bias": {"2": -100}}
    jobs = [_post(e.url, {**required, "seed": i}) for i in range(4)]
    jobs += [_post(e.url, {**free, "seed": 9}), _post(e.url, {**free, "seed": 10, "repetition_penalty": 1.3})]
    jobs += [_post(e.url, {**required, "seed": 11}, {"x-agentgate-constrain": "off"})]
    results = await asyncio.gather(*jobs, _stream(e.url, {**required, "seed": 12}))
    for status, headers, doc in results[:4]:
        assert status == 200 and headers["x-agentgate-constrained"] == "tools", doc
        for call in doc["choices"][0]["message"]["tool_calls"]:
            _valid(call["function"]["name"], call["function"]["arguments"])
    for status, headers, doc in results[4:6]:
        assert status == 200 and headers["x-agentgate-constrained"] == "none"
        assert doc["usage"]["completion_tokens"] == 48
    assert results[6][1]["x-agentgate-constrained"] == "off"
    s_headers, calls = results[7]
    assert s_headers["x-agentgate-constrained"] == "tools" and calls
    for call in calls:
        _valid(call["name"], call["arguments"])
    assert (await e.stats())["peak_batch"] > 1


class _FailingMatcher:
    """A matcher that raises on its third consumed token (the batched mask pass runs it on the grammar thread)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.consumed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def consume_token(self, token: int) -> bool:
        self.consumed += 1
        if self.consumed == 3:
            raise RuntimeError("matcher exploded")
        return bool(self._inner.consume_token(token))


async def test_a_failing_grammar_fails_only_its_sequence(engine):
    """A matcher that raises in the batched mask pass fails its own sequence; the constrained and free rows
    decoding in the same steps finish normally."""
    import asyncio

    from engines.worker.sampling import SamplingParams
    from engines.worker.scheduler import Failed, Finished, SequenceSpec
    from engines.worker.server import WORKER

    e = await engine("random")
    state = e.worker.app[WORKER]
    guide = state.guide
    plan = plan_chat(family=guide.family, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
                     response_format=None, reasoning_open=False, think=guide.think, special=guide.special)
    proc = guide.guided(plan).processor
    proc._m = _FailingMatcher(proc._m)
    required = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": "required",
                "temperature": 1.0, "max_tokens": 160, "seed": 4}
    free = {"model": "random", "messages": USER, "max_tokens": 48, "temperature": 1.0, "logit_bias": {"2": -100}}
    goods = [asyncio.ensure_future(_post(e.url, required)), asyncio.ensure_future(_post(e.url, free))]
    bad = state.scheduler.submit(SequenceSpec([5, 6, 7], 64, SamplingParams(temperature=1.0),
                                              logits_processors=[proc]))

    async def outcome() -> object:
        while True:
            for event in await bad.next_events():
                if isinstance(event, (Failed, Finished)):
                    return event

    failed = await asyncio.wait_for(outcome(), 120)
    assert isinstance(failed, Failed) and "matcher exploded" in failed.message
    (status, headers, doc), (free_status, _, free_doc) = await asyncio.wait_for(asyncio.gather(*goods), 120)
    assert status == 200 and headers["x-agentgate-constrained"] == "tools"
    for call in doc["choices"][0]["message"]["tool_calls"]:
        _valid(call["function"]["name"], call["function"]["arguments"])
    assert free_status == 200 and free_doc["usage"]["completion_tokens"] == 48


async def test_parallel_off_gives_one_call_and_json_schema_replies_validate(engine):
    e = await engine("random")
    body = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": "required",
            "parallel_tool_calls": False, "temperature": 1.0, "max_tokens": 160, "seed": 3}
    for _ in range(3):
        status, _, doc = await _post(e.url, body)
        assert status == 200 and len(doc["choices"][0]["message"]["tool_calls"]) == 1
    fmt = {"type": "json_schema", "json_schema": {"name": "trip", "schema": TRIP, "strict": True}}
    for temperature in (0.0, 1.0):
        status, headers, doc = await _post(e.url, {"model": "random", "messages": USER, "response_format": fmt,
                                                   "temperature": temperature, "max_tokens": 160})
        assert status == 200 and headers["x-agentgate-constrained"] == "json"
        jsonschema.validate(json.loads(doc["choices"][0]["message"]["content"]), TRIP)
    status, _, doc = await _post(e.url, {"model": "random", "messages": USER, "max_tokens": 80, "seed": 5,
                                         "response_format": {"type": "json_object"}})
    assert status == 200 and isinstance(json.loads(doc["choices"][0]["message"]["content"]), dict)


async def test_lazy_trigger_makes_a_broken_call_valid_and_leaves_prose_alone(engine):
    """The scripted model writes `<tool_call>` and then a Python-dict call; under tool_choice auto the grammar
    takes over at the opener, so the call comes out valid. Without the constraint it needs repair."""
    e = await engine("broken_tool")
    body = {"model": "broken_tool", "messages": USER, "tools": [WEATHER_TOOL], "temperature": 0, "max_tokens": 64}
    status, headers, doc = await _post(e.url, body)
    assert status == 200 and headers["x-agentgate-constrained"] == "tools_lazy"
    assert headers["x-agentgate-tool-calls"] == "valid"
    (call,) = doc["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER_TOOL["function"]["parameters"])
    status, headers, doc = await _post(e.url, body, {"x-agentgate-constrain": "off"})
    assert status == 200 and headers["x-agentgate-constrained"] == "off"
    assert headers["x-agentgate-tool-calls"] == "repaired"


async def test_prose_model_is_untouched_and_unconstrained_requests_pay_nothing(engine):
    e = await engine("think")
    plain = {"model": "think", "messages": USER, "temperature": 0}
    _, headers, free = await _post(e.url, plain)
    assert headers["x-agentgate-constrained"] == "none"
    _, headers, lazy = await _post(e.url, {**plain, "tools": [WEATHER_TOOL]})
    assert headers["x-agentgate-constrained"] == "tools_lazy"
    assert lazy["choices"][0]["message"]["content"] == free["choices"][0]["message"]["content"]
    stats = await e.stats()
    assert stats["constrain"]["requests"] == {"none": 1, "tools_lazy": 1}


async def test_uncompilable_schema_falls_back_and_grammars_are_cached(engine):
    e = await engine("random")
    bad = {"type": "function", "function": {"name": "odd", "parameters": {
        "type": "object", "properties": {"x": {"type": "string", "pattern": "(unclosed"}}, "required": ["x"]}}}
    body = {"model": "random", "messages": USER, "tools": [bad], "tool_choice": "required", "max_tokens": 8}
    status, headers, _ = await _post(e.url, body)
    assert status == 200 and headers["x-agentgate-constrained"] == "fallback"
    good = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": "required", "max_tokens": 120}
    for _ in range(2):
        status, headers, _ = await _post(e.url, good)
        assert status == 200 and headers["x-agentgate-constrained"] == "tools"
    grammars = (await e.stats())["constrain"]["grammars"]
    assert grammars == {"cached": 2, "compiled": 1, "hits": 1, "failed": 1}


async def test_switched_off_worker_decodes_unconstrained(engine):
    e = await engine("random", constrain=False)
    body = {"model": "random", "messages": USER, "tools": TOOLS, "tool_choice": "required", "max_tokens": 8}
    status, headers, _ = await _post(e.url, body)
    assert status == 200 and headers["x-agentgate-constrained"] == "off"
    assert (await e.stats())["constrain"] is None


async def test_plans_and_schema_tightening() -> None:
    tight = strict_schema({"type": "object", "properties": {"n": {"type": "integer"}, "o": {"type": "object"}}})
    assert tight["additionalProperties"] is False and tight["properties"]["o"]["additionalProperties"] is False
    assert tight["properties"]["n"]["maximum"] == 2**53 - 1
    kw = {"tools": TOOLS, "parallel_tool_calls": True, "response_format": None, "reasoning_open": False,
          "think": None}
    assert plan_chat(family="hermes", tool_choice="required", **kw).kind == "tools"
    assert plan_chat(family="hermes", tool_choice="auto", **kw).trigger == "<tool_call>"
    assert plan_chat(family="hermes", tool_choice="none", **kw).grammar is None
    assert plan_chat(family="harmony", tool_choice="required", **kw).reason == "unsupported_format"
    assert plan_chat(family="llama3", tool_choice="auto", **kw).reason == "no_trigger"
    from llguidance import LLMatcher

    think = {**kw, "reasoning_open": True, "think": ("<think>", "</think>")}
    for plan in (plan_chat(family="hermes", tool_choice="required", **think),
                 plan_chat(family="hermes", tool_choice="required", **think,
                           special=frozenset({"<tool_call>", "</tool_call>", "</think>"})),
                 plan_chat(family="llama3", tool_choice="required", **kw),
                 plan_chat(family="hermes", tool_choice="auto", **kw)):
        assert plan.grammar is not None and LLMatcher.validate_grammar(plan.grammar) == ""


NULLABLE = {"type": "object", "properties": {"a": {"type": ["number", "null"]}, "b": {"type": ["integer", "null"]},
                                             "c": {"type": ["number", "string"]}}, "required": ["a", "b", "c"]}


async def test_numbers_in_a_type_list_are_bounded_like_plain_ones(engine):
    """A nullable number (OpenAI strict mode's `["number", "null"]`) or an integer beside another type gets the
    same bounds as a plain one: otherwise a random model writes digits and exponents without end, and a number
    past the float range leaves no call at all."""
    tight = strict_schema(NULLABLE)["properties"]
    assert (tight["a"]["minimum"], tight["a"]["maximum"]) == (-1e15, 1e15)
    assert (tight["b"]["minimum"], tight["b"]["maximum"]) == (-(2**53 - 1), 2**53 - 1)
    assert tight["c"]["maximum"] == 1e15
    assert strict_schema({"type": "object", "properties": {"o": {"type": ["object", "null"]}}})[
        "properties"]["o"]["additionalProperties"] is False
    e = await engine("random")
    tools = [{"type": "function", "function": {"name": "f", "parameters": NULLABLE}}]
    for seed in range(4):
        body = {"model": "random", "messages": USER, "tools": tools, "tool_choice": "required",
                "parallel_tool_calls": False, "temperature": 1.0, "max_tokens": 80, "seed": seed}
        status, headers, doc = await _post(e.url, body)
        assert status == 200 and headers["x-agentgate-constrained"] == "tools", doc
        (call,) = doc["choices"][0]["message"]["tool_calls"]
        args = json.loads(call["function"]["arguments"])
        jsonschema.validate(args, NULLABLE)
        assert args["a"] is None or abs(args["a"]) <= 1e15
        assert args["b"] is None or abs(args["b"]) <= 2**53 - 1


async def test_a_required_name_without_a_property_is_still_allowed(engine):
    """`required` may list a name that `properties` does not (or there are no `properties` at all): the declared
    schema takes it as an extra property. Closing the object must keep it, or the grammar cannot compile and
    tool_choice required decodes unconstrained, with no call."""
    schemas = {"open_file": {"type": "object", "properties": {"path": {"type": "string", "maxLength": 20}},
                             "required": ["path", "mode"]},
               "touch": {"type": "object", "required": ["path"]}}
    tight = strict_schema(schemas["open_file"])
    assert tight["additionalProperties"] is False and set(tight["properties"]) == {"path", "mode"}
    assert strict_schema(schemas["touch"])["properties"]["path"]["maximum"] == 1e15
    e = await engine("random")
    for name, schema in schemas.items():
        tools = [{"type": "function", "function": {"name": name, "parameters": schema}}]
        body = {"model": "random", "messages": USER, "tools": tools, "tool_choice": "required",
                "parallel_tool_calls": False, "temperature": 1.0, "max_tokens": 60, "seed": 2}
        status, headers, doc = await _post(e.url, body)
        assert status == 200 and headers["x-agentgate-constrained"] == "tools", doc
        (call,) = doc["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == name
        jsonschema.validate(json.loads(call["function"]["arguments"]), schema)
