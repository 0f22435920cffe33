"""A model the router says is unavailable (503 `model_unavailable`: every provider of its route disabled, e.g. the
shipped config's `coder` while `LAB_BASE_URL` is unset) stops the probe at its first turn with the router's reason,
as a 404 for an unknown model does: no later turn can do better, and the probe sent each of its 40 turns into the
same 503 before."""

from __future__ import annotations

import json

from tests.probe.test_probe import cli

CONFIG = """
providers:
  lab: {type: openai, base_url: '${PROBE_UNSET_BASE_URL}', retries: 0}
models:
  - {name: coder, provider: lab}
"""


async def test_an_unavailable_model_stops_the_probe_at_its_first_turn(router, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PROBE_UNSET_BASE_URL", raising=False)
    r = await router(CONFIG)
    assert await cli("probe", "coder", "--base-url", r.url + "/v1", "--turns", "10", "--json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["turns"]) == 1, doc
    assert doc["error"].startswith("HTTP 503") and "PROBE_UNSET_BASE_URL" in doc["error"], doc


async def test_bench_stops_each_run_of_an_unavailable_model_at_its_first_turn(router, capsys, monkeypatch,
                                                                               tmp_path) -> None:
    monkeypatch.delenv("PROBE_UNSET_BASE_URL", raising=False)
    r = await router(CONFIG)
    assert await cli("bench", "tools", "--models", "coder", "--runs", "2", "--turns", "10", "--base-url",
                     r.url + "/v1", "--out", str(tmp_path)) == 2
    out = capsys.readouterr().out
    assert "HTTP 503" in out, out
