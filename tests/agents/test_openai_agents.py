"""openai-agents (the Python Agents SDK) on agentgate, with the Responses model and the chat model: function tools,
a tool that returns an image, a hosted tool (dropped, not refused), parallel calls, a repaired text call, a final
answer and a resumed run. Runs in a private network namespace like the CLIs (and with tracing off)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.agents.conftest import BASE_ENV, HERE, ROUTER, describe, png
from tests.agents.models import FINAL, IMAGE_SEEN, RESUMED

pytest.importorskip("agents", reason="openai-agents is in the dev extras")


@pytest.mark.parametrize("mode", ["responses", "chat"])
def test_openai_agents(run_agents, tmp_path: Path, mode: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    png(work / "pixel.png")
    env = {**BASE_ENV, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(HERE.parents[1]),
           "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    result = run_agents({"model": "agents", "context": {}, "steps": [
        {"argv": [sys.executable, str(HERE / "oa_client.py"), mode, str(work), f"http://{ROUTER}/v1"],
         "cwd": str(work), "env": env, "timeout": 120}]})
    [run] = result["runs"]
    assert run["rc"] == 0 and FINAL in run["stdout"] and RESUMED in run["stdout"], describe(result)
    if mode == "responses":  # the chat model's converter itself replaces image tool outputs with a placeholder
        assert f"{FINAL} {IMAGE_SEEN}" in run["stdout"] and f"{RESUMED}, {IMAGE_SEEN}" in run["stdout"]
    for name, text in (("native.txt", "native"), ("repaired.txt", "repaired"), ("a.txt", "a"), ("b.txt", "b")):
        assert (work / name).read_text() == text, describe(result)
    records = [a for a in result["access"] if a.get("endpoint") in ("responses", "chat")]
    assert records and all(a["status"] == 200 for a in records), records
    if mode == "responses":
        assert any("web_search" in (a.get("dropped_tools") or []) for a in records)
