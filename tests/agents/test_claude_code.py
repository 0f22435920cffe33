"""The real Claude Code CLI (pinned) against agentgate, configured exactly as the README says, in a private network
namespace: a native call, a malformed text call agentgate repairs, parallel calls, an image tool result (Read on a
PNG), the final answer, then `claude -p --continue` on the same session."""

from __future__ import annotations

from pathlib import Path

from tests.agents.conftest import BASE_ENV, ROUTER, describe, png, readme_env
from tests.agents.models import FINAL, IMAGE_SEEN, RESUME_MARK, RESUMED

README_ENV = readme_env("Claude Code:")  # the README's Claude Code section, opt-outs included
OPT_OUTS = {"DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING", "DISABLE_AUTOUPDATER",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"}


def test_claude_code_session_and_continue(agent_cli, run_agents, tmp_path: Path) -> None:
    claude = agent_cli("claude")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    image = png(work / "pixel.png")
    assert README_ENV["ANTHROPIC_BASE_URL"] == f"http://{ROUTER}" and set(README_ENV) >= OPT_OUTS
    env = {**BASE_ENV, **README_ENV, "HOME": str(home)}
    flags = ["--permission-mode", "acceptEdits", "--allowedTools=Bash,Read,Write"]
    result = run_agents({"model": "claude", "context": {"image": str(image), "work": str(work)}, "steps": [
        {"argv": [*claude, "-p", *flags, "Write the files, then look at pixel.png."], "cwd": str(work),
         "env": env, "timeout": 180},
        {"argv": [*claude, "-p", "--continue", *flags, f"{RESUME_MARK}: is the session intact?"],
         "cwd": str(work), "env": env, "timeout": 120},
    ]})
    first, resumed = result["runs"]
    assert first["rc"] == 0 and f"{FINAL} {IMAGE_SEEN}" in first["stdout"], describe(result)
    for name, text in (("native.txt", "native"), ("repaired.txt", "repaired"), ("a.txt", "a"), ("b.txt", "b")):
        assert (work / name).read_text() == text, describe(result)
    assert resumed["rc"] == 0 and f"{RESUMED}, {IMAGE_SEEN}" in resumed["stdout"], describe(result)
    messages = [a for a in result["access"] if a.get("endpoint") == "messages"]
    assert messages and all(a["status"] == 200 for a in messages), messages
    assert any("format:hermes" in (a.get("repairs") or []) for a in messages)
    parallel = [b for b in result["requests"] if sum(m["role"] == "tool" for m in b["messages"]) == 4]
    assert parallel, "the two parallel calls were never answered together"
    # the CLI resent its conversation and tools each turn: the router found them again by their bytes (not
    # parsed again), and every check above ran on those turns
    assert result["known"]["history"] >= 1 and result["known"]["tools"] >= 1, result["known"]


def test_claude_code_through_an_anthropic_provider(agent_cli, run_agents, tmp_path: Path) -> None:
    """The real CLI in front of a `type: anthropic` provider: its Messages bodies reach the provider as it sent them
    (the pass-through), prompt-cache breakpoints and the beta header included, and the tool loop completes (a Write
    the model asked for, then its final answer). Through the chat form those breakpoints were all dropped."""
    claude = agent_cli("claude")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    target = work / "anthropic.txt"
    env = {**BASE_ENV, **README_ENV, "HOME": str(home)}
    flags = ["--permission-mode", "acceptEdits", "--allowedTools=Write"]
    mark, final = "NATIVE-ANTHROPIC-RUN", "The file is written through Anthropic."
    result = run_agents({"model": "claude", "upstream": "anthropic",
                         "context": {"mark": mark, "file": str(target), "final": final},
                         "steps": [{"argv": [*claude, "-p", *flags, f"{mark}: write anthropic.txt."],
                                    "cwd": str(work), "env": env, "timeout": 180}]})
    (run,) = result["runs"]
    assert run["rc"] == 0 and final in run["stdout"], describe(result)
    assert target.read_text() == "native", describe(result)
    loop = [(b, h) for b, h in zip(result["requests"], result["headers"], strict=True)
            if mark in str(b.get("messages")) and b.get("tools")]
    assert len(loop) == 2, [str(b)[:300] for b in result["requests"]]
    for body, headers in loop:
        assert body["model"] == "claude-fake" and "cache_control" in str(body)  # as the CLI sent them
        assert "metadata" not in body or "user_id" not in body["metadata"]
        assert headers.get("anthropic-beta"), headers
    messages = [a for a in result["access"] if a.get("endpoint") == "messages"]
    assert messages and all(a["status"] == 200 for a in messages), messages
