"""The shipped config.yaml as a first user meets it: its `demo` model can take the first request of the agent CLIs
the README sets up (Claude Code, Codex), so pointing either at `demo` checks the wiring with no network."""

from __future__ import annotations

from pathlib import Path

import yaml

from router.config import parse_config

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
# The prompt tokens (demo's byte-level tokenizer) of the first request of `claude -p hi` (Claude Code 2.1.332, the
# README's exports, model demo) and of `codex exec hi` (Codex 0.171.0, the README's config.toml), as the access log
# counted them: the system prompt and tool definitions are most of it.
FIRST_REQUEST_TOKENS = {"claude": 31_185, "codex": 24_526}


def test_demo_context_holds_the_agent_clis_first_request() -> None:
    text = CONFIG.read_text()
    parse_config(text, source=str(CONFIG), env={})  # the file as shipped is valid
    demo = next(m for m in yaml.safe_load(text)["models"] if m["name"] == "demo")
    args = demo.get("engine_args", [])
    context = int(args[args.index("--max-context") + 1])
    # room for the answer and a few turns of history past the largest first request
    assert context >= 2 * max(FIRST_REQUEST_TOKENS.values()), context
