"""/health (liveness, no key) and /ready (providers' breakers and queues, engine states; a key when configured)."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp

from tests.fakes.openai_upstream import Step

CLIENT_KEY = "sk-client-secret-ready-1234"
UPSTREAM_KEY = "sk-upstream-secret-ready-5678"
STATS_ENGINE = Path(__file__).with_name("stats_engine.py")


async def _get(url: str, key: str | None = None) -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        text = await resp.text()
        return resp.status, await resp.json(), text


async def test_health_and_ready(fakes, router) -> None:
    up, down = await fakes("up"), await fakes("down")
    down.push(Step(status=500))
    r = await router(f"""
server:
  api_keys: [{{key: {CLIENT_KEY}, name: ops}}]
providers:
  up: {{type: openai, base_url: "{up.url}", api_key: "{UPSTREAM_KEY}"}}
  down: {{type: openai, base_url: "{down.url}", retries: 0, breaker: {{failures: 1, cooldown: 60}}}}
  dormant: {{type: openai, base_url: "http://127.0.0.1:9/v1", api_key: "${{UNSET_KEY_FOR_TEST}}"}}
models:
  - {{name: demo, provider: up}}
  - {{name: broken, provider: down}}
  - {{name: dark, provider: dormant}}
  - name: local
    command: ["{sys.executable}", "{STATS_ENGINE}"]
""")
    status, body, _ = await _get(r.url + "/health")
    assert (status, body) == (200, {"status": "ok"})

    status, body, text = await _get(r.url + "/ready")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"

    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            "model": "broken", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as resp:
        assert resp.status == 502

    status, body, text = await _get(r.url + "/ready", CLIENT_KEY)
    assert status == 200 and body["status"] == "ready"
    assert body["providers"]["up"] == {"type": "openai", "breaker": "closed", "in_flight": 0, "queued": 0}
    assert body["providers"]["down"]["breaker"] == "open"
    assert "UNSET_KEY_FOR_TEST" in body["providers"]["dormant"]["disabled"]
    assert body["engines"]["local"]["state"] == "stopped" and body["engines"]["local"]["restarts"] == 0
    assert UPSTREAM_KEY not in text and CLIENT_KEY not in text
    assert r.state.supervisor.states()["local"].state == "stopped"  # readiness never starts an engine
