"""GET /metrics: the counters traffic leaves behind, promtool's lint, optional auth, and engine /stats."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import openai
import pytest

from tests.fakes.openai_upstream import Step, completion
from tests.ops.conftest import sample
from tests.waiting import wait_until

UPSTREAM_KEY = "sk-upstream-secret-9f8e7d6c5b4a"
CLIENT_KEY = "sk-client-secret-0a1b2c3d4e5f"
STATS_ENGINE = Path(__file__).with_name("stats_engine.py")


def config(up_url: str, down_url: str, extra_server: str = "") -> str:
    return f"""
server:
  {extra_server or "max_body_mb: 1"}
providers:
  up: {{type: openai, base_url: "{up_url}", api_key: "{UPSTREAM_KEY}", retries: 1, backoff: {{base: 0.001, max: 0.01}}}}
  down: {{type: openai, base_url: "{down_url}", retries: 0, breaker: {{failures: 1, cooldown: 60}}}}
models:
  - {{name: demo, provider: up, model: up-model}}
  - {{name: broken, provider: down}}
  - {{name: chain, fallbacks: [broken, demo]}}
"""


async def test_traffic_is_counted(fakes, router) -> None:
    up, down = await fakes("up"), await fakes("down")
    down.push(Step(status=500))
    r = await router(config(up.url, down.url))
    client = r.client()
    msgs = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="demo", messages=msgs)
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
             "prompt_tokens_details": {"cached_tokens": 4}}
    up.push(Step(status=503), Step(json=completion("ok", "up-model", usage=usage)))
    await client.chat.completions.create(model="demo", messages=msgs)  # one retry, then 200
    stream = await client.chat.completions.create(model="demo", messages=msgs, stream=True)
    async for _ in stream:
        pass
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=msgs)
    await client.chat.completions.create(model="chain", messages=msgs)  # broken fails: falls back to demo
    await client.embeddings.create(model="demo", input="x")

    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_requests_total", model="demo", provider="up", endpoint="chat", status="200") == 4
    assert sample(text, "agentgate_requests_total", model="-", provider="-", endpoint="chat", status="404") == 1
    assert sample(text, "agentgate_requests_total", model="demo", endpoint="embeddings", status="200") == 1
    assert sample(text, "agentgate_request_duration_seconds_count", model="demo", endpoint="chat") == 4
    assert sample(text, "agentgate_time_to_first_token_seconds_count", model="demo") == 1
    assert sample(text, "agentgate_upstream_errors_total", provider="up", kind="status_5xx") == 1
    assert sample(text, "agentgate_upstream_errors_total", provider="down", kind="status_5xx") == 1
    assert sample(text, "agentgate_retries_total", provider="up") == 1
    assert sample(text, "agentgate_fallbacks_total", model="broken", to="demo") == 1
    assert sample(text, "agentgate_breaker_state", provider="down") == 2
    assert sample(text, "agentgate_breaker_state", provider="up") == 0
    assert sample(text, "agentgate_in_flight_requests", provider="up") == 0
    assert sample(text, "agentgate_queued_requests", provider="up") == 0
    assert sample(text, "agentgate_tokens_total", model="demo", type="prompt") == 5 + 11 + 5 + 2
    assert sample(text, "agentgate_tokens_total", model="demo", type="completion") == 3 + 7 + 3
    assert sample(text, "agentgate_tokens_total", model="demo", type="cached") == 4
    assert sample(text, "agentgate_config_reloads_total", result="success") == 0
    assert sample(text, "agentgate_build_info") == 1
    assert UPSTREAM_KEY not in text


async def test_metrics_route_and_promtool_lint(fakes, router) -> None:
    up, down = await fakes("up"), await fakes("down")
    r = await router(config(up.url, down.url))
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    status, text, headers = await _get(r.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert "agentgate_requests_total{" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/prepare.sh installs the Debian package prometheus)")
    check = await asyncio.create_subprocess_exec(promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(check.communicate(text.encode()), 30)
    assert check.returncode == 0 and not out.strip(), out.decode()


async def test_metrics_auth(fakes, router) -> None:
    up, down = await fakes("up"), await fakes("down")
    keys = f"api_keys: [{{key: {CLIENT_KEY}, name: alice}}]"
    r = await router(config(up.url, down.url, f"{keys}\n  metrics_auth: true"))
    status, body, _ = await _get(r.url + "/metrics")
    assert status == 401 and '"invalid_api_key"' in body
    status, body, _ = await _get(r.url + "/metrics", "wrong")
    assert status == 401 and CLIENT_KEY not in body
    status, body, _ = await _get(r.url + "/metrics", CLIENT_KEY)
    assert status == 200 and "agentgate_requests" in body
    open_router = await router(config(up.url, down.url, keys))  # keys, but metrics_auth off (the default)
    status, body, _ = await _get(open_router.url + "/metrics")
    assert status == 200 and CLIENT_KEY not in body


@pytest.mark.parametrize("tools", [False, True])
async def test_a_stream_that_fails_after_its_200_counts_as_its_error(fakes, router, tools) -> None:
    """A stream cut by the upstream reaches the client as a 200 ending in an error event; counted as 200, a model
    whose every stream failed showed a 5xx ratio of 0 (the error-rate alert and panel never saw it)."""
    from tests.fakes.openai_upstream import stream_of

    up, down = await fakes("up"), await fakes("down")
    up.push(Step(sse=stream_of("hello there, this is a long answer", "up-model"), reset_after=2))
    r = await router(config(up.url, down.url))
    extra = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]} \
        if tools else {}
    with pytest.raises(openai.APIError):
        async for _ in await r.client().chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "hi"}], stream=True, **extra):
            pass
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_requests_total", model="demo", provider="up", endpoint="chat", status="502") == 1
    assert sample(text, "agentgate_requests_total", model="demo", provider="up", endpoint="chat", status="200") \
        is None


async def test_engine_stats_are_scraped_only_from_ready_engines(fakes, router) -> None:
    r = await router(f"""
models:
  - name: local
    command: ["{sys.executable}", "{STATS_ENGINE}"]
    start_timeout: 30
""")
    text = (await _get(r.url + "/metrics"))[1]
    assert sample(text, "agentgate_engine_state", engine="local", state="stopped") == 1
    # from the start, at 0: increase() over a window sees the first crash (the crash-loop alert needed 4)
    assert sample(text, "agentgate_engine_crashes_total", engine="local") == 0
    assert sample(text, "agentgate_engine_batch_size", engine="local") is None
    assert r.state.supervisor.states()["local"].state == "stopped"  # scraping never starts an engine

    reply = await r.client().chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "local"
    text = (await _get(r.url + "/metrics"))[1]
    assert sample(text, "agentgate_engine_state", engine="local", state="ready") == 1
    assert sample(text, "agentgate_engine_state", engine="local", state="stopped") == 0
    assert sample(text, "agentgate_engine_load_seconds_count", engine="local") == 1
    assert sample(text, "agentgate_engine_batch_size", engine="local") == 3
    assert sample(text, "agentgate_engine_queue_depth", engine="local") == 2
    assert sample(text, "agentgate_engine_max_batch_size", engine="local") == 8
    assert sample(text, "agentgate_engine_prefix_cache_hit_tokens_total", engine="local") == 24
    assert sample(text, "agentgate_engine_prefix_cache_lookups_total", engine="local", result="hit") == 5
    assert sample(text, "agentgate_engine_prefix_cache_lookups_total", engine="local", result="miss") == 2
    assert sample(text, "agentgate_engine_generated_tokens_total", engine="local") == 17
    assert sample(text, "agentgate_engine_blas_info", engine="local", blas="openblas") == 1
    assert sample(text, "agentgate_tokens_total", model="local", type="cached") == 2

    await r.state.supervisor.stop("local")
    await wait_until(lambda: r.state.supervisor.states()["local"].state == "stopped")
    text = (await _get(r.url + "/metrics"))[1]
    assert sample(text, "agentgate_engine_batch_size", engine="local") is None
    assert sample(text, "agentgate_engine_blas_info", engine="local", blas="openblas") is None
    assert sample(text, "agentgate_engine_state", engine="local", state="stopped") == 1


async def test_repair_outcomes_are_counted(fakes, router) -> None:
    try:
        from repair import repair_message  # noqa: F401
    except ImportError:
        pytest.skip("the repair package is not importable")
    up, down = await fakes("up"), await fakes("down")
    r = await router(config(up.url, down.url))
    up.push(Step(json=completion(REPAIRABLE, "up-model")))
    reply = await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "weather?"}],
                                                     tools=[WEATHER_TOOL])
    assert reply.choices[0].message.tool_calls and reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    up.push(Step(json=completion('<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>', "up-model")))
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "go"}],
                                             tools=[WEATHER_TOOL])
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_tool_calls_total", model="demo", outcome="repaired") == 1
    assert (sample(text, "agentgate_tool_call_repairs_total", model="demo") or 0) >= 1
    assert sample(text, "agentgate_tool_calls_total", model="demo", outcome="failed") == 1
    assert sample(text, "agentgate_tool_call_failures_total", model="demo", reason="unknown_name") == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_the_tokens_of_a_reask_are_counted_too(fakes, router, stream) -> None:
    """`on_failure: retry` asks the upstream again: both answers' tokens were spent (and billed), and the record
    kept only the last one's (the access log, agentgate_tokens_total and the key's tokens all lost the first)."""
    from tests.fakes.openai_upstream import chunk, stream_of

    up = await fakes("up")
    r = await router(f"""
server: {{api_keys: [{{key: {CLIENT_KEY}, name: alice}}]}}
providers:
  up: {{type: openai, base_url: "{up.url}", retries: 0}}
models:
  - {{name: demo, provider: up, repair: {{on_failure: retry, retries: 1}}}}
""")
    bad = '<tool_call>{"name": "get_weather", "arguments": {"town": 1}}</tool_call>'
    good = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    first = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
             "prompt_tokens_details": {"cached_tokens": 64}}
    second = {"prompt_tokens": 150, "completion_tokens": 30, "total_tokens": 180}
    if stream:
        up.push(*(Step(sse=[*stream_of([text], "demo"), {**chunk("demo", {}), "choices": [], "usage": usage}])
                  for text, usage in ((bad, first), (good, second))))
    else:
        up.push(Step(json=completion(bad, "demo", usage=first)), Step(json=completion(good, "demo", usage=second)))
    recorded: list[dict[str, object]] = []
    r.state.metrics.request_observers.append(lambda ex, fields: recorded.append(fields))
    reply = await r.client(CLIENT_KEY).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=stream)
    if stream:
        async for _ in reply:
            pass
    assert len(up.requests) == 2
    [fields] = recorded
    assert (fields["prompt_tokens"], fields["completion_tokens"], fields["cached_tokens"]) == (250, 50, 64)
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_tokens_total", model="demo", type="prompt") == 250
    assert sample(text, "agentgate_tokens_total", model="demo", type="completion") == 50
    assert sample(text, "agentgate_tokens_total", model="demo", type="cached") == 64
    assert sample(text, "agentgate_key_tokens_total", key="alice", type="prompt") == 250


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reask_is_counted_as_a_retry(fakes, router, stream) -> None:
    """`on_failure: retry` sends the request upstream a second time: `agentgate_retries_total` counts it with
    `reason="repair"` (an upstream failure's retry is `reason="upstream"`), and so does the record's `retries` (it
    counted neither: a model whose calls kept failing doubled its upstream requests unseen)."""
    from tests.fakes.openai_upstream import stream_of

    up = await fakes("up")
    r = await router(f"""
providers:
  up: {{type: openai, base_url: "{up.url}", retries: 1, backoff: {{base: 0.001, max: 0.01}}}}
models:
  - {{name: demo, provider: up, repair: {{on_failure: retry, retries: 1}}}}
""")
    bad = '<tool_call>{"name": "get_weather", "arguments": {"town": 1}}</tool_call>'
    good = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    if stream:
        up.push(Step(status=503), *(Step(sse=stream_of([text], "demo")) for text in (bad, good)))
    else:
        up.push(Step(status=503), Step(json=completion(bad, "demo")), Step(json=completion(good, "demo")))
    recorded: list[dict[str, object]] = []
    r.state.metrics.request_observers.append(lambda ex, fields: recorded.append(fields))
    reply = await r.client().chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=stream)
    if stream:
        async for _ in reply:
            pass
    assert len(up.requests) == 3
    [fields] = recorded
    assert fields["retries"] == 2
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_retries_total", provider="up", reason="repair") == 1
    assert sample(text, "agentgate_retries_total", provider="up", reason="upstream") == 1


async def test_a_client_gone_mid_stream_counts_as_499(fakes, router) -> None:
    """A client that closes its connection after the stream's 200 went out: the record keeps its 200 with `error:
    client_disconnected`, and it counts as a 499 (nginx's "client closed request"; the console shows `200 → 499`):
    it was counted as a 200, a success, in `agentgate_requests_total` and the console."""
    import json

    from tests.fakes.openai_upstream import stream_of
    from tests.stalled_client import post, stalled

    up = await fakes("up")
    r = await router(f"""
providers:
  up: {{type: openai, base_url: "{up.url}", retries: 0}}
models:
  - {{name: demo, provider: up}}
""")
    resume, paused = asyncio.Event(), asyncio.Event()
    up.push(Step(sse=stream_of(["one ", "two ", "three"], "demo"), pause_after=2, resume=resume, paused=paused))
    ended: list[tuple[str | None, int, int]] = []
    r.state.metrics.request_observers.append(lambda ex, fields: ended.append((ex.error, fields["status"],
                                                                              ex.ended_with)))
    body = json.dumps({"model": "demo", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    sock, head = await stalled(r.url, post("/v1/chat/completions", body))
    assert head.startswith(b"HTTP/1.1 200"), head
    await asyncio.wait_for(paused.wait(), 10)
    sock.close()
    resume.set()
    await wait_until(lambda: len(ended) == 1)
    assert ended == [("client_disconnected", 200, 499)]
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_requests_total", model="demo", status="499") == 1
    assert sample(text, "agentgate_requests_total", model="demo", status="200") is None


REPAIRABLE = "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


async def _get(url: str, key: str | None = None) -> tuple[int, str, dict[str, str]]:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return resp.status, await resp.text(), dict(resp.headers)



async def test_calls_decoded_under_a_constraint_are_counted_apart(fakes, router) -> None:
    """A local engine says `x-agentgate-constrained: tools`; the router counts those calls with constrained="yes"
    and forwards a client's `x-agentgate-constrain: off`."""
    up, down = await fakes("up"), await fakes("down")
    r = await router(config(up.url, down.url))
    good = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    up.push(Step(json=completion(good, "up-model"), headers={"x-agentgate-constrained": "tools"}))
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "weather?"}],
                                             tools=[WEATHER_TOOL], tool_choice="required")
    up.push(Step(json=completion(good, "up-model"), headers={"x-agentgate-constrained": "off"}))
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "weather?"}],
                                             tools=[WEATHER_TOOL], extra_headers={"x-agentgate-constrain": "off"})
    assert up.requests[1].headers.get("x-agentgate-constrain") == "off"
    assert "x-agentgate-constrain" not in up.requests[0].headers
    text = r.state.metrics.render().decode()
    assert sample(text, "agentgate_tool_calls_total", model="demo", constrained="yes") == 1
    assert sample(text, "agentgate_tool_calls_total", model="demo", constrained="no") == 1
