"""Soak: the router under sustained mixed traffic and client cancels, watched for errors and leaks.

    python bench/soak/run.py --duration 300 --concurrency 64 [--warmup 20] [--window 10] [--json out.json]

Everything stays on 127.0.0.1 and is bounded:
  * upstream: a fake OpenAI server in this process (aiohttp). Non-stream answers come at once (or after 300 ms
    for the requests that will be cancelled); streams send the answer in 8 events 5 ms apart, then [DONE]. It
    closes idle keep-alive connections after 1 s, so an idle router holds no pooled sockets.
  * router: `python -m router serve --config <tmp yaml>` in a subprocess, logging JSON lines to a temp file.
  * clients: --concurrency loops, each mixing non-stream chats (40 %), streams read to the end (35 %), streams
    abandoned after their first event (15 %: the client closes the connection) and non-stream requests
    cancelled 50 ms in (10 %). Half use a model entry that renames the upstream model (the rewriting path).
    Every answer is checked: it must echo the request's own nonce (no crossed wires), show the requested model
    name, and a stream must end with [DONE] and carry no error event.

Phases: start (idle) -> warm-up for --warmup s -> idle -> measured load for --duration s -> idle. Each idle
point waits until the router's fd count is stable, then reads RSS (/proc/<pid>/status) and fds (/proc/<pid>/fd).

Targets (exit status 1 when one is missed):
  errors       failed requests during warm-up and the measured run          0
  rss growth   idle RSS at the end vs idle RSS after warm-up                 < 10 %
  fd growth    idle open fds at the end vs idle open fds after warm-up       <= 4
  stuck        requests the router still counts in flight or queued         0
  upstream     upstream handlers still running once the router is idle      0
  log errors   error-level lines (tracebacks) in the router's log           0
A table shows, per window (--window s, default 10): requests, errors, cancels, p50/p99 latency of non-stream and
stream requests, and the router's RSS and fds at the window's end (under load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 10.0
STREAM_PIECES = 8
STREAM_PACE = 0.005
SLOW = 0.3
CANCEL_AFTER = 0.05
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
FD_SLACK = 4
RSS_LIMIT = 0.10
FILLER = "lorem ipsum dolor sit amet " * 6


# --- upstream ------------------------------------------------------------------------------------------------------

class Upstream:
    """A fake OpenAI chat upstream that echoes the last user message."""

    def __init__(self) -> None:
        self.active = 0
        self.hangups = 0  # handlers cancelled because the router went away
        self.served = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None, keepalive_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        try:
            body = await request.json()
            model, text = body["model"], body["messages"][-1]["content"]
            if not body.get("stream"):
                if text.startswith("slow"):
                    await asyncio.sleep(SLOW)
                self.served += 1
                return web.json_response({
                    "id": "chatcmpl-soak", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}})
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            step = -(-len(text) // STREAM_PIECES)
            try:
                for i in range(0, len(text), step):
                    await resp.write(_event(model, {"content": text[i:i + step]}))
                    await asyncio.sleep(STREAM_PACE)
                await resp.write(_event(model, {}, "stop") + b"data: [DONE]\n\n")
                await resp.write_eof()
                self.served += 1
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):  # gone between two writes
                self.hangups += 1
            return resp
        except asyncio.CancelledError:
            self.hangups += 1
            raise
        finally:
            self.active -= 1


def _event(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


# --- router process ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.asynccontextmanager
async def router_process(upstream_url: str, tmp: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str,
                                                                             Path]]:
    port = free_port()
    cfg = tmp / "config.yaml"
    cfg.write_text(f"""
server: {{host: 127.0.0.1, port: {port}, log_format: json, log_level: info}}
providers:
  up: {{type: openai, base_url: '{upstream_url}'}}
models:
  - {{name: soak, provider: up}}
  - {{name: soak-renamed, provider: up, model: soak-upstream}}
""")
    log_path = tmp / "router.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", "serve", "--config", str(cfg), cwd=ROOT, stdout=log,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as s:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"the router exited ({proc.returncode}):\n{log_path.read_text()[-2000:]}")
                try:
                    async with s.get(url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the router did not become healthy within 60 s")
                await asyncio.sleep(0.1)
        yield proc, url, log_path
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


# --- load ----------------------------------------------------------------------------------------------------------

@dataclass
class Window:
    requests: int = 0
    errors: int = 0
    cancels: int = 0
    json_ms: list[float] = field(default_factory=list)
    sse_ms: list[float] = field(default_factory=list)
    rss: int = 0
    fds: int = 0


@dataclass
class Load:
    started: float
    seconds: float
    span: float = WINDOW  # a window's seconds
    windows: dict[int, Window] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def window(self) -> Window:
        """The current window; requests still finishing after the end count in the last one."""
        last = max(0, math.ceil(self.seconds / self.span) - 1)
        index = min(int((time.monotonic() - self.started) // self.span), last)
        return self.windows.setdefault(index, Window())

    def error(self, what: str) -> None:
        w = self.window()
        w.requests += 1
        w.errors += 1
        if len(self.errors) < 20:
            self.errors.append(what)


KINDS = (("json", 40), ("sse", 35), ("sse-abandon", 15), ("json-cancel", 10))


async def client_loop(idx: int, url: str, session: aiohttp.ClientSession, load: Load, until: float) -> None:
    rng = random.Random(idx)
    names, weights = zip(*KINDS, strict=True)
    seq = 0
    while time.monotonic() < until:
        seq += 1
        kind = rng.choices(names, weights)[0]
        model = "soak" if rng.random() < 0.5 else "soak-renamed"
        nonce = f"{'slow' if kind == 'json-cancel' else 'req'}-{idx}-{seq}: {FILLER}"
        body = {"model": model, "stream": kind.startswith("sse"),
                "messages": [{"role": "user", "content": nonce}]}
        t0 = time.monotonic()
        try:
            if kind == "json":
                await one_json(url, session, body, nonce, model)
                load.window().json_ms.append((time.monotonic() - t0) * 1000)
            elif kind == "sse":
                await one_stream(url, session, body, nonce, model)
                load.window().sse_ms.append((time.monotonic() - t0) * 1000)
            elif kind == "sse-abandon":
                await abandon_stream(url, session, body)
                load.window().cancels += 1
            else:
                try:
                    await asyncio.wait_for(one_json(url, session, body, nonce, model), CANCEL_AFTER)
                    load.window().json_ms.append((time.monotonic() - t0) * 1000)
                except asyncio.TimeoutError:
                    load.window().cancels += 1
                    continue
            load.window().requests += 1
        except AssertionError as exc:
            load.error(f"{kind}: {exc}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            load.error(f"{kind}: {type(exc).__name__}: {exc}")


async def one_json(url: str, s: aiohttp.ClientSession, body: dict[str, Any], nonce: str, model: str) -> None:
    async with s.post(url + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT) as resp:
        raw = await resp.read()
        assert resp.status == 200, f"status {resp.status}: {raw[:200]!r}"
    doc = json.loads(raw)
    assert doc["model"] == model, f"model {doc['model']!r} != {model!r}"
    got = doc["choices"][0]["message"]["content"]
    assert got == nonce, f"crossed or corrupted answer: {got[:60]!r} for {nonce[:60]!r}"


async def one_stream(url: str, s: aiohttp.ClientSession, body: dict[str, Any], nonce: str, model: str) -> None:
    async with s.post(url + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT) as resp:
        raw = await resp.read()
        assert resp.status == 200, f"status {resp.status}: {raw[:200]!r}"
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert events and events[-1] == b"data: [DONE]", f"stream did not end with [DONE]: {raw[-120:]!r}"
    text = ""
    for e in events[:-1]:
        assert e.startswith(b"data: "), f"not a data event: {e[:80]!r}"
        doc = json.loads(e[6:])
        assert "error" not in doc, f"error event: {doc['error']}"
        assert doc["model"] == model, f"model {doc['model']!r} != {model!r}"
        text += doc["choices"][0]["delta"].get("content") or ""
    assert text == nonce, f"crossed or corrupted stream: {text[:60]!r} for {nonce[:60]!r}"


async def abandon_stream(url: str, s: aiohttp.ClientSession, body: dict[str, Any]) -> None:
    async with s.post(url + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT) as resp:
        assert resp.status == 200, f"status {resp.status}"
        await resp.content.readuntil(b"\n\n")
        resp.close()  # hang up mid-stream


async def drive(url: str, concurrency: int, seconds: float, load: Load, pid: int) -> None:
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sampler = asyncio.create_task(sample(load, pid, until))
        await asyncio.gather(*(client_loop(i, url, session, load, until) for i in range(concurrency)))
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


async def sample(load: Load, pid: int, until: float) -> None:
    while time.monotonic() < until:
        w = load.window()
        w.rss, w.fds = rss_bytes(pid), fd_count(pid)
        await asyncio.sleep(1.0)


async def settle(pid: int, upstream: Upstream, timeout: float = 30.0) -> tuple[int, int]:
    """Wait until the router's fd count has been stable for 2 s (and the upstream is idle); (rss, fds)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = fd_count(pid)
        if n != last or upstream.active:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            break
        await asyncio.sleep(0.2)
    return rss_bytes(pid), fd_count(pid)


async def in_flight(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + "/ready", timeout=aiohttp.ClientTimeout(total=5)) as r:
        doc = await r.json()
    return sum(p.get("in_flight", 0) + p.get("queued", 0) for p in doc.get("providers", {}).values())


def log_errors(path: Path) -> list[str]:
    found = []
    with path.open("rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace")
            try:
                level = json.loads(line).get("level", "")
            except ValueError:
                level = "error" if "Traceback" in line or "Error" in line else ""
            if level in ("error", "critical"):
                found.append(line.strip()[:300])
    return found


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- main ----------------------------------------------------------------------------------------------------------

async def soak(args: argparse.Namespace) -> dict[str, Any]:
    upstream = Upstream()
    await upstream.start()
    try:
        with tempfile.TemporaryDirectory(prefix="agentgate-soak-") as tmpdir:
            async with router_process(upstream.url, Path(tmpdir)) as (proc, url, log_path):
                pid = proc.pid
                rss0, fds0 = await settle(pid, upstream)
                warm = Load(time.monotonic(), args.warmup, args.window)
                await drive(url, args.concurrency, args.warmup, warm, pid)
                rss_warm, fds_warm = await settle(pid, upstream)
                hangups = upstream.hangups
                load = Load(time.monotonic(), args.duration, args.window)
                await drive(url, args.concurrency, args.duration, load, pid)
                rss_end, fds_end = await settle(pid, upstream)
                stuck = await in_flight(url)
                errors_in_log = log_errors(log_path)
                alive = proc.returncode is None
    finally:
        await upstream.stop()
    windows = [load.windows[k] for k in sorted(load.windows)]
    total = sum(w.requests for w in windows)
    return {
        "duration": args.duration, "warmup": args.warmup, "concurrency": args.concurrency,
        "requests": total, "cancels": sum(w.cancels for w in windows),
        "errors": sum(w.errors for w in windows) + sum(w.errors for w in warm.windows.values()),
        "error_examples": warm.errors + load.errors,
        "rps": total / args.duration if args.duration else 0.0,
        "rss_start": rss0, "rss_warm": rss_warm, "rss_end": rss_end,
        "rss_growth": (rss_end - rss_warm) / rss_warm,
        "fds_start": fds0, "fds_warm": fds_warm, "fds_end": fds_end, "fd_growth": fds_end - fds_warm,
        "stuck": stuck, "upstream_active": upstream.active, "upstream_hangups": upstream.hangups - hangups,
        "log_errors": len(errors_in_log), "log_error_examples": errors_in_log[:5], "router_alive": alive,
        "windows": [{"start_s": int(i * args.window), **{k: v for k, v in asdict(w).items()
                                                    if k not in ("json_ms", "sse_ms")},
                     "json_p50_ms": pct(w.json_ms, 0.50), "json_p99_ms": pct(w.json_ms, 0.99),
                     "sse_p50_ms": pct(w.sse_ms, 0.50), "sse_p99_ms": pct(w.sse_ms, 0.99)}
                    for i, w in zip(sorted(load.windows), windows, strict=True)],
    }


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        ("errors", str(r["errors"]), "0", r["errors"] == 0),
        ("rss growth after warm-up", f"{r['rss_growth'] * 100:+.1f} %", f"< {RSS_LIMIT * 100:.0f} %",
         r["rss_growth"] < RSS_LIMIT),
        ("fd growth after warm-up", f"{r['fd_growth']:+d}", f"<= {FD_SLACK}", r["fd_growth"] <= FD_SLACK),
        ("stuck in flight/queued", str(r["stuck"]), "0", r["stuck"] == 0),
        ("upstream handlers left", str(r["upstream_active"]), "0", r["upstream_active"] == 0),
        ("router log errors", str(r["log_errors"]), "0", r["log_errors"] == 0),
        ("router still running", str(r["router_alive"]), "True", r["router_alive"]),
    ]


def report(r: dict[str, Any]) -> bool:
    mb = 1024 * 1024
    print(f"\nagentgate soak — {r['duration']} s at concurrency {r['concurrency']} (warm-up {r['warmup']} s), "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, loopback\n")
    hdr = (f"{'window':>8} {'reqs':>7} {'errors':>6} {'cancels':>7} {'json p50':>9} {'json p99':>9} "
           f"{'sse p50':>8} {'sse p99':>8} {'rss MB':>7} {'fds':>5}")
    print(hdr)
    print("-" * len(hdr))
    for w in r["windows"]:
        print(f"{w['start_s']:>7}s {w['requests']:>7} {w['errors']:>6} {w['cancels']:>7} {w['json_p50_ms']:>9.1f} "
              f"{w['json_p99_ms']:>9.1f} {w['sse_p50_ms']:>8.1f} {w['sse_p99_ms']:>8.1f} {w['rss'] / mb:>7.1f} "
              f"{w['fds']:>5}")
    print(f"\n{r['requests']} requests ({r['rps']:.0f}/s), {r['cancels']} client cancels, "
          f"{r['upstream_hangups']} upstream requests hung up on by the router")
    print(f"router RSS  start {r['rss_start'] / mb:.1f} MB, after warm-up {r['rss_warm'] / mb:.1f} MB, "
          f"end {r['rss_end'] / mb:.1f} MB (idle)")
    print(f"router fds  start {r['fds_start']}, after warm-up {r['fds_warm']}, end {r['fds_end']} (idle)\n")
    ok = True
    for name, value, target, passed in verdicts(r):
        ok &= passed
        print(f"  {'ok  ' if passed else 'MISS'} {name:<26} {value:>10}   target {target}")
    for e in r["error_examples"][:10]:
        print(f"  error: {e}")
    for e in r["log_error_examples"]:
        print(f"  log: {e}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=300.0, help="measured seconds (default 300)")
    ap.add_argument("--concurrency", type=int, default=64, help="client loops (default 64)")
    ap.add_argument("--warmup", type=float, default=20.0, help="warm-up seconds before measuring (default 20)")
    ap.add_argument("--window", type=float, default=WINDOW, help="seconds per row of the table (default 10)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if sys.platform != "linux":
        print("bench/soak reads /proc: Linux only", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        result = runner(soak(args))
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    ok = report(result)
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
