"""The real Codex CLI (pinned) against agentgate, configured exactly as the README says, in a private network
namespace: a native call, a malformed text call agentgate repairs, parallel calls, an image tool result, the final
answer, then `codex exec resume` on the same session."""

from __future__ import annotations

from pathlib import Path

from tests.agents.conftest import BASE_ENV, ROUTER, describe, png, readme_block
from tests.agents.models import FINAL, IMAGE_SEEN, RESUME_MARK, RESUMED

CONFIG = readme_block("Codex (", "toml")  # the README's Codex section, opt-outs included


def test_codex_session_and_resume(agent_cli, run_agents, tmp_path: Path) -> None:
    codex = agent_cli("codex")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    assert f"http://{ROUTER}/v1" in CONFIG
    (home / ".codex" / "config.toml").write_text(CONFIG)
    image = png(work / "pixel.png")
    env = {**BASE_ENV, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "AGENTGATE_API_KEY": "unused"}
    flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--strict-config"]
    result = run_agents({"model": "codex", "context": {"image": str(image)}, "steps": [
        {"argv": [*codex, "exec", *flags, "Write the files, then look at pixel.png."], "cwd": str(work),
         "env": env, "timeout": 180},
        {"argv": [*codex, "exec", "resume", "--last", *flags, f"{RESUME_MARK}: is the session intact?"],
         "cwd": str(work), "env": env, "timeout": 120},
    ]})
    first, resumed = result["runs"]
    assert first["rc"] == 0 and f"{FINAL} {IMAGE_SEEN}" in first["stdout"], describe(result)
    for name, text in (("native.txt", "native"), ("repaired.txt", "repaired"), ("a.txt", "a"), ("b.txt", "b")):
        assert (work / name).read_text() == text, describe(result)
    assert resumed["rc"] == 0 and f"{RESUMED}, {IMAGE_SEEN}" in resumed["stdout"], describe(result)
    responses = [a for a in result["access"] if a.get("endpoint") == "responses"]
    assert responses and all(a["status"] == 200 for a in responses), responses
    assert any("format:hermes" in (a.get("repairs") or []) for a in responses)  # the text call was repaired
    assert any("web_search" in (a.get("dropped_tools") or []) for a in responses)
    parallel = [b for b in result["requests"] if sum(m["role"] == "tool" for m in b["messages"]) == 4]
    assert parallel, "the two parallel calls were never answered together"
