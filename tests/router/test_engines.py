"""Local engines behind the router: real MLX workers with tiny models, and an external command server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

from engines.worker.tiny import resolve_model_spec
from tests.waiting import wait_until

FAKE_SERVER = Path(__file__).resolve().parents[1] / "engines" / "fake_server.py"


def _eos_id(spec: str) -> int:
    config = json.loads((Path(resolve_model_spec(spec)) / "generation_config.json").read_text())
    return int(config["eos_token_id"])


async def _worker_running(stats_url: str, timeout: float = 30.0) -> None:
    """Until the worker's own /stats (through the router's /upstream) reports a sequence running."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(stats_url) as resp:
                if resp.status == 200 and (await resp.json()).get("running", 0) >= 1:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the worker never reported the request running")
            await asyncio.sleep(0.01)


def engines_yaml(tmp: Path, models: str, max_loaded: int | None = None) -> str:
    limit = f"\n  max_loaded: {max_loaded}" if max_loaded else ""
    return f"engines:\n  runtime_dir: '{tmp}'{limit}\nmodels:\n{models}"


async def test_worker_sigkill_is_502_then_the_next_request_restarts_it(router, tmp_path):
    r = await router(engines_yaml(tmp_path, "  - {name: rnd, engine: mlx, model: 'tiny:random:3'}\n"))
    client = r.client()
    sup = r.state.supervisor
    first = await client.chat.completions.create(model="rnd", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=4)
    assert first.model == "rnd"
    pid = sup.states()["rnd"].pid
    # The end-of-turn token is banned, so the request cannot finish before the kill lands.
    long = asyncio.create_task(client.chat.completions.create(
        model="rnd", messages=[{"role": "user", "content": "go"}], max_tokens=3500, temperature=1.0,
        logit_bias={str(_eos_id("tiny:random:3")): -100}))
    await wait_until(lambda: sup.states()["rnd"].in_flight == 1, timeout=30)
    # killed once the worker itself generates it: a kill before the request reached the worker is a connection
    # refused, which the router rightly retries on the restarted engine (a 200, not the mid-request crash)
    await _worker_running(r.url + "/upstream/rnd/stats")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIStatusError) as info:
        await long
    assert info.value.status_code == 502
    await wait_until(lambda: sup.crashed("rnd"), timeout=30)
    again = await client.chat.completions.create(model="rnd", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=4)
    assert again.choices[0].message is not None
    st = sup.states()["rnd"]
    assert st.state == "ready" and st.pid != pid and st.restarts >= 1


async def test_a_sampling_number_past_the_float_range_is_400_and_never_opens_the_breaker(router, tmp_path):
    """An integer too big for a float (valid JSON) is the client's mistake: a 400 from the engine, passed on, and
    however many clients send it, the engine's breaker stays closed for everyone else."""
    r = await router(engines_yaml(tmp_path, "  - {name: demo, engine: mlx, model: 'tiny:demo'}\n"))
    client = r.client()
    hi = [{"role": "user", "content": "hi"}]
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "min_p", "repetition_penalty",
                 "temperature"):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="demo", messages=hi, max_tokens=2,
                                                 extra_body={name: 10**400})
        assert info.value.body["type"] == "invalid_request_error" and info.value.body["param"] == name
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="demo", messages=hi, max_tokens=2, logit_bias={"0": 10**400})
    upstream = r.state.runtime.upstreams["engine:demo"]
    assert upstream.breaker.state == "closed"
    ok = await client.chat.completions.create(model="demo", messages=hi, max_tokens=2)
    assert ok.choices[0].message is not None


async def test_ttl_unloads_an_idle_engine(router, tmp_path):
    r = await router(engines_yaml(tmp_path, "  - {name: demo, engine: mlx, model: 'tiny:demo', ttl: 0.5}\n"))
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=2)
    sup = r.state.supervisor
    await wait_until(lambda: sup.states()["demo"].state == "stopped", timeout=30)
    page = await r.client().models.list()
    assert {m.id: m.agentgate["engine"] for m in page.data}["demo"] == "stopped"


async def test_lru_swap_with_max_loaded_one(router, tmp_path):
    r = await router(engines_yaml(tmp_path, "  - {name: a, engine: mlx, model: 'tiny:demo'}\n"
                                            "  - {name: b, engine: mlx, model: 'tiny:random:1'}\n", max_loaded=1))
    client, sup = r.client(), r.state.supervisor
    await client.chat.completions.create(model="a", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert sup.states()["a"].state == "ready"
    await client.chat.completions.create(model="b", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    states = sup.states()
    assert states["b"].state == "ready" and states["a"].state == "stopped"


async def test_external_command_server_started_and_stopped(router, tmp_path):
    cmd = f"{sys.executable} {FAKE_SERVER} --port ${{PORT}} --model ext"
    r = await router(engines_yaml(tmp_path, f"  - {{name: ext, command: '{cmd}', health: /health}}\n"))
    resp = await r.client().chat.completions.create(model="ext", messages=[{"role": "user", "content": "ping"}])
    assert "ping" in (resp.choices[0].message.content or "") and resp.model == "ext"
    sup = r.state.supervisor
    pid = sup.states()["ext"].pid
    await sup.stop("ext")
    assert sup.states()["ext"].state == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


async def test_scripted_engine_malformed_call_repaired_unless_repair_off(router, tmp_path):
    script = "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>"
    r = await router(f"""engines:
  runtime_dir: '{tmp_path}'
models:
  - name: scripted
    engine: mlx
    model: "tiny:script={script}"
    engine_args: ["--no-constrain"]  # repair is under test: a grammar would keep the call from breaking
""")
    client = r.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="scripted", messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, max_tokens=64)
    resp = raw.parse()
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
    assert resp.choices[0].finish_reason == "tool_calls"
    assert "single_quotes" in raw.headers["x-agentgate-repairs"]
    off = await client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "weather?"}], tools=WEATHER, max_tokens=64,
        extra_headers={"x-agentgate-repair": "off"})
    assert not off.choices[0].message.tool_calls  # the raw, unrepaired output: no valid call
    assert "get_weather" in (off.choices[0].message.content or "")


async def test_a_model_path_that_does_not_exist_is_unavailable_not_a_crash(router, tmp_path):
    """Local paths that do not exist (absolute, `~`, several folders deep) are reported unavailable, like a bare
    name: they went to the hub's cache lookup, which raises on anything not a repo id, and serving stopped with
    its traceback (after a reload, /v1/models answered 500)."""
    paths = [str(tmp_path / "models" / "qwen"), "~/no-such-models/qwen", "org/repo/extra", "./models/x"]
    r = await router(engines_yaml(tmp_path, "".join(f"  - {{name: m{i}, engine: mlx, model: '{p}'}}\n"
                                                     for i, p in enumerate(paths))))
    rows = {m.id: m for m in (await r.client().models.list()).data}
    for i in range(len(paths)):
        assert rows[f"m{i}"].agentgate["available"] is False and rows[f"m{i}"].agentgate["reason"]
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="m0", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503


async def test_a_model_that_is_not_here_does_not_evict_the_loaded_engine(router, tmp_path):
    """With max_loaded 1, requests for an entry /v1/models marks unavailable (a path that does not exist) are
    refused before the supervisor makes room: the loaded engine keeps serving."""
    cmd = f"{sys.executable} {FAKE_SERVER} --port ${{PORT}} --model ext"
    r = await router(engines_yaml(tmp_path, f"  - {{name: ext, command: '{cmd}', health: /health}}\n"
                                            f"  - {{name: gone, engine: mlx, model: '{tmp_path / 'no-model'}'}}\n",
                                  max_loaded=1))
    client, sup = r.client(), r.state.supervisor
    await client.chat.completions.create(model="ext", messages=[{"role": "user", "content": "ping"}])
    pid = sup.states()["ext"].pid
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503 and "does not exist" in str(info.value.message)
    assert sup.states()["ext"].state == "ready" and sup.states()["ext"].pid == pid


async def test_an_entrys_own_env_decides_whether_its_hub_model_is_here(router, tmp_path):
    """The availability check (/v1/models, and the one before a start makes room) judged in the router's
    environment: an entry whose own `env` names the hub cache that holds its model (HF_HOME), or lets it download
    (HF_HUB_OFFLINE "0"), was refused although the engine, launched with that env, would start."""
    from router.engines_bridge import start_refusal

    snapshot = tmp_path / "hf" / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hf" / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hf" / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("HF_HOME") != str(tmp_path / "hf")
    r = await router(engines_yaml(tmp_path / "run", (
        f"  - {{name: own-cache, engine: mlx, model: org/tiny, env: {{HF_HOME: '{tmp_path / 'hf'}'}}}}\n"
        "  - {name: online, engine: mlx, model: org/absent, env: {HF_HUB_OFFLINE: '0'}}\n"
        "  - {name: offline, engine: mlx, model: org/absent}\n")))
    rows = {m.id: m.agentgate for m in (await r.client().models.list()).data}
    assert rows["own-cache"]["available"] is True and "reason" not in rows["own-cache"], rows["own-cache"]
    assert rows["online"]["available"] is True and "downloads" in rows["online"]["reason"], rows["online"]
    assert rows["offline"]["available"] is False and "HF_HUB_OFFLINE" in rows["offline"]["reason"]
    specs = r.state.supervisor.specs()
    assert start_refusal(specs["own-cache"]) is None and start_refusal(specs["online"]) is None
    assert start_refusal(specs["offline"])


async def test_a_folder_the_worker_would_refuse_is_unavailable_before_a_start(router, tmp_path):
    """A model folder without config.json or weights (or with a config.json that does not parse) was listed as
    available: a request started the worker, which then refused the folder. The router now judges it as the worker
    does before listening: /v1/models says why, and a request is refused without a start."""
    empty, broken, no_weights = tmp_path / "empty", tmp_path / "broken", tmp_path / "no-weights"
    for folder in (empty, broken, no_weights):
        folder.mkdir()
    (broken / "config.json").write_text("{not json")
    (no_weights / "config.json").write_text("{}")
    entries = "".join(f"  - {{name: {p.name}, engine: mlx, model: '{p}'}}\n" for p in (empty, broken, no_weights))
    r = await router(engines_yaml(tmp_path, entries))
    said = {m["id"]: m for m in (await r.client().models.list()).model_dump()["data"]}
    for folder, why in ((empty, "holds no config.json"), (broken, "config.json is not valid JSON"),
                        (no_weights, "holds no model*.safetensors weights")):
        with pytest.raises(openai.APIStatusError) as info:
            await r.client().chat.completions.create(model=folder.name, messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503 and why in str(info.value.message), info.value.message
        assert why in json.dumps(said[folder.name]), said[folder.name]
    assert r.state.supervisor.states().get("empty") is None or r.state.supervisor.states()["empty"].pid is None


async def test_a_tiny_model_that_cannot_be_built_here_is_unavailable_before_a_start(router, tmp_path):
    """A `tiny:` model not built yet, whose cache folder cannot be created (here a file stands where it would go),
    was started, and its worker refused it: /v1/models now says why, in the entry's own environment, and a request
    is refused without a start."""
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    entry = f"  - {{name: tiny, engine: mlx, model: 'tiny:random:7', env: {{AGENTGATE_CACHE: '{blocker}/sub'}}}}\n"
    r = await router(engines_yaml(tmp_path, entry))
    rows = {m.id: m.agentgate for m in (await r.client().models.list()).data}  # type: ignore[attr-defined]
    assert rows["tiny"]["available"] is False and "AGENTGATE_CACHE" in rows["tiny"]["reason"], rows["tiny"]
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503 and "cannot build tiny:random:7" in str(info.value.message)
    assert r.state.supervisor.states().get("tiny") is None or r.state.supervisor.states()["tiny"].pid is None
