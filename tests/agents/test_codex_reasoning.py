"""The real Codex CLI (pinned) shows a local model's thinking: the router gives a reasoning item's text as its
`summary` when the request asks `reasoning.summary`, and Codex shows reasoning summaries. For a catalog entry that
says the model gives none (`default_reasoning_summary: "none"`), Codex asks only when `model_reasoning_summary` is
set; with no entry at all its fallback metadata asks "auto" already (`model_supports_reasoning_summaries` is not a
setting of this Codex: ignored with a warning, refused under `--strict-config`). What Codex sent is read from its
own trace log of each request (`codex_http_client::transport`), which goes to a file: the bodies are too long for
the driver's tail of stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.agents.conftest import BASE_ENV, describe, readme_block
from tests.agents.models import CODEX_THOUGHT, CODEX_THOUGHT_DONE
from tests.agents.test_codex import CATALOG

CONFIG = readme_block("Codex (", "toml")
POSTED = "codex_http_client::transport: POST to http://127.0.0.1:8080/v1/responses: "
Client = Callable[[str], list[str]]
Runner = Callable[[dict[str, Any]], dict[str, Any]]


def _posted(log: Path) -> list[dict[str, Any]]:
    """The Responses request bodies Codex logged, in order."""
    return [json.loads(line.split(POSTED, 1)[1]) for line in log.read_text().splitlines() if POSTED in line]


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_codex_shows_the_models_reasoning_when_it_asks_a_summary(agent_cli: Client, run_agents: Runner,
                                                                tmp_path: Path) -> None:
    codex = agent_cli("codex")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    (home / ".codex" / "config.toml").write_text(CONFIG)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))  # "coder": supports_reasoning_summaries false, default "none"
    env = {**BASE_ENV, "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "AGENTGATE_API_KEY": "unused",
           "RUST_LOG": "codex_http_client::transport=trace"}
    flags = ["--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--strict-config"]
    entry = ["-c", f'model_catalog_json="{catalog}"']
    # per run: its settings, and the `reasoning` Codex sends
    runs_of = {"default": ([], {"summary": "auto"}),  # the README's config alone: Codex's fallback metadata
               "plain": (entry, {"effort": "medium"}),  # the entry's effort, and no summary
               "asked": ([*entry, "-c", 'model_reasoning_summary="auto"'], {"effort": "medium", "summary": "auto"})}
    logs = {name: tmp_path / f"{name}.log" for name in runs_of}
    result = run_agents({"model": "codex_reasoning", "steps": [
        {"argv": ["sh", "-c", 'exec "$@" 2>"$0"', str(logs[name]), *codex, "exec", *flags, *settings,
                  "Write the file."], "cwd": str(work), "env": env, "timeout": 60}
        for name, (settings, _) in runs_of.items()]})
    runs = dict(zip(logs, result["runs"], strict=True))
    for name, run in runs.items():
        shown = [e["item"] for e in _events(run["stdout"]) if e["type"] == "item.completed"]
        assert run["rc"] == 0 and {"type": "agent_message", "text": CODEX_THOUGHT_DONE} in [
            {k: i[k] for k in ("type", "text") if k in i} for i in shown], describe(result)
        bodies = _posted(logs[name])
        assert len(bodies) == 2, [b.get("reasoning") for b in bodies]  # the call, then its result
        wanted = runs_of[name][1]
        assert [b.get("reasoning") for b in bodies] == [wanted] * 2, [b.get("reasoning") for b in bodies]
        # shown as Codex shows a summary: only when asked (the reasoning_text parts alone it does not show)
        thoughts = [i["text"] for i in shown if i["type"] == "reasoning"]
        assert thoughts == ([CODEX_THOUGHT] if "summary" in wanted else []), shown
        # the reasoning item came back once, and went upstream once
        assert [i["type"] for i in bodies[1]["input"]].count("reasoning") == 1, bodies[1]["input"]
    assert (work / "thought.txt").read_text() == "thought"
    assert len(result["requests"]) == 6, [len(b["messages"]) for b in result["requests"]]
    for body in result["requests"][1::2]:
        assert [m.get("reasoning_content") for m in body["messages"] if m["role"] == "assistant"] == [CODEX_THOUGHT]
