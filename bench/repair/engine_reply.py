"""What one repair owner per request saves: the router's CPU on a local engine's reply, repaired a second time (as
before) or validated (router/repair_owner.py), side by side in one run.

    python bench/repair/engine_reply.py [--rounds 7] [--seconds 0.3]

Replies, as our engine worker sends them (already repaired; a tools list of 12 agent tools is declared):
  * call   — one tool call, no content (the common agent turn);
  * prose  — ~1.5 KB of prose, no call;
  * marker — prose that quotes call markup (which the engine left as prose).
Non-stream: the router's whole-reply step (`pipeline._repair_whole`: repair or validate, record, rebuild).
Stream: the same reply as the engine streams it (~4-character content pieces; a call as its header and argument
pieces), through the router's per-chunk step (`repair_owner.stream_checker` + `pipeline._chunks_of`) and finish.
Rounds alternate the two ways; the figure is the median µs per reply.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from repair import ToolIndex  # noqa: E402
from repair.validate import Reported  # noqa: E402
from router import pipeline  # noqa: E402
from router.chat_types import ChatRequest  # noqa: E402
from router.config.model import RepairPolicy  # noqa: E402
from router.exchange import Exchange  # noqa: E402
from router.repair_owner import stream_checker  # noqa: E402

TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "x" * 80, "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"},
                                     "flags": {"type": "array", "items": {"type": "string"}}},
    "required": ["path"]}}} for i in range(11)] + [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]}}}]
PROSE = ("The function reads the configuration once, validates it, and hands the result to the router. " * 16)[:1500]
MARKER = PROSE[:700] + ' For example <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call> ' \
    + PROSE[:700]
ARGS = '{"city": "Paris"}'
CALL = {"id": "call_0123456789abcdef", "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
REPLIES: dict[str, tuple[str | None, list[dict[str, Any]]]] = {
    "call": (None, [CALL]), "prose": (PROSE, []), "marker": (MARKER, [])}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
POLICY = RepairPolicy()


def _doc(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = calls
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if calls else "stop"}]}


def whole(name: str, engine: bool) -> Callable[[], None]:
    index = ToolIndex(TOOLS)
    template = _doc(*REPLIES[name])

    def run() -> None:
        doc = copy.deepcopy(template)  # the router parses a fresh document per reply
        reported = Reported() if engine else None
        pipeline._repair_whole(doc, Exchange("r", "chat"), BODY, POLICY, index, False, reported)
    return run


def _pieces(content: str | None, calls: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = [("text", content[i:i + 4]) for i in range(0, len(content or ""), 4)]
    for k, c in enumerate(calls):
        head = {"index": k, "id": c["id"], "type": "function",
                "function": {"name": c["function"]["name"], "arguments": ""}}
        parts.append(("calls", [head]))
        args = c["function"]["arguments"]
        parts += [("calls", [{"index": k, "function": {"arguments": args[i:i + 6]}}]) for i in range(0, len(args), 6)]
    return parts


def stream(name: str, engine: bool) -> Callable[[], None]:
    index = ToolIndex(TOOLS)
    parts = _pieces(*REPLIES[name])
    req = ChatRequest.of(BODY)

    def run() -> None:
        env = pipeline._Envelope("m")
        checker = stream_checker(engine, index, req, POLICY, 1 << 20)
        for kind, value in parts:
            events = checker.feed(value) if kind == "text" else checker.feed_tool_calls(value)
            pipeline._chunks_of(events, env)
        pipeline._chunks_of(checker.finish(), env)
        pipeline._record(Exchange("r", "chat"), checker.result)
    return run


def per_call_us(fn: Callable[[], None], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n % 20 == 0 and time.perf_counter() - start >= seconds:
            return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {a.rounds} rounds x {a.seconds}s per figure, interleaved")
    print("| reply | path | repaired again (µs) | validated (µs) | saved (µs) | ratio |\n|---|---|---|---|---|---|")
    for path, make in (("non-stream", whole), ("stream", stream)):
        for name in REPLIES:
            again, valid = make(name, False), make(name, True)
            a_us: list[float] = []
            v_us: list[float] = []
            for _ in range(a.rounds):
                a_us.append(per_call_us(again, a.seconds))
                v_us.append(per_call_us(valid, a.seconds))
            ma, mv = statistics.median(a_us), statistics.median(v_us)
            print(f"| {name} | {path} | {ma:.1f} | {mv:.1f} | {ma - mv:.1f} | {mv / ma:.2f} |")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
