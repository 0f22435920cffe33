"""The real agents against a stream whose tool call the token limit cut inside its arguments (finish_reason
"length" after the call's header and pieces went out). agentgate completed such a call (the closing `"}`), and
Claude Code, Codex and openai-agents ran the cut command or wrote the cut file. Now the arguments stay as cut
on every route (Claude Code refuses input that does not parse, Codex and openai-agents arguments that do not
parse, and openai-agents ends a Responses run that stops incomplete): none of them runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.agents.conftest import BASE_ENV, HERE, ROUTER, describe, readme_block, readme_env

RAN = "cut-ran.txt"


def _check(result: dict, work: Path) -> None:
    assert result["runs"] and not (work / RAN).exists(), describe(result)
    assert not (work / "the-rest.txt").exists(), describe(result)
    assert any(a.get("endpoint") in ("chat", "messages", "responses") for a in result["access"])


def test_claude_code_does_not_run_a_cut_call(agent_cli, run_agents, tmp_path: Path) -> None:
    claude = agent_cli("claude")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**BASE_ENV, **readme_env("Claude Code:"), "HOME": str(home)}
    result = run_agents({"model": "cut", "steps": [
        {"argv": [*claude, "-p", "--permission-mode", "acceptEdits", "--allowedTools=Bash", "Make the files."],
         "cwd": str(work), "env": env, "timeout": 120}]})
    _check(result, work)


def test_codex_does_not_run_a_cut_call(agent_cli, run_agents, tmp_path: Path) -> None:
    codex = agent_cli("codex")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    (home / ".codex" / "config.toml").write_text(readme_block("Codex (", "toml"))
    env = {**BASE_ENV, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "AGENTGATE_API_KEY": "unused"}
    flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--strict-config"]
    result = run_agents({"model": "cut", "steps": [
        {"argv": [*codex, "exec", *flags, "Make the files."], "cwd": str(work), "env": env, "timeout": 120}]})
    _check(result, work)


@pytest.mark.parametrize("mode", ["responses", "chat"])
def test_openai_agents_does_not_run_a_cut_call(run_agents, tmp_path: Path, mode: str) -> None:
    pytest.importorskip("agents", reason="openai-agents is in the dev extras")
    work = tmp_path / "work"
    work.mkdir()
    env = {**BASE_ENV, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(HERE.parents[1]),
           "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    result = run_agents({"model": "cut", "steps": [
        {"argv": [sys.executable, str(HERE / "oa_cut_client.py"), mode, str(work), f"http://{ROUTER}/v1"],
         "cwd": str(work), "env": env, "timeout": 60}]})
    _check(result, work)
