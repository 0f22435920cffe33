"""Engine bench: agentgate's MLX worker vs `mlx_lm.server` on the same model, in one run.

Usage (from the repository root):
    .venv/bin/python bench/engine/run.py                       # tiny generated models (random weights)
    .venv/bin/python bench/engine/run.py --model mlx-community/Qwen3-4B-Instruct-2507-4bit
    options: --concurrency 1,8,32  --max-tokens 128  --turns 20  --tool-chars 600  --agents 8
             --parallel-turns 8  --only ours|mlx_lm  --worker-args "--cpu-threads 1"
             --json results.json

Each server is started on 127.0.0.1 (one after the other, never both at once, same settings otherwise) and
measured with the same raw-SSE client:
  * throughput: for each concurrency C, waves of C streaming chat requests with distinct prompts run at once
    (repeated for at least --min-seconds); the aggregate rate is completion tokens / wall time. With the tiny
    models EOS is banned with logit_bias, so every request generates exactly --max-tokens tokens.
  * agent loop: a --turns turn tool-calling conversation. Each turn re-sends the whole conversation plus the
    assistant's tool call and a new tool result of --tool-chars characters, as coding agents do. TTFT is the
    time to the first streamed delta (text, reasoning or tool call); with a prefix cache only the new suffix
    of each turn is prefilled, so TTFT grows with the attention cost of the context, not with its prefill.
  * parallel agents: --agents such loops at once (--parallel-turns turns each), as sub-agents do; mean TTFT
    per turn across the agents, and the wall time.
  * memory: peak resident set size of the server process (sampled every 100 ms), and for our worker the MLX
    peak reported by /stats.
The default models are generated offline with random weights (a throughput model, and a scripted one that
always answers with a tool call for the agent loop): their numbers measure serving overhead (batching, prefix
cache, HTTP), not model quality. --tiny-size medium makes them compute-heavier. Pass --model for a real model
(used for both parts). Everything is bounded by
--timeout per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file of the project",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
TOOL_SCRIPT = '<tool_call>\n{"name": "read_file", "arguments": {"path": "src/main.py"}}\n</tool_call>'
SYSTEM = "You are a coding agent. Use the read_file tool to inspect the project before answering."


@dataclass
class LoopResult:
    ttft: list[float] = field(default_factory=list)  # seconds per turn
    turn_time: list[float] = field(default_factory=list)
    cached_tokens: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    tool_calls: int = 0


@dataclass
class ServerResult:
    name: str
    throughput: dict[int, float] = field(default_factory=dict)  # concurrency -> completion tokens/s
    loop: LoopResult = field(default_factory=LoopResult)  # one agent
    parallel: list[LoopResult] = field(default_factory=list)  # --agents agents at once
    parallel_wall: float = 0.0
    peak_rss: int = 0
    mlx_peak: int | None = None
    errors: list[str] = field(default_factory=list)


# -- models -----------------------------------------------------------------------------------------------------
def tiny_models(cache: Path, size: str) -> tuple[str, str]:
    from engines.tiny import TinyShape, ensure_tiny_model

    if size == "small":
        shape = TinyShape(max_context=32768)
    else:
        shape = TinyShape(hidden_size=256, num_hidden_layers=4, intermediate_size=768, num_attention_heads=8,
                          num_key_value_heads=4, max_context=32768)
    random = ensure_tiny_model(cache, seed=1, shape=shape)
    scripted = ensure_tiny_model(cache, script=TOOL_SCRIPT, shape=shape)
    return str(random), str(scripted)


def eos_bias(model: str) -> dict[str, float] | None:
    cfg = Path(model) / "config.json"
    if not cfg.exists():
        return None
    eos = json.loads(cfg.read_text()).get("eos_token_id")
    ids = eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else []
    return {str(i): -100.0 for i in ids} or None


# -- servers ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return int(out.stdout.strip() or 0) * 1024


class Server:
    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.port, self.env, self.log_path = name, argv, port, env, log_path
        self.url = f"http://127.0.0.1:{port}"
        # mlx_lm.server loads whatever "model" names, so it gets its own default name
        self.model_name = "bench" if name == "ours" else "default_model"
        self.proc: asyncio.subprocess.Process | None = None
        self.peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env, stdout=log,
                                                             stderr=asyncio.subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with s.get(self.url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}")
                await asyncio.sleep(0.2)
        self._sampler = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        assert self.proc is not None
        while self.proc.returncode is None:
            self.peak_rss = max(self.peak_rss, await asyncio.to_thread(rss_bytes, self.proc.pid))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def make_server(kind: str, model: str, workdir: Path, max_batch: int, worker_args: list[str]) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if Path(model).exists():
        env["HF_HUB_OFFLINE"] = "1"
    if kind == "ours":
        argv = [sys.executable, "-m", "engines", "--model", model, "--host", "127.0.0.1", "--port", str(port),
                "--max-batch", str(max_batch), "--name", "bench", "--log-level", "warning", *worker_args]
    else:
        if Path(model).exists():  # mlx_lm.server needs a hub cache folder for /v1/models; keep it private
            home = workdir / "hf_home"
            (home / "hub").mkdir(parents=True, exist_ok=True)
            env["HF_HOME"] = str(home)
        argv = [sys.executable, "-m", "mlx_lm.server", "--model", model, "--host", "127.0.0.1", "--port",
                str(port), "--decode-concurrency", str(max_batch), "--log-level", "WARNING"]
    return Server(kind, argv, port, env, workdir / f"{kind}.log")


# -- client -------------------------------------------------------------------------------------------------------
@dataclass
class StreamResult:
    ttft: float | None
    total: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int
    content: str
    tool_calls: list[dict[str, Any]]


async def stream_chat(session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: float) -> StreamResult:
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft = None
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    async with session.post(url + "/v1/chat/completions", json=body,
                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"stream error: {chunk['error']}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                if (text or reasoning or delta.get("tool_calls")) and ttft is None:
                    ttft = time.perf_counter() - start
                content.append(text)
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(tc.get("index", len(calls)), {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
    details = usage.get("prompt_tokens_details") or {}
    return StreamResult(ttft, time.perf_counter() - start, int(usage.get("completion_tokens") or 0),
                        int(usage.get("prompt_tokens") or 0), int(details.get("cached_tokens") or 0),
                        "".join(content), [calls[i] for i in sorted(calls)])


async def throughput(url: str, model: str, concurrency: int, max_tokens: int, bias: dict[str, float] | None,
                     timeout: float, min_seconds: float) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        warm = {"model": model, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4}
        await stream_chat(s, url, warm, timeout)

        def body(i: int) -> dict[str, Any]:
            b: dict[str, Any] = {
                "model": model, "max_tokens": max_tokens, "temperature": 0.0,
                "messages": [{"role": "user", "content": f"Request {i} of {concurrency}: write a long story "
                                                         f"about a lighthouse keeper number {i * 7919 % 1000}."}],
            }
            if bias:
                b["logit_bias"] = bias
            return b

        tokens, wall, wave = 0, 0.0, 0
        while wave == 0 or wall < min_seconds:  # whole waves of C requests, for at least min_seconds
            start = time.perf_counter()
            results = await asyncio.gather(*(stream_chat(s, url, body(wave * concurrency + i), timeout)
                                             for i in range(concurrency)))
            wall += time.perf_counter() - start
            tokens += sum(r.completion_tokens for r in results)
            wave += 1
    return tokens / wall


def tool_output(turn: int, chars: int) -> str:
    lines = [f"# file {turn}: src/module_{turn}.py"]
    i = 0
    while len("\n".join(lines)) < chars:
        lines.append(f"def function_{turn}_{i}(value: int) -> int:\n    return value * {i + turn} + {i}")
        i += 1
    return "\n".join(lines)


async def agent_loop(url: str, model: str, turns: int, tool_chars: int, max_tokens: int, timeout: float,
                     agent: int = 0) -> LoopResult:
    result = LoopResult()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Task {agent}: find where the configuration is loaded and explain it."},
    ]
    async with aiohttp.ClientSession() as s:
        for turn in range(turns):
            body = {"model": model, "messages": messages, "tools": [TOOL], "max_tokens": max_tokens,
                    "temperature": 0.0}
            r = await stream_chat(s, url, body, timeout)
            result.ttft.append(r.ttft if r.ttft is not None else r.total)
            result.turn_time.append(r.total)
            result.prompt_tokens.append(r.prompt_tokens)
            result.cached_tokens.append(r.cached_tokens)
            output = tool_output(turn + 100 * agent, tool_chars)
            if r.tool_calls:
                result.tool_calls += 1
                calls = [{"id": c["id"] or f"call_{turn}_{i}", "type": "function",
                          "function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
                         for i, c in enumerate(r.tool_calls)]
                messages.append({"role": "assistant", "content": r.content or None, "tool_calls": calls})
                messages += [{"role": "tool", "tool_call_id": c["id"], "content": output} for c in calls]
            else:
                messages.append({"role": "assistant", "content": r.content})
                messages.append({"role": "user", "content": f"Tool output:\n{output}\nContinue."})
    return result


# -- report -------------------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        import mlx.core as mx

        info = mx.device_info()
        dev = f"{mx.default_device()} {info.get('device_name') or info.get('architecture') or ''}".strip()
        mem = info.get("memory_size")
        dev += f", {mem / 2**30:.0f} GiB" if mem else ""
    except Exception:
        dev = "unknown device"
    return f"{platform.system()} {platform.release()} {cpu}, {os.cpu_count()} CPUs, MLX on {dev}"


def fmt_ratio(a: float | None, b: float | None, lower_is_better: bool = False) -> str:
    if not a or not b:
        return "-"
    return f"{(b / a if lower_is_better else a / b):.2f}x"


def report(results: dict[str, ServerResult], args: argparse.Namespace, models: tuple[str, str]) -> str:
    ours, base = results.get("ours"), results.get("mlx_lm")
    out = [
        f"agentgate engine bench — {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {machine()}",
        f"python {platform.python_version()}, mlx {_version('mlx')}, mlx-lm {_version('mlx-lm')}"
        + (f"; our worker with {args.worker_args}" if args.worker_args else ""),
        f"models: throughput={models[0]}  agent-loop={models[1]}"
        + ("  (tiny, generated offline with RANDOM weights: measures serving overhead only)" if args.tiny else ""),
        "",
        f"{'metric':<34}{'agentgate':>14}{'mlx_lm.server':>16}{'ratio':>10}",
    ]

    def row(name: str, a: float | None, b: float | None, unit: str, lower: bool = False) -> None:
        fa = f"{a:.1f}{unit}" if a is not None else "-"
        fb = f"{b:.1f}{unit}" if b is not None else "-"
        out.append(f"{name:<34}{fa:>14}{fb:>16}{fmt_ratio(a, b, lower):>10}")

    for c in args.concurrency:
        row(f"throughput c={c} (tok/s)", ours.throughput.get(c) if ours else None,
            base.throughput.get(c) if base else None, "")
    def loop_rows(prefix: str, get: Any) -> None:
        a, b = (get(ours) if ours else None), (get(base) if base else None)
        for label, pick in (("TTFT turn 1 (ms)", lambda r: r.ttft[0] * 1000),
                            ("TTFT last turn (ms)", lambda r: r.ttft[-1] * 1000),
                            ("TTFT mean (ms)", lambda r: 1000 * sum(r.ttft) / len(r.ttft)),
                            ("total (s)", lambda r: sum(r.turn_time))):
            row(f"{prefix} {label}", pick(a) if a and a.ttft else None, pick(b) if b and b.ttft else None, "",
                lower=True)

    def merged(r: ServerResult) -> LoopResult | None:
        if not r.parallel:
            return None
        n = len(r.parallel[0].ttft)
        ttft = [sum(p.ttft[i] for p in r.parallel) / len(r.parallel) for i in range(n)]
        return LoopResult(ttft=ttft, turn_time=[r.parallel_wall])

    loop_rows(f"1 agent x{args.turns}:", lambda r: r.loop)
    if args.agents:
        loop_rows(f"{args.agents} agents x{args.parallel_turns}:", merged)
    row("peak RSS (MiB)", ours.peak_rss / 2**20 if ours else None, base.peak_rss / 2**20 if base else None, "",
        lower=True)
    if ours and ours.mlx_peak is not None:
        out.append(f"{'agentgate MLX peak (MiB)':<34}{ours.mlx_peak / 2**20:>14.1f}")
    out.append("")
    for r in results.values():
        if r.loop.ttft:
            out.append(f"{r.name}: 1 agent, TTFT per turn (ms): " + " ".join(f"{t * 1000:.0f}" for t in r.loop.ttft))
            out.append(f"{r.name}: prompt tokens last turn {r.loop.prompt_tokens[-1]}, cached tokens per turn: "
                       + " ".join(str(c) for c in r.loop.cached_tokens)
                       + f"; turns with tool calls {r.loop.tool_calls}/{len(r.loop.ttft)}")
        if r.parallel:
            cached = sum(sum(p.cached_tokens) for p in r.parallel)
            prompt = sum(sum(p.prompt_tokens) for p in r.parallel)
            out.append(f"{r.name}: {len(r.parallel)} agents, cached/prompt tokens {cached}/{prompt}, "
                       f"turns with tool calls {sum(p.tool_calls for p in r.parallel)}")
        for e in r.errors:
            out.append(f"{r.name}: ERROR {e}")
    out.append("ratio: agentgate / mlx_lm.server for throughput, mlx_lm.server / agentgate for times and memory "
               "(above 1x: agentgate is better)")
    return "\n".join(out)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


async def bench_server(kind: str, models: tuple[str, str], args: argparse.Namespace, workdir: Path) -> ServerResult:
    result = ServerResult(kind)
    bias = eos_bias(models[0])
    for part, model in (("throughput", models[0]), ("agent", models[1])):
        if part == "agent" and args.turns == 0:
            continue
        server = make_server(kind, model, workdir, args.max_batch, shlex.split(args.worker_args))
        print(f"[{kind}] starting for the {part} part ...", file=sys.stderr)
        await server.start(args.start_timeout)
        try:
            if part == "throughput":
                for c in args.concurrency:
                    result.throughput[c] = await throughput(server.url, server.model_name, c, args.max_tokens,
                                                            bias, args.timeout, args.min_seconds)
                    print(f"[{kind}] c={c}: {result.throughput[c]:.1f} tok/s", file=sys.stderr)
            else:
                result.loop = await agent_loop(server.url, server.model_name, args.turns, args.tool_chars,
                                               args.agent_max_tokens, args.timeout)
                print(f"[{kind}] agent loop: TTFT last turn {result.loop.ttft[-1] * 1000:.0f} ms", file=sys.stderr)
                if args.agents:
                    start = time.perf_counter()
                    result.parallel = list(await asyncio.gather(*(
                        agent_loop(server.url, server.model_name, args.parallel_turns, args.tool_chars,
                                   args.agent_max_tokens, args.timeout, agent=i + 1)
                        for i in range(args.agents))))
                    result.parallel_wall = time.perf_counter() - start
                    print(f"[{kind}] {args.agents} parallel agents: {result.parallel_wall:.1f} s", file=sys.stderr)
            if kind == "ours":
                async with aiohttp.ClientSession() as s, s.get(server.url + "/stats") as r:
                    stats = await r.json()
                result.mlx_peak = max(result.mlx_peak or 0, int(stats["memory"]["peak"]))
        except Exception as exc:
            result.errors.append(f"{part}: {type(exc).__name__}: {exc}")
        finally:
            result.peak_rss = max(result.peak_rss, server.peak_rss)
            await server.stop()
    return result


async def main_async(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="agentgate-bench-"))
    try:
        models = (args.model, args.model) if args.model else tiny_models(workdir / "models", args.tiny_size)
        results: dict[str, ServerResult] = {}
        for kind in ("ours", "mlx_lm"):
            if args.only and args.only != kind:
                continue
            results[kind] = await bench_server(kind, models, args, workdir)
        text = report(results, args, models)
        print(text)
        payload = {"date": dt.datetime.now().astimezone().isoformat(), "machine": machine(),
                   "models": models, "args": {k: v for k, v in vars(args).items() if k != "json"},
                   "results": {k: asdict(v) for k, v in results.items()}, "report": text}
        return (1 if any(r.errors for r in results.values()) else 0), payload
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder kept: {workdir}", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model path or Hugging Face id (default: tiny generated models)")
    p.add_argument("--tiny-size", choices=["small", "medium"], default="small",
                   help="shape of the generated models: small (hidden 64, 2 layers) or medium (hidden 256, 4 layers)")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per throughput request")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="repeat waves of C requests until each concurrency level has run this long")
    p.add_argument("--turns", type=int, default=20, help="agent-loop turns (0 skips the loop)")
    p.add_argument("--tool-chars", type=int, default=600, help="characters of each tool result")
    p.add_argument("--agent-max-tokens", type=int, default=128)
    p.add_argument("--agents", type=int, default=8, help="agent loops run at once in the parallel part (0: skip)")
    p.add_argument("--parallel-turns", type=int, default=8, help="turns of each parallel agent")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--only", choices=["ours", "mlx_lm"])
    p.add_argument("--worker-args", default="",
                   help='extra options for our worker, e.g. "--cpu-threads 1" to measure without split attention')
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds for a server to become ready")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the work folder (server logs, built models)")
    args = p.parse_args(argv)
    args.tiny = args.model is None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code, payload = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
