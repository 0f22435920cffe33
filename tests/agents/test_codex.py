"""The real Codex CLI (pinned) against agentgate, configured exactly as the README says, in a private network
namespace: a native call, a malformed text call agentgate repairs, parallel calls, an image tool result, the final
answer, then `codex exec resume` on the same session; then a session that calls a function inside Codex's
`multi_agent_v1` namespace and apply_patch as a free-form tool."""

from __future__ import annotations

import json
from pathlib import Path

from tests.agents.conftest import BASE_ENV, ROUTER, describe, png, readme_block
from tests.agents.models import FINAL, IMAGE_SEEN, PATCH_MARK, PATCHED, RESUME_MARK, RESUMED

CONFIG = readme_block("Codex (", "toml")  # the README's Codex section, opt-outs included
# A model catalog entry for "coder" that makes Codex declare apply_patch as a free-form (`custom`) tool, as it does
# for OpenAI's own models: the third run checks that a custom tool call round-trips.
CATALOG = {"models": [{
    "slug": "coder", "display_name": "coder", "description": "agentgate", "default_reasoning_level": "medium",
    "supported_reasoning_levels": [{"effort": "medium", "description": "Balanced"}], "shell_type": "unified_exec",
    "visibility": "list", "supported_in_api": True, "priority": 1, "upgrade": None,
    "base_instructions": "You are a coding agent.", "supports_reasoning_summaries": False,
    "default_reasoning_summary": "none", "support_verbosity": False, "default_verbosity": None,
    "apply_patch_tool_type": "freeform", "truncation_policy": {"mode": "tokens", "limit": 10000},
    "supports_parallel_tool_calls": True, "context_window": 128000, "effective_context_window_percent": 95,
    "experimental_supported_tools": [], "input_modalities": ["text", "image"], "supports_search_tool": False}]}


def test_codex_session_and_resume(agent_cli, run_agents, tmp_path: Path) -> None:
    codex = agent_cli("codex")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    assert f"http://{ROUTER}/v1" in CONFIG
    (home / ".codex" / "config.toml").write_text(CONFIG)
    image = png(work / "pixel.png")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    env = {**BASE_ENV, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "AGENTGATE_API_KEY": "unused"}
    flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--strict-config"]
    result = run_agents({"model": "codex", "context": {"image": str(image)}, "steps": [
        {"argv": [*codex, "exec", *flags, "Write the files, then look at pixel.png."], "cwd": str(work),
         "env": env, "timeout": 180},
        {"argv": [*codex, "exec", "resume", "--last", *flags, f"{RESUME_MARK}: is the session intact?"],
         "cwd": str(work), "env": env, "timeout": 120},
        {"argv": [*codex, "exec", *flags, "-c", f'model_catalog_json="{catalog}"', f"{PATCH_MARK}: add a file."],
         "cwd": str(work), "env": env, "timeout": 120},
    ]})
    first, resumed, patched = result["runs"]
    assert first["rc"] == 0 and f"{FINAL} {IMAGE_SEEN}" in first["stdout"], describe(result)
    for name, text in (("native.txt", "native"), ("repaired.txt", "repaired"), ("a.txt", "a"), ("b.txt", "b")):
        assert (work / name).read_text() == text, describe(result)
    assert resumed["rc"] == 0 and f"{RESUMED}, {IMAGE_SEEN}" in resumed["stdout"], describe(result)
    assert patched["rc"] == 0 and PATCHED in patched["stdout"], describe(result)
    assert (work / "patched.txt").read_text() == "patched\n", describe(result)
    # the namespaced call reached Codex's close_agent handler (it parsed the agent id), so namespace + name came back
    closing = next(b for b in result["requests"] if sum(m["role"] == "tool" for m in b["messages"]) == 1
                   and any(PATCH_MARK in str(m["content"]) for m in b["messages"]))
    assert "invalid agent id no-such-agent" in closing["messages"][-1]["content"], closing["messages"][-1]
    responses = [a for a in result["access"] if a.get("endpoint") == "responses"]
    assert responses and all(a["status"] == 200 for a in responses), responses
    assert any("format:hermes" in (a.get("repairs") or []) for a in responses)  # the text call was repaired
    assert any("web_search" in (a.get("dropped_tools") or []) for a in responses)
    parallel = [b for b in result["requests"] if sum(m["role"] == "tool" for m in b["messages"]) == 4]
    assert parallel, "the two parallel calls were never answered together"
    # the CLI resent its conversation and tools each turn: the router found them again by their bytes (not
    # parsed again), and every check above ran on those turns
    assert result["known"]["history"] >= 1 and result["known"]["tools"] >= 1, result["known"]
