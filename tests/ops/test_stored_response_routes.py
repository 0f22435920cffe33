"""The stored-response routes (`GET`/`DELETE /v1/responses/{id}`, `GET .../input_items`) in the request record:
their access-log lines and `agentgate_requests_total`, errors included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import pytest

from router.api.responses import RESPONSE_STORE
from tests.fakes.openai_upstream import Step, completion
from tests.ops.conftest import LogCapture, sample

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""


async def call(method: str, url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers={"x-request-id": "rid-stored"}) as resp:
        await resp.read()
        return resp.status, resp.headers["x-request-id"]


async def test_stored_response_routes_are_recorded(fakes, router, access_lines: LogCapture,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """These routes wrote no access-log line and counted in no metric: their 404s, and their 503s when the
    store fails, were seen by nobody. Each is now recorded as the other routes are, under an endpoint of its
    own."""
    monkeypatch.setenv("AGENTGATE_STATE_DIR", str(tmp_path / "state"))
    up = await fakes()
    up.push(Step(json=completion("Hi.", "m")))
    r = await router(CFG.format(url=up.url))
    resp = await r.client().responses.create(model="m", input="hi")
    base = f"{r.url}/v1/responses/"
    assert await call("GET", base + resp.id) == (200, "rid-stored")
    assert await call("GET", base + resp.id + "/input_items") == (200, "rid-stored")
    assert await call("GET", base + "resp_nope") == (404, "rid-stored")
    assert await call("GET", base + "resp_nope/input_items") == (404, "rid-stored")
    assert await call("DELETE", base + resp.id) == (200, "rid-stored")
    assert await call("DELETE", base + resp.id) == (404, "rid-stored")
    store = r.app[RESPONSE_STORE].store
    assert store is not None

    def broken(*_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_get", broken)
    assert await call("GET", base + resp.id) == (503, "rid-stored")

    text = r.state.metrics.render().decode()
    counted = {(endpoint, status): sample(text, "agentgate_requests_total", endpoint=endpoint, status=status)
               for endpoint, status in [("responses_get", "200"), ("responses_get", "404"), ("responses_get", "503"),
                                        ("responses_input_items", "200"), ("responses_input_items", "404"),
                                        ("responses_delete", "200"), ("responses_delete", "404")]}
    assert counted == {("responses_get", "200"): 1, ("responses_get", "404"): 1, ("responses_get", "503"): 1,
                       ("responses_input_items", "200"): 1, ("responses_input_items", "404"): 1,
                       ("responses_delete", "200"): 1, ("responses_delete", "404"): 1}
    logged = [(d["endpoint"], d["status"], d.get("error")) for d in access_lines.docs("agentgate.access")
              if d["endpoint"] != "responses"]
    assert logged == [("responses_get", 200, None), ("responses_input_items", 200, None),
                      ("responses_get", 404, "response_not_found"),
                      ("responses_input_items", 404, "response_not_found"),
                      ("responses_delete", 200, None), ("responses_delete", 404, "response_not_found"),
                      ("responses_get", 503, "store_unavailable")]
