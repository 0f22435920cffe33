"""Runs agent clients against agentgate and a fake model, all inside a private network namespace.

Started by the tests as `unshare --net [--map-root-user] python driver.py PLAN RESULT`: brings up loopback (the
namespace has no other interface, so nothing here can reach beyond 127.0.0.1), starts the scriptable fake upstream
answering as a model (tests/agents/models.py) and the router on 127.0.0.1:ROUTER_PORT, runs each client command of
the plan in turn, and writes what happened (exit codes, output, the chat bodies the model saw, the access log) to
RESULT as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from router.app import create_app, start  # noqa: E402
from router.config import parse_config  # noqa: E402
from router.state import STATE  # noqa: E402
from tests.agents import models  # noqa: E402
from tests.fakes.anthropic_upstream import API_KEY, AStep, FakeAnthropic, message, stream_events  # noqa: E402
from tests.fakes.openai_upstream import FakeUpstream  # noqa: E402

ROUTER_PORT = 8080
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, log_format: json}}
providers:
  lab: {{type: openai, base_url: '{url}', api_key: 'sk-lab-fake-0123456789', retries: 0}}
models:
  - {{name: coder, provider: lab, model: fake-model}}
"""
ANTHROPIC_CONFIG = """
server: {{host: 127.0.0.1, port: {port}, log_format: json}}
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: coder, provider: claude, model: claude-fake}}
"""


def _anthropic_model(context: dict[str, Any]) -> Any:
    """A Claude-like model behind an Anthropic provider: asked (the prompt holds `context["mark"]`) with the Write
    tool declared, it writes `context["file"]`, with thinking (signed) when the request asks for it; once the
    tool's result is back, it answers `context["final"]`. Anything else (the CLI's side requests) gets a word."""
    def answer(body: dict[str, Any]) -> AStep:
        messages = body.get("messages") or []
        blocks = [b for m in messages if isinstance(m.get("content"), list) for b in m["content"]]
        text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text") + " ".join(
            m["content"] for m in messages if isinstance(m.get("content"), str))
        tools = {t.get("name") for t in body.get("tools") or []}
        if context["mark"] in text and "Write" in tools:
            if any(b.get("type") == "tool_result" for b in blocks):
                out = [{"type": "text", "text": context["final"]}]
                reason = "end_turn"
            else:
                out = [{"type": "tool_use", "id": "toolu_fake1", "name": "Write",
                        "input": {"file_path": context["file"], "content": "native"}}]
                reason = "tool_use"
        else:
            out, reason = [{"type": "text", "text": "ok"}], "end_turn"
        if body.get("stream"):
            return AStep(events=stream_events(out, body["model"], stop_reason=reason))
        return AStep(json=message(out, body["model"], stop_reason=reason))
    return answer


class _Access(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            self.records.append(dict(fields))


async def _run_client(step: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *step["argv"], cwd=step["cwd"], env=step["env"], stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), step.get("timeout", 120))
        rc: int | None = proc.returncode
    except asyncio.TimeoutError:
        os.killpg(proc.pid, 9)
        out, err = await proc.communicate()
        rc = None
    return {"argv": step["argv"], "rc": rc, "seconds": round(time.monotonic() - started, 1),
            "stdout": out.decode(errors="replace")[-20000:], "stderr": err.decode(errors="replace")[-20000:]}


async def serve_and_run(plan: dict[str, Any]) -> dict[str, Any]:
    access = _Access()
    logging.getLogger("agentgate.access").addHandler(access)
    logging.getLogger("agentgate.access").setLevel(logging.INFO)
    if plan.get("upstream") == "anthropic":  # a Claude-like model behind a `type: anthropic` provider
        anthropic = FakeAnthropic()
        await anthropic.start()
        anthropic.default = _anthropic_model(plan.get("context", {}))  # type: ignore[method-assign]
        return await _serve(plan, access, anthropic, ANTHROPIC_CONFIG.format(port=ROUTER_PORT, url=anthropic.url,
                                                                             key=API_KEY))
    up = FakeUpstream("model")
    await up.start()
    up.default = models.MODELS[plan["model"]](plan.get("context", {}))  # type: ignore[method-assign]
    return await _serve(plan, access, up, CONFIG.format(port=ROUTER_PORT, url=up.url))


async def _serve(plan: dict[str, Any], access: _Access, up: Any, config: str) -> dict[str, Any]:
    app = create_app(parse_config(config))
    running = await start(app, port=ROUTER_PORT)
    runs: list[dict[str, Any]] = []
    try:
        for step in plan["steps"]:
            runs.append(await _run_client(step))
    finally:
        await running.stop()
        await up.stop()
    state = app[STATE]
    return {"runs": runs, "requests": [r.body for r in up.requests if isinstance(r.body, dict)],
            "headers": [dict(r.headers) for r in up.requests], "access": access.records,
            # what the router found again of the clients' resent bytes (see router/knownhistory.py, toolcache.py)
            "known": {"history": state.known_history.hits, "tools": state.tool_indexes.known.hits}}


def main(plan_path: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = asyncio.run(serve_and_run(plan))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
