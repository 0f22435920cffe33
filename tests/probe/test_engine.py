"""The probe against a real local engine: a scripted tiny model, directly and through the router."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from router.probe import ProbeSettings, run_probe
from tests.waiting import in_own_thread

tiny = pytest.importorskip("engines.worker.tiny")
worker_mod = pytest.importorskip("engines.worker.server")

# a call without its closing tag: the engine's own parser repairs it and says so in x-agentgate-tool-calls
SCRIPT = '<tool_call>\n{"name": "get_time", "arguments": {"utc_offset_hours": 2}}'


@pytest.fixture
async def scripted(tmp_path: Path):
    model = await in_own_thread(lambda: tiny.build_tiny_model(tmp_path / "scripted", script=SCRIPT), timeout=120)
    # constrain=False: this test is about the worker repairing the call (a grammar would keep it whole)
    worker = await worker_mod.serve(worker_mod.WorkerSettings(model=str(model), name="scripted", constrain=False))
    try:
        await asyncio.wait_for(worker_mod.wait_ready(worker.app), 60)
        yield worker
    finally:
        await worker.close()


async def test_probe_a_scripted_tiny_model_directly_and_through_the_router(scripted, router) -> None:
    direct = await run_probe(ProbeSettings("scripted", scripted.url + "/v1", turns=3, seed=2, max_tokens=64))
    assert direct.error is None
    assert [t.status for t in direct.turns] == ["repaired"] * 3  # the worker repaired the unclosed call
    for t in direct.turns:
        assert t.calls == [{"name": "get_time", "arguments": '{"utc_offset_hours": 2}'}]
        assert t.on_task == (t.expected_tool == "get_time")
        assert t.prompt_tokens and t.completion_tokens

    r = await router("providers:\n  local: {type: openai, base_url: '" + scripted.url + "/v1', retries: 0}\n"
                     "models:\n  - {name: tiny, provider: local, model: scripted}\n")
    routed = await run_probe(ProbeSettings("tiny", r.url + "/v1", turns=3, seed=2, max_tokens=64,
                                           stream=True))
    assert routed.error is None and all(t.valid for t in routed.turns)
    assert all(t.ttft_s is not None for t in routed.turns)
    summary = routed.to_dict()["summary"]
    assert summary["validity_rate"] == 1.0 and summary["prompt_tokens"] > 0
    # the prompt grew with each turn: the tool results went back through the engine's chat template
    prompts = [t.prompt_tokens for t in routed.turns]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]
    assert json.loads(json.dumps(routed.to_dict()))["ok"] is True
