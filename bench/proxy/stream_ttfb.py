"""Time to first payload of a streamed tool call (and of reasoning and prose), through agentgate vs direct.

    python bench/proxy/stream_ttfb.py [--repeat 3]

A slow upstream on 127.0.0.1 streams 100 pieces 20 ms apart (~2 s), with tools declared as every agent request
does: a native `tool_calls` stream of write_file with a long content argument, the same call as hermes text, a
`<think>` block then an answer, and prose. For each, the client measures when the first payload byte arrived
(argument, reasoning or text) and when half of the long payload had arrived, directly from the upstream and
through agentgate on /v1/chat/completions, /v1/messages and /v1/responses. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
N, GAP = 100, 0.02
PARAMS = {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
          "required": ["path", "content"]}
ARGS = json.dumps({"path": "out.txt", "content": "".join(f"line {i}: some file content\n" for i in range(60))})
REASONING = "".join(f"Step {i}, I consider the next part. " for i in range(60))
KINDS = ("native", "hermes", "think", "prose")


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _split(text: str, n: int) -> list[str]:
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


def events(kind: str) -> tuple[list[bytes], str]:
    if kind == "native":
        head = _chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                            "function": {"name": "write_file", "arguments": ""}}]})
        body = [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _split(ARGS, N - 2)]
        return [head, *body, _chunk({}, "tool_calls")], ARGS
    text, payload = {
        "hermes": (f'<tool_call>\n{{"name": "write_file", "arguments": {ARGS}}}\n</tool_call>', ARGS),
        "think": (f"<think>\n{REASONING}\n</think>\n\nDone.", REASONING),
        "prose": (REASONING, REASONING),
    }[kind]
    return [_chunk({"content": p}) for p in _split(text, N - 1)] + [_chunk({}, "stop")], payload


async def upstream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    kind = next(k for k in KINDS if k in json.dumps(body["messages"][-1]))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, ev in enumerate(events(kind)[0]):
        if i:
            await asyncio.sleep(GAP)
        await resp.write(ev)
    await resp.write(b"data: [DONE]\n\n")
    return resp


def payload_of(route: str, doc: dict[str, Any]) -> str:
    if route in ("direct", "chat"):
        out = ""
        for choice in doc.get("choices") or []:
            delta = choice.get("delta") or {}
            out += (delta.get("content") or "") + (delta.get("reasoning_content") or "")
            for call in delta.get("tool_calls") or []:
                out += (call.get("function") or {}).get("arguments") or ""
        return out
    if route == "messages":
        d = doc.get("delta") or {}
        return (d.get("text") or d.get("thinking") or d.get("partial_json") or "") \
            if doc.get("type") == "content_block_delta" else ""
    if str(doc.get("type", "")).endswith(".delta"):
        return str(doc.get("delta") or "")
    return ""


def request(route: str, kind: str, up: str, ag: str) -> tuple[str, dict[str, Any]]:
    msgs = [{"role": "user", "content": f"go: {kind}"}]
    tools = [{"type": "function", "function": {"name": "write_file", "parameters": PARAMS}}]
    if route == "direct":
        return up + "/v1/chat/completions", {"model": "m", "stream": True, "messages": msgs, "tools": tools}
    if route == "chat":
        return ag + "/v1/chat/completions", {"model": "m", "stream": True, "messages": msgs, "tools": tools}
    if route == "messages":
        return ag + "/v1/messages", {"model": "m", "stream": True, "max_tokens": 4096, "messages": msgs,
                                     "tools": [{"name": "write_file", "input_schema": PARAMS}]}
    return ag + "/v1/responses", {"model": "m", "stream": True, "input": f"go: {kind}", "store": False,
                                  "tools": [{"type": "function", "name": "write_file", "parameters": PARAMS}]}


async def measure(session: aiohttp.ClientSession, route: str, kind: str, up: str,
                  ag: str) -> tuple[float, float, float]:
    """(first payload s, half the payload s, whole stream s)."""
    url, body = request(route, kind, up, ag)
    payload = events(kind)[1]
    got, first, half = "", float("nan"), float("nan")
    t0 = time.perf_counter()
    async with session.post(url, json=body) as resp:
        buf = b""
        async for data in resp.content.iter_any():
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                        got += payload_of(route, json.loads(line[6:]))
            now = time.perf_counter() - t0
            if got and first != first:
                first = now
            if len(got) >= len(payload) / 2 and half != half:
                half = now
    return first, half, time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(repeat: int, up_port: int, ag_port: int) -> list[dict[str, Any]]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    up, ag = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{ag_port}"
    rows: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(400):
                try:
                    async with session.get(ag + "/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            for kind in KINDS:
                for route in ("direct", "chat", "messages", "responses"):
                    runs = [await measure(session, route, kind, up, ag) for _ in range(repeat)]
                    first, half, whole = (statistics.median(r[i] for r in runs) for i in range(3))
                    rows.append({"kind": kind, "route": route, "first_s": first, "half_s": half, "whole_s": whole})
    finally:
        await runner.cleanup()
    return rows


def measure_all(repeat: int = 3) -> list[dict[str, Any]]:
    """Starts agentgate in front of the slow upstream and measures every kind on every route."""
    up_port, ag_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(f"server: {{host: 127.0.0.1, port: {ag_port}, access_log: false}}\nproviders:\n"
                       f"  up: {{type: openai, base_url: 'http://127.0.0.1:{up_port}/v1'}}\n"
                       "models:\n  - {name: m, provider: up}\n")
        proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(cfg)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return asyncio.run(run(repeat, up_port, ag_port))
        finally:
            proc.terminate()
            proc.wait(10)


def report(rows: list[dict[str, Any]]) -> str:
    lines = [f"streamed payload, {N} pieces {int(GAP * 1000)} ms apart, tools declared: first payload and half of "
             "the payload (s), median",
             f"{'upstream sends':<9} {'route':<10} {'first':>7} {'half':>7} {'whole':>7} {'first - direct':>15}"]
    direct = {r["kind"]: r for r in rows if r["route"] == "direct"}
    for r in rows:
        d = direct[r["kind"]]
        lines.append(f"{r['kind']:<9} {r['route']:<10} {r['first_s']:>7.3f} {r['half_s']:>7.3f} "
                     f"{r['whole_s']:>7.3f} {r['first_s'] - d['first_s']:>+15.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    rows = measure_all(args.repeat)
    print(report(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
