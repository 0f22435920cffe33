"""A fake backend that drifts: valid tool calls for some turns, then scripted breaks at chosen turns.

Each reply is built from the request: the last user message is one of the probe's seeded tasks, so the fake
answers with that task's reference call (native `tool_calls`), or with the break scripted for the turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from router.probe.tasks import Task, generate_tasks
from tests.fakes.openai_upstream import Step, chunk, completion

ROOT = str(Path(__file__).resolve().parents[2])  # the checkout: where the child process imports router from
BREAKS = ("no_close", "single_quotes", "undeclared", "plain")  # the first two are repairable, the others not


class Drift:
    """Use as `fake.default = Drift(...)`: every request the script does not cover is answered by it."""

    def __init__(self, seeds: Iterable[int], turns: int, breaks: dict[int, str] | None = None,
                 per_model: dict[str, dict[int, str]] | None = None) -> None:
        self.tasks: dict[str, Task] = {t.prompt: t for s in seeds for t in generate_tasks(s, turns)}
        self.breaks = breaks or {}
        self.per_model = per_model or {}  # upstream model name -> breaks (instead of `breaks`)

    def __call__(self, body: Any) -> Step:
        messages = body["messages"]
        turn = sum(m["role"] == "user" for m in messages)
        task = self.tasks[messages[-1]["content"]]
        kind = self.per_model.get(body["model"], self.breaks).get(turn, "valid")
        args = json.dumps(task.arguments)
        calls: list[dict[str, Any]] | None = None
        text: str | None = None
        if kind == "valid":
            calls = [{"id": f"call_{turn}", "type": "function",
                      "function": {"name": task.tool, "arguments": args}}]
        elif kind == "no_close":
            text = '<tool_call>\n{"name": "' + task.tool + '", "arguments": ' + args + "}"
        elif kind == "single_quotes":
            text = f"<tool_call>\n{ {'name': task.tool, 'arguments': task.arguments}!r}\n</tool_call>"
        elif kind == "undeclared":
            text = '<tool_call>\n{"name": "run_shell", "arguments": {"command": "ls -la"}}\n</tool_call>'
        elif kind == "plain":
            text = "Done! I have taken care of that for you."
        else:
            raise AssertionError(f"unknown break {kind!r}")
        usage = {"prompt_tokens": 100 * turn, "completion_tokens": 20, "total_tokens": 100 * turn + 20,
                 "prompt_tokens_details": {"cached_tokens": 100 * (turn - 1)}}
        model = body["model"]
        if not body.get("stream"):
            return Step(json=completion(text, model, tool_calls=calls, usage=usage,
                                        finish_reason="tool_calls" if calls else "stop"))
        events: list[Any] = [chunk(model, {"role": "assistant", "content": ""})]
        if calls:
            call = calls[0]
            events.append(chunk(model, {"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                        "function": {"name": call["function"]["name"],
                                                                     "arguments": ""}}]}))
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                events.append(chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            assert text is not None
            events += [chunk(model, {"content": text[i:i + 7]}) for i in range(0, len(text), 7)]
        events.append(chunk(model, {}, "tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                           "model": model, "choices": [], "usage": usage})
        return Step(sse=events)


async def interrupted_cli(up: Any, args: list[str], answered: int) -> tuple[int | None, bytes, bytes]:
    """`agentgate ARGS` in a child process against the fake `up`, which answers the first two turns of each
    conversation (`Drift`) and holds the third until Ctrl-C: SIGINT once `answered` requests came. The exit status,
    stdout and stderr."""
    import asyncio
    import signal
    import sys

    from tests.waiting import wait_until

    drift, hold = Drift([0], 40), asyncio.Event()
    up.default = lambda body: drift(body) if sum(m["role"] == "user" for m in body["messages"]) <= 2 else \
        Step(gate=hold)
    boot = "import sys\nfrom router.cli import main\nsys.exit(main())\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", boot, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT)
    try:
        await wait_until(lambda: len(up.requests) == answered, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        hold.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out, err
