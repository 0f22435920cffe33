"""A real Prometheus server scrapes a running router; PromQL through its HTTP API sees the traffic."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.openai_upstream import Step, completion

CLIENT_KEY = "sk-client-secret-prom-4455"
UPSTREAM_KEY = "sk-upstream-secret-prom-6677"
HI = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    async def query(self, promql: str) -> list[dict]:
        async with aiohttp.ClientSession() as s, s.get(self.url + "/api/v1/query", params={"query": promql}) as r:
            doc = await r.json()
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    async def value(self, promql: str, expected: float, timeout: float = 30.0) -> float:
        """Poll the query until it returns `expected` (scrapes happen every 200 ms), bounded by `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: list[dict] = []
        while loop.time() < deadline:
            self.check_alive()
            last = await self.query(promql)
            if last and float(last[0]["value"][1]) == expected:
                return expected
            await asyncio.sleep(0.2)
        raise AssertionError(f"{promql} never became {expected}: {last}\n{self.log.read_text()[-3000:]}")

    def check_alive(self) -> None:
        if self.proc.returncode is not None:
            raise AssertionError("prometheus exited:\n" + self.log.read_text()[-3000:])


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[Callable[[str, str], Awaitable[Prometheus]]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (tests/prepare.sh installs the Debian package prometheus)")
    procs: list[asyncio.subprocess.Process] = []

    async def start(target: str, key: str) -> Prometheus:
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(f"""
global: {{scrape_interval: 200ms, scrape_timeout: 200ms, evaluation_interval: 1s}}
scrape_configs:
  - job_name: agentgate
    authorization: {{type: Bearer, credentials: {key}}}
    static_configs: [{{targets: ["{target}"]}}]
""")
        port = free_port()
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}", stdout=out, stderr=asyncio.subprocess.STDOUT)
        procs.append(proc)
        prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            prom.check_alive()
            try:
                async with aiohttp.ClientSession() as s, s.get(prom.url + "/-/ready") as r:
                    if r.status == 200:
                        return prom
            except aiohttp.ClientConnectionError:
                pass
            if loop.time() > deadline:
                raise AssertionError("prometheus never became ready:\n" + log.read_text()[-3000:])
            await asyncio.sleep(0.1)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def test_prometheus_scrapes_the_router(fakes, router, prometheus) -> None:
    up = await fakes("up")
    r = await router(f"""
server:
  api_keys: [{{key: {CLIENT_KEY}, name: scraper}}]
  metrics_auth: true
providers:
  up: {{type: openai, base_url: "{up.url}", api_key: "{UPSTREAM_KEY}", retries: 1, backoff: {{base: 0.001}}}}
models:
  - {{name: demo, provider: up}}
""")
    prom = await prometheus(r.url.removeprefix("http://"), CLIENT_KEY)
    client = r.client(CLIENT_KEY)
    for _ in range(3):
        await client.chat.completions.create(model="demo", messages=HI)
    up.push(Step(status=500))
    stream = await client.chat.completions.create(model="demo", messages=HI, stream=True)
    async for _ in stream:
        pass

    await prom.value('up{job="agentgate"}', 1)
    await prom.value('sum(agentgate_requests_total{model="demo",provider="up",endpoint="chat",status="200"})', 4)
    await prom.value('sum(agentgate_retries_total{provider="up"})', 1)
    await prom.value('sum(agentgate_upstream_errors_total{provider="up",kind="status_5xx"})', 1)
    await prom.value('sum(agentgate_time_to_first_token_seconds_count{model="demo"})', 1)
    await prom.value('sum(agentgate_tokens_total{model="demo",type="completion"})', 9)
    await prom.value('agentgate_breaker_state{provider="up"}', 0)

    try:
        from repair import repair_message  # noqa: F401
    except ImportError:
        return  # the repaired-call part needs the repair package
    up.push(Step(json=completion("<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>",
                                 "demo")))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    reply = await client.chat.completions.create(model="demo", messages=HI, tools=[tool])
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Paris"}'
    await prom.value('sum(agentgate_tool_calls_total{model="demo",outcome="repaired"})', 1)
    results = await prom.query('agentgate_tool_call_repairs_total{model="demo"}')
    assert results and all(float(s["value"][1]) >= 1 for s in results)
