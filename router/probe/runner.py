"""One probe conversation: seeded tasks sent turn after turn over a growing history, every reply checked,
every valid call executed against the local workspace and its result sent back with the next turn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..config.model import shown_url
from .check import Verdict, check_message
from .client import ChatClient, Reply, Unreachable
from .report import INTERRUPTED, ProbeReport, TurnResult
from .tasks import SYSTEM_PROMPT, Task, generate_tasks
from .toolset import TOOLS, Workspace

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
REPAIR_HEADER = "x-agentgate-repair"  # request: "off" turns the router's repair off
CONSTRAIN_HEADER = "x-agentgate-constrain"  # request: "off" turns a local engine's constrained decoding off
REPAIRS_HEADER = "x-agentgate-repairs"  # response: the repair kinds applied by the router
OUTCOME_HEADER = "x-agentgate-tool-calls"  # response of an engine worker: none|valid|repaired|failed
FATAL_STATUSES = (401, 403, 404)  # wrong key or unknown model: no later turn can do better
FATAL_CODES = ("model_unavailable",)  # agentgate's 503 for a model none of whose providers can be used here (a key
# or URL variable unset, a local model missing): its reason stands until the config changes


@dataclass(frozen=True)
class ProbeSettings:
    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    turns: int = 40
    seed: int = 0
    repair: bool = True
    stream: bool = False
    timeout: float = 600.0
    max_tokens: int | None = 2048
    temperature: float | None = None
    constrain: bool = True
    tool_choice: str = "auto"  # "auto" or "required"


def new_report(settings: ProbeSettings) -> ProbeReport:
    """The empty report of a probe run with `settings`."""
    return ProbeReport(settings.model, shown_url(settings.base_url), settings.seed, settings.turns, settings.repair,
                       settings.stream)


async def run_probe(settings: ProbeSettings, *, session: aiohttp.ClientSession | None = None,
                    on_turn: Callable[[TurnResult], None] | None = None,
                    report: ProbeReport | None = None) -> ProbeReport:
    """Runs the conversation; never raises for backend behaviour (a stop is recorded in `report.error`).

    `report` (a new one when not given) gets every turn as it is judged: a probe cancelled (Ctrl-C) leaves it
    with the turns done, stopped as `interrupted`."""
    report = new_report(settings) if report is None else report
    started = time.perf_counter()
    try:
        await _converse(settings, session, on_turn, report)
    except (asyncio.CancelledError, KeyboardInterrupt):  # (the latter where the loop lets it in)
        report.error = INTERRUPTED
        raise
    finally:
        report.wall_s = time.perf_counter() - started
    return report


async def _converse(settings: ProbeSettings, session: aiohttp.ClientSession | None,
                    on_turn: Callable[[TurnResult], None] | None, report: ProbeReport) -> None:
    """Every turn of the conversation into `report`, until the last or the first that stops it."""
    async with AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        headers = {} if settings.repair else {REPAIR_HEADER: "off"}
        if not settings.constrain:
            headers[CONSTRAIN_HEADER] = "off"
        client = ChatClient(session, settings.base_url, api_key=settings.api_key, headers=headers,
                            timeout=settings.timeout)
        conversation = Conversation(settings)
        for task in generate_tasks(settings.seed, settings.turns):
            try:
                reply = await client.complete(conversation.request(task))
            except Unreachable as exc:
                report.error = str(exc)
                return
            turn = conversation.absorb(task, reply)
            report.turns.append(turn)
            if on_turn is not None:
                on_turn(turn)
            if reply.status in FATAL_STATUSES or (reply.status == 503 and reply.error_code in FATAL_CODES):
                report.error = f"HTTP {reply.status}: {reply.error}{_version_hint(settings.base_url, reply)}"
                return


def _version_hint(base_url: str, reply: Reply) -> str:
    """For a 404 that is no API's error (not JSON: the server has no such path) at a base URL that does not end
    with /v1: the likely fix, the /v1 `serve` leaves out of the address it prints."""
    path = urlsplit(base_url).path.rstrip("/")
    if reply.status != 404 or reply.error_code is not None or path.endswith("/v1"):
        return ""
    return f" (--base-url has no /v1: did you mean {shown_url(base_url.rstrip('/'))}/v1?)"


class Conversation:
    """The growing message history, the workspace, and the judging of each reply."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.workspace = Workspace(seed=settings.seed)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]

    def request(self, task: Task) -> dict[str, Any]:
        self.messages.append({"role": "user", "content": task.prompt})
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(self.messages),
                                "tools": list(TOOLS), "tool_choice": self.settings.tool_choice}
        if self.settings.max_tokens is not None:
            body["max_tokens"] = self.settings.max_tokens
        if self.settings.temperature is not None:
            body["temperature"] = self.settings.temperature
        if self.settings.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def absorb(self, task: Task, reply: Reply) -> TurnResult:
        """Judges the reply, appends it and the tool results to the history, and returns the turn's record."""
        turn = TurnResult(task.turn, task.prompt, task.tool, status="error",
                          latency_s=round(reply.latency_s, 4),
                          ttft_s=None if reply.ttft_s is None else round(reply.ttft_s, 4))
        _usage(turn, reply.usage)
        if reply.error is not None or reply.message is None:
            if reply.status == 0:  # timeout or transport failure
                turn.failure = reply.error_code or "transport"
            elif reply.status == 200:  # an unusable body, or an error event in the stream
                turn.failure = reply.error_code or "stream_error"
            else:
                turn.failure = f"http_{reply.status}"
            turn.detail = reply.error or "no message"
            if reply.error_code == "invalid_tool_call":  # the router's verdict (repair on_failure: error)
                turn.status, turn.failure = "invalid", "invalid_tool_call"
            return turn
        verdict = check_message(reply.message)
        turn.repairs = _repairs(reply, self.settings.stream)
        turn.calls = [{"name": c.name, "arguments": c.raw_arguments} for c in verdict.calls]
        turn.failure, turn.detail, turn.diagnosis = verdict.failure, verdict.detail, verdict.diagnosis
        turn.on_task = any(c.failure is None and c.name == task.tool for c in verdict.calls)
        if not verdict.valid:
            turn.status = "invalid"
        elif turn.repairs or reply.headers.get(OUTCOME_HEADER) == "repaired":
            turn.status = "repaired"
        else:
            turn.status = "valid"
        self._append(task, reply.message, verdict)
        return turn

    def _append(self, task: Task, message: dict[str, Any], verdict: Verdict) -> None:
        content = message.get("content")
        content = content if isinstance(content, str) else None
        if not verdict.calls:
            self.messages.append({"role": "assistant", "content": content or ""})
            return
        calls = []
        results = []
        for i, check in enumerate(verdict.calls):
            call_id = check.id or f"call_{task.turn}_{i}"
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": check.name, "arguments": check.raw_arguments}})
            if check.failure is None and check.arguments is not None:
                output = self.workspace.execute(check.name, check.arguments)
            else:
                output = json.dumps({"error": f"{check.failure}: {check.detail}; the call was not run"})
            results.append({"role": "tool", "tool_call_id": call_id, "content": output})
        self.messages.append({"role": "assistant", "content": content, "tool_calls": calls})
        self.messages.extend(results)


def _repairs(reply: Reply, stream: bool) -> list[str] | None:
    value = reply.headers.get(REPAIRS_HEADER)
    if value is None:
        return None if stream else []  # the router reports repairs on non-stream answers only
    return sorted({k.strip() for k in value.split(",") if k.strip()})


def _usage(turn: TurnResult, usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    turn.prompt_tokens = _int(usage.get("prompt_tokens"))
    turn.completion_tokens = _int(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    turn.cached_tokens = _int(details.get("cached_tokens")) if isinstance(details, dict) else None


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None
