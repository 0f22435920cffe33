"""What providers put beside the standard fields of an answer, which their next turn needs back, survives tool-call
repair, streamed (event by event, or come whole in one read) as non-stream:

- Gemini 3's thought signature on each call (`extra_content: {"google": {"thought_signature": ...}}`): without it
  Gemini refuses the next turn (400 "Function call is missing a thought_signature in functionCall parts").
  Before, repair rebuilt the calls without it, streamed or not.
- OpenRouter's `reasoning_details` (text and encrypted pieces) and its name for the reasoning, `reasoning`: a
  repaired stream dropped the first and renamed the second `reasoning_content`, where the non-stream answer kept
  both."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, chunk, completion

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SIG = {"google": {"thought_signature": "CiQBjz1rX0Ex4mPl3EfSiG=="}}
SIG2 = {"google": {"thought_signature": "Second=="}}
CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""
DET = [{"type": "reasoning.text", "text": "Need weather.", "format": "google-gemini-v1", "index": 0},
       {"type": "reasoning.encrypted", "data": "ENC_SIG==", "id": "tool_x", "format": "google-gemini-v1", "index": 1}]


def _call(cid: str, city: str, extra: Any = None) -> dict[str, Any]:
    call: dict[str, Any] = {"id": cid, "type": "function",
                            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
    if extra is not None:
        call["extra_content"] = extra
    return call


async def _post(url: str, stream: bool) -> dict[str, Any]:
    """The assistant message the client gets (streamed: assembled from the deltas, every member of a call's
    deltas and of the deltas kept, as a client that keeps what it does not know does)."""
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Weather?"}], "tools": WEATHER}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        if not stream:
            return dict((await resp.json())["choices"][0]["message"])
        text = (await resp.read()).decode()
    msg: dict[str, Any] = {}
    calls: dict[int, dict[str, Any]] = {}
    for event in text.split("\n\n"):
        if not event.startswith("data: ") or event == "data: [DONE]":
            continue
        for choice in json.loads(event[6:])["choices"]:
            for key, value in choice["delta"].items():
                if key == "tool_calls":
                    for d in value:
                        call = calls.setdefault(d["index"], {"function": {"name": "", "arguments": ""}})
                        for k, v in d.items():
                            if k == "function":
                                call["function"]["name"] += v.get("name") or ""
                                call["function"]["arguments"] += v.get("arguments") or ""
                            elif k != "index":
                                call[k] = v
                elif key == "reasoning_details":
                    msg.setdefault(key, []).extend(value)
                elif isinstance(value, str) and key not in ("role",):
                    msg[key] = msg.get(key, "") + value
    if calls:
        msg["tool_calls"] = [calls[k] for k in sorted(calls)]
    return msg


def _gemini(stream: bool | str, late: bool = False) -> Step:
    """Two calls, each with its signature: on the header delta, or (`late`) on a later fragment of the call."""
    calls = [_call("function-call-1", "Paris", SIG), _call("function-call-2", "Lyon", SIG2)]
    if not stream:
        return Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls"))
    events: list[Any] = [chunk("m", {"role": "assistant", "content": ""})]
    for k, c in enumerate(calls):
        if late:
            head = {"index": k, "id": c["id"], "type": "function", "function": {"name": "get_weather",
                                                                                "arguments": ""}}
            events += [chunk("m", {"tool_calls": [head]}),
                       chunk("m", {"tool_calls": [{"index": k, "function": {"arguments": c["function"]["arguments"]},
                                                   "extra_content": c["extra_content"]}]})]
        else:
            events.append(chunk("m", {"tool_calls": [{**c, "index": k}]}))
    events.append(chunk("m", {}, "tool_calls"))
    return Step(sse=events, interval=0.02 if stream == "events" else 0.0)


@pytest.mark.parametrize(("stream", "late"), [(False, False), ("whole", False), ("events", False), ("whole", True),
                                              ("events", True)])
async def test_a_calls_thought_signature_survives_repair(fakes, router, stream, late):
    up = await fakes()
    up.push(_gemini(stream, late))
    r = await router(CFG.format(url=up.url))
    msg = await _post(r.url, bool(stream))
    got = [(c["id"], c.get("extra_content")) for c in msg["tool_calls"]]
    assert got == [("function-call-1", SIG), ("function-call-2", SIG2)]


def _signed_after(stream: str, layout: str) -> Step:
    """Two calls whose header delta carries the whole call without its signature, which comes alone on a later
    delta (Gemini 3 through some gateways): each right after its call (`one`), both after both headers
    (`parallel`), each after its call with no `index` on any delta (`unindexed`) or with index 0 on all of them
    (`reused`, as Gemini's OpenAI-compatible endpoint numbers parallel calls)."""
    calls = [_call("function-call-1", "Paris"), _call("function-call-2", "Lyon")]
    at = [0, 0] if layout == "reused" else [0, 1]
    heads = [{**c, "index": at[k]} if layout != "unindexed" else c for k, c in enumerate(calls)]
    sigs = [{"index": at[k], "extra_content": s} if layout != "unindexed" else {"extra_content": s}
            for k, s in enumerate((SIG, SIG2))]
    order = [heads[0], heads[1], sigs[0], sigs[1]] if layout == "parallel" else [heads[0], sigs[0], heads[1], sigs[1]]
    events: list[Any] = [chunk("m", {"role": "assistant", "content": None})]
    events += [chunk("m", {"tool_calls": [d]}) for d in order]
    events.append(chunk("m", {}, "tool_calls"))
    return Step(sse=events, interval=0.0 if stream == "whole" else 0.02)


@pytest.mark.parametrize("stream", ["whole", "events", "held"])
@pytest.mark.parametrize("layout", ["one", "parallel", "unindexed", "reused"])
async def test_a_signature_on_a_later_delta_reaches_the_call_its_header_sent(fakes, router, stream, layout):
    # read piece by piece, the header went out before the signature came, and the signature (keyed by the
    # upstream's index, whose call's id was never noted) went nowhere: Gemini refused the next turn. `held`:
    # read piece by piece with calls held to the end (on_failure: error)
    up = await fakes()
    up.push(_signed_after(stream, layout))
    cfg = CFG.format(url=up.url)
    r = await router(cfg.replace("provider: lab}", "provider: lab, repair: {on_failure: error}}") if stream == "held"
                     else cfg)
    msg = await _post(r.url, True)
    got = [(c["id"], c.get("extra_content")) for c in msg["tool_calls"]]
    assert got == [("function-call-1", SIG), ("function-call-2", SIG2)]


def _openrouter(stream: bool) -> Step:
    call = _call("tool_x", "Paris")
    if not stream:
        doc = completion(None, "m", tool_calls=[call], finish_reason="tool_calls")
        doc["choices"][0]["message"].update(reasoning="Need weather.", reasoning_details=DET)
        return Step(json=doc)
    return Step(sse=[b": OPENROUTER PROCESSING\n\n",
                     chunk("m", {"role": "assistant", "content": "", "reasoning": "Need weather.",
                                 "reasoning_details": [DET[0]]}),
                     chunk("m", {"role": "assistant", "content": "", "tool_calls": [{**call, "index": 0}],
                                 "reasoning_details": [DET[1]]}),
                     chunk("m", {"role": "assistant", "content": ""}, "tool_calls")])


@pytest.mark.parametrize("stream", [False, "whole", "events"])
async def test_openrouters_reasoning_fields_survive_a_repaired_stream(fakes, router, stream):
    up = await fakes()
    step = _openrouter(bool(stream))
    if stream == "events":
        step.interval = 0.02
    up.push(step)
    r = await router(CFG.format(url=up.url))
    msg = await _post(r.url, bool(stream))
    assert msg["reasoning"] == "Need weather." and "reasoning_content" not in msg
    assert msg["reasoning_details"] == DET
    assert [(c["id"], c["function"]["name"]) for c in msg["tool_calls"]] == [("tool_x", "get_weather")]


async def test_reasoning_under_its_upstream_name_reaches_the_translated_routes(fakes, router):
    """The repaired stream keeps the name `reasoning`; Messages still reads it as the thinking."""
    from tests.dialects.conftest import ANTHROPIC_WEATHER, claude_message

    up = await fakes()
    step = _openrouter(True)
    step.interval = 0.02
    up.push(step)
    r = await router(CFG.format(url=up.url))
    msg = await claude_message(r.url, True, model="m", max_tokens=64, tools=[ANTHROPIC_WEATHER],
                               messages=[{"role": "user", "content": "Weather?"}])
    assert [(b.type, getattr(b, "thinking", None)) for b in msg.content] == [("thinking", "Need weather."),
                                                                            ("tool_use", None)]
