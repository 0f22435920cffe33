"""Engine bench: agentgate's MLX worker vs `mlx_lm.server`, vllm-mlx and Rapid-MLX on the same model, in one run.

Usage (from the repository root):
    .venv/bin/python bench/engine/run.py                       # tiny generated models (random weights)
    .venv/bin/python bench/engine/run.py --model mlx-community/Qwen3-4B-Instruct-2507-4bit
    options: --tiny-size small,medium  --concurrency 1,8,32  --max-tokens 128  --turns 20  --tool-chars 600
             --agents 8  --parallel-turns 8  --servers ours,mlx_lm,vllm_mlx,rapid_mlx
             --worker-args "--cpu-threads 1"  --rounds 3  --json results.json
             --peer-blas openblas  (the peers with our OpenBLAS preloaded)  --servers ours,ours_bundled

Peers: `mlx_lm.server` runs from our own environment; vllm-mlx (with --continuous-batching) and Rapid-MLX are
installed by the bench into their own virtualenvs under --peers-dir (`pip install "mlx[cpu]" vllm-mlx` /
`rapid-mlx`; the only step that uses the network). A peer that cannot be installed is reported, not fatal.
Where `unshare` works (Linux, root), the bench then re-runs itself inside `unshare --net` with only `lo` up, so
no server can reach anything beyond 127.0.0.1; peers also run with telemetry off (RAPID_MLX_TELEMETRY=0,
DO_NOT_TRACK=1, HF_HUB_OFFLINE=1), a fresh HOME (so ~/.cache/vllm-mlx starts empty) and Rapid-MLX with
--disable-disk-caches.

Each server is started on 127.0.0.1 (one after the other, never two at once, same settings otherwise) and
measured with the same raw-SSE client:
  * throughput: for each concurrency C, waves of C streaming chat requests with distinct prompts run at once
    (repeated for at least --min-seconds); the aggregate rate is completion tokens / wall time. Every server gets
    the same requests: the tiny throughput model never picks a special token (see visible_only), so each request
    streams visible text to exactly --max-tokens tokens without EOS suppression (a real model gets logit_bias,
    or ignore_eos where a server rejects logit_bias). --rounds N repeats the throughput part, servers still one
    at a time, and reports each round with the load average.
  * agent loop: a --turns turn tool-calling conversation. Each turn re-sends the whole conversation plus the
    assistant's tool call and a new tool result of --tool-chars characters, as coding agents do. TTFT is the
    time to the first streamed delta (text, reasoning or tool call); with a prefix cache only the new suffix
    of each turn is prefilled, so TTFT grows with the attention cost of the context, not with its prefill.
  * resume after restart: right after the loop the server is stopped (SIGTERM, as the supervisor unloads an
    engine after its ttl or on an LRU swap) and started again; the TTFT of the conversation's next turn is
    compared with the warm loop's last turn. Our worker keeps its prefix cache on disk (--kv-dir).
  * parallel agents: --agents such loops at once (--parallel-turns turns each), as sub-agents do; mean TTFT
    per turn across the agents, and the wall time.
  * memory: peak resident set size of the server process (sampled every 100 ms), and for our worker the MLX
    peak reported by /stats.
  * BLAS: the library each server's MLX calls for its CPU matmul, read from the server process's libmlx.so import
    slot for cblas_sgemm (engines/worker/blas.py). Our worker binds OpenBLAS on Linux; the peers run the mlx[cpu]
    wheel's reference BLAS unless --peer-blas openblas preloads the same OpenBLAS into them (LD_PRELOAD).
    `ours_bundled` is our worker with --blas bundled.
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
import statistics
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
    throughput: dict[int, float] = field(default_factory=dict)  # concurrency -> completion tokens/s (median)
    rounds: dict[int, list[float]] = field(default_factory=dict)  # concurrency -> tok/s of each --rounds round
    short_requests: int = 0  # throughput requests that ended before --max-tokens
    loads: dict[int, list[float]] = field(default_factory=dict)  # concurrency -> 1-minute load average after each
    loop: LoopResult = field(default_factory=LoopResult)  # one agent
    parallel: list[LoopResult] = field(default_factory=list)  # --agents agents at once
    parallel_wall: float = 0.0
    resume_ttft: float | None = None  # next turn of the loop's conversation after a restart (seconds)
    peak_rss: int = 0
    mlx_peak: int | None = None
    blas: str = "?"  # the library MLX's cblas_sgemm is bound to in the server (see server_blas)
    errors: list[str] = field(default_factory=list)


# -- models -----------------------------------------------------------------------------------------------------
def tiny_models(cache: Path, size: str, *, visible: bool = True) -> tuple[str, str]:
    """The throughput model (its visible-text copy unless `visible` is False) and the scripted agent model."""
    from engines.worker.tiny import TinyShape, ensure_tiny_model

    if size == "small":
        shape = TinyShape(max_context=32768)
    else:
        shape = TinyShape(hidden_size=256, num_hidden_layers=4, intermediate_size=768, num_attention_heads=8,
                          num_key_value_heads=4, max_context=32768)
    random = ensure_tiny_model(cache, seed=1, shape=shape)
    scripted = ensure_tiny_model(cache, script=TOOL_SCRIPT, shape=shape)
    throughput_model = visible_only(random, cache / f"{random.name}-visible") if visible else random
    return str(throughput_model), str(scripted)


def visible_only(model: Path, out: Path) -> Path:
    """A copy of a random-weight model whose greedy decoding only ever picks tokens that are plain ASCII text.

    With random weights, greedy decoding otherwise picks special tokens (EOS, <|im_start|>, ids past the
    tokenizer's vocabulary) and byte tokens that do not form valid UTF-8. Servers treat those differently: one
    asked to ignore EOS, or one whose detokenizer holds back incomplete characters (Rapid-MLX), streams almost
    nothing, while another streams a text delta per token. Zeroing those tokens' rows of the output layer gives
    them a logit of 0, below the best of hundreds of random logits, so every server decodes the same visible text
    to max_tokens from the same request, with no EOS suppression."""
    if (out / "model.safetensors").exists():
        return out
    import mlx.core as mx
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    special = {t["id"] for t in json.loads((model / "tokenizer.json").read_text()).get("added_tokens", [])}
    plain = {i for i in range(tokenizer.get_vocab_size(with_added_tokens=True))
             if i not in special and _plain_text(tokenizer.decode([i], skip_special_tokens=False))}
    weights = dict(mx.load(str(model / "model.safetensors")))
    head = weights["lm_head.weight"]
    keep = mx.array([i in plain for i in range(head.shape[0])])[:, None]
    weights["lm_head.weight"] = mx.where(keep, head, mx.zeros_like(head))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp, ignore=shutil.ignore_patterns("model.safetensors"))
    mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
    tmp.rename(out)
    return out


def _plain_text(text: str) -> bool:
    return bool(text) and text.isascii() and text.isprintable()


def no_eos(kind: str, bias: dict[str, float] | None, args: argparse.Namespace) -> dict[str, Any]:
    """Request fields that keep a server decoding to max_tokens: none for the tiny models (their special tokens
    are never picked, see visible_only); for a real model, EOS banned with logit_bias, or ignore_eos for Rapid-MLX
    (which rejects logit_bias) and where the model's EOS is not known (agentgate's worker refuses ignore_eos, which
    it does not act on: the run stops there rather than compare runs of different lengths)."""
    if args.tiny:
        return {}
    if kind == "rapid_mlx" or not bias:
        return {"ignore_eos": True}
    return {"logit_bias": bias}


def eos_bias(model: str) -> dict[str, float] | None:
    """EOS banned, as logit_bias: its ids from the model's config.json (a folder, or a hub id's cached copy)."""
    cfg = Path(model) / "config.json"
    if not cfg.exists():
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import HFValidationError

        try:  # (the cache only: nothing is downloaded)
            cached = try_to_load_from_cache(model, "config.json")
        except HFValidationError:  # a path, not a hub id
            return None
        if not isinstance(cached, str):
            return None
        cfg = Path(cached)
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


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (all its threads; 0 where /proc is not there)."""
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.exists():
        return 0.0
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SERVERS = {"ours": "agentgate", "mlx_lm": "mlx_lm.server", "vllm_mlx": "vllm-mlx", "rapid_mlx": "Rapid-MLX",
           "ours_bundled": "agentgate/ref"}
DEFAULT_SERVERS = ["ours", "mlx_lm", "vllm_mlx", "rapid_mlx"]  # ours_bundled: our worker with --blas bundled
PEER_PACKAGES = {"vllm_mlx": ("vllm-mlx", "vllm-mlx"), "rapid_mlx": ("rapid-mlx", "rapid-mlx")}  # (pip, command)
QUIET_ENV = {"RAPID_MLX_TELEMETRY": "0", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
             "HF_HUB_DISABLE_TELEMETRY": "1", "VLLM_NO_USAGE_STATS": "1"}


def peer_venv(peers_dir: Path, kind: str) -> Path:
    return peers_dir / PEER_PACKAGES[kind][0]


def install_peer(peers_dir: Path, kind: str) -> str | None:
    """Create the peer's own virtualenv once (`pip install "mlx[cpu]" <package>`); an error text, or None."""
    package, command = PEER_PACKAGES[kind]
    venv = peer_venv(peers_dir, kind)
    stamp = venv / ".installed"
    if stamp.exists() and (venv / "bin" / command).exists():
        return None
    mlx = '"mlx[cpu]"' if sys.platform == "linux" else "mlx"
    print(f"[{kind}] installing {package} into {venv} ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", mlx.strip('"'), package],
                       check=True, capture_output=True, timeout=3600)
    except (subprocess.SubprocessError, OSError) as exc:
        out = getattr(exc, "stderr", b"") or b""
        return f"could not install {package}: {exc} {out.decode(errors='replace')[-500:]}"
    stamp.touch()
    return None


def peer_version(peers_dir: Path, kind: str) -> str:
    py = peer_venv(peers_dir, kind) / "bin" / "python"
    pkg = PEER_PACKAGES[kind][0]
    out = subprocess.run([str(py), "-c", f"from importlib.metadata import version; print(version({pkg!r}))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


class Server:
    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str], log_path: Path,
                 model_name: str) -> None:
        self.name, self.argv, self.port, self.env, self.log_path = name, argv, port, env, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.model_name = model_name
        self.proc: asyncio.subprocess.Process | None = None
        self.peak_rss = 0
        self._sampler: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        with self.log_path.open("ab") as log:
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
            self.peak_rss = max(self.peak_rss, await asyncio.to_thread(tree_rss, self.proc.pid))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def server_blas(pid: int) -> str:
    """Which library MLX's `cblas_sgemm` is bound to in a server (the process or a descendant that has libmlx.so
    loaded), read from its libmlx.so import slot (engines/worker/blas.py `bound_library`)."""
    from engines.worker.blas import bound_library

    for proc in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, ValueError):
            library = bound_library("cblas_sgemm", proc)
            if library is not None:
                name = Path(library).name
                kind = ("openblas" if name.startswith("libagentgate_openblas") else
                        "bundled" if name.startswith("libblas") else name)
                threads = _environ(proc).get("OPENBLAS_NUM_THREADS") if kind == "openblas" else None
                return f"{kind} ({threads} thread{'' if threads == '1' else 's'})" if threads else kind
    return "?"


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(c) for c in children.read_text().split()] if children.exists() else []
    return found + [d for c in found for d in descendants(c)]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item)


def tree_rss(pid: int) -> int:
    """RSS of a process and its children (peers may serve from a child process)."""
    total = rss_bytes(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += tree_rss(int(child))
    return total


def make_server(kind: str, model: str, workdir: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AGENTGATE_BLAS", None)
    if Path(model).exists():
        env["HF_HUB_OFFLINE"] = "1"
    max_batch = str(args.max_batch)
    if kind.startswith("ours"):
        blas_args = ["--blas", "bundled"] if kind == "ours_bundled" else []
        argv = [sys.executable, "-m", "engines", "--model", model, "--host", "127.0.0.1", "--port", str(port),
                "--max-batch", max_batch, "--name", "bench", "--log-level", "warning",
                "--kv-dir", str(workdir / f"kv-{kind}"), *blas_args, *shlex.split(args.worker_args)]
        return Server(kind, argv, port, env, workdir / f"{kind}.log", "bench")
    # peers: a private HOME (empty caches), their hub cache folder private too, telemetry off
    home = workdir / f"home-{kind}"
    (home / "hf" / "hub").mkdir(parents=True, exist_ok=True)
    env.update(QUIET_ENV, HOME=str(home), HF_HOME=str(home / "hf"))
    if args.peer_openblas is not None:  # the same OpenBLAS as our worker, bound the same way (global scope first)
        env.update(LD_PRELOAD=str(args.peer_openblas), OPENBLAS_NUM_THREADS=str(args.blas_threads))
    if kind == "mlx_lm":
        argv = [sys.executable, "-m", "mlx_lm.server", "--model", model, "--host", "127.0.0.1", "--port",
                str(port), "--decode-concurrency", max_batch, "--log-level", "WARNING"]
        return Server(kind, argv, port, env, workdir / f"{kind}.log", "default_model")
    exe = str(peer_venv(args.peers_dir, kind) / "bin" / PEER_PACKAGES[kind][1])
    argv = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
            "--max-num-seqs", max_batch, "--completion-batch-size", max_batch]
    if kind == "vllm_mlx":
        argv += ["--continuous-batching", "--offline", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    else:  # its tool-call grammar needs Metal kernels (fails on the CPU backend): tool calls stay in the text
        argv += ["--disable-disk-caches", "--no-tool-call-parser"]
    argv += shlex.split(getattr(args, f"{kind}_args"))
    return Server(kind, argv, port, env, workdir / f"{kind}.log", "bench")


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


async def stream_chat(session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: float,
                      headers: dict[str, str] | None = None) -> StreamResult:
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft = None
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers,
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


async def throughput(url: str, model: str, concurrency: int, max_tokens: int, no_eos: dict[str, Any],
                     timeout: float, min_seconds: float) -> tuple[float, int]:
    """Aggregate completion tokens/s of waves of `concurrency` requests, and how many requests ended before
    max_tokens. `no_eos`: the fields that keep the server from stopping early (none for the tiny models)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        warm = {"model": model, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4}
        await stream_chat(s, url, warm, timeout)

        def body(i: int) -> dict[str, Any]:
            b: dict[str, Any] = {
                "model": model, "max_tokens": max_tokens, "temperature": 0.0,
                "messages": [{"role": "user", "content": f"Request {i} of {concurrency}: write a long story "
                                                         f"about a lighthouse keeper number {i * 7919 % 1000}."}],
            }
            return {**b, **no_eos}

        tokens, wall, wave, short = 0, 0.0, 0, 0
        while wave == 0 or wall < min_seconds:  # whole waves of C requests, for at least min_seconds
            start = time.perf_counter()
            results = await asyncio.gather(*(stream_chat(s, url, body(wave * concurrency + i), timeout)
                                             for i in range(concurrency)))
            wall += time.perf_counter() - start
            tokens += sum(r.completion_tokens for r in results)
            short += sum(r.completion_tokens < max_tokens for r in results)
            wave += 1
    return tokens / wall, short


def tool_output(turn: int, chars: int) -> str:
    lines = [f"# file {turn}: src/module_{turn}.py"]
    i = 0
    while len("\n".join(lines)) < chars:
        lines.append(f"def function_{turn}_{i}(value: int) -> int:\n    return value * {i + turn} + {i}")
        i += 1
    return "\n".join(lines)


async def agent_loop(url: str, model: str, turns: int, tool_chars: int, max_tokens: int, timeout: float,
                     agent: int = 0, conversation: list[dict[str, Any]] | None = None) -> LoopResult:
    """`turns` turns of one agent; `conversation` (if given) receives the messages, ready for the next turn."""
    result = LoopResult()
    messages: list[dict[str, Any]] = conversation if conversation is not None else []
    messages += [
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


async def resume_turn(url: str, model: str, messages: list[dict[str, Any]], max_tokens: int,
                      timeout: float) -> float:
    body = {"model": model, "messages": messages, "tools": [TOOL], "max_tokens": max_tokens, "temperature": 0.0}
    async with aiohttp.ClientSession() as s:
        r = await stream_chat(s, url, body, timeout)
    return r.ttft if r.ttft is not None else r.total


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


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _merged(r: ServerResult) -> LoopResult | None:
    if not r.parallel:
        return None
    n = min(len(p.ttft) for p in r.parallel)
    if n == 0:
        return None
    ttft = [sum(p.ttft[i] for p in r.parallel) / len(r.parallel) for i in range(n)]
    return LoopResult(ttft=ttft, turn_time=[r.parallel_wall])


def metrics(r: ServerResult, args: argparse.Namespace) -> dict[str, float | None]:
    """The table's rows for one server: name -> (value, lower is better)."""
    loop = r.loop.ttft
    last5 = loop[-5:] if len(loop) >= 5 else loop
    par = _merged(r)
    out: dict[str, float | None] = {}
    for c in args.concurrency:
        out[f"throughput c={c} (tok/s)"] = r.throughput.get(c)
    out[f"1 agent x{args.turns}: TTFT turn 1 (ms)"] = loop[0] * 1000 if loop else None
    out[f"1 agent x{args.turns}: TTFT mean of last 5 turns (ms)"] = (_mean(last5) or 0) * 1000 if loop else None
    out[f"1 agent x{args.turns}: TTFT last turn (ms)"] = loop[-1] * 1000 if loop else None
    out[f"1 agent x{args.turns}: total (s)"] = sum(r.loop.turn_time) if loop else None
    out["resume after restart: TTFT (ms)"] = r.resume_ttft * 1000 if r.resume_ttft is not None else None
    out["resume after restart / warm last turn"] = (r.resume_ttft / loop[-1]
                                                    if r.resume_ttft is not None and loop else None)
    if args.agents:
        out[f"{args.agents} agents x{args.parallel_turns}: TTFT mean (ms)"] = (
            (_mean(par.ttft) or 0) * 1000 if par else None)
        out[f"{args.agents} agents x{args.parallel_turns}: total (s)"] = r.parallel_wall if par else None
    out["peak RSS (MiB)"] = r.peak_rss / 2**20 if r.peak_rss else None
    return out


def report(results: dict[str, ServerResult], args: argparse.Namespace, models: tuple[str, str],
           versions: dict[str, str]) -> str:
    kinds = list(results)
    out = [
        f"agentgate engine bench — {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {machine()}",
        f"python {platform.python_version()}, mlx {_version('mlx')}, mlx-lm {_version('mlx-lm')}; "
        + ", ".join(f"{SERVERS[k]} {v}" for k, v in versions.items())
        + (f"; our worker with {args.worker_args}" if args.worker_args else ""),
        "BLAS of MLX's CPU matmul in each server (cblas_sgemm as bound in the server process): "
        + ", ".join(f"{SERVERS[k]} {r.blas}" for k, r in results.items())
        + ("; peers run with our OpenBLAS preloaded (--peer-blas openblas)" if args.peer_openblas else ""),
        f"models: throughput={models[0]}  agent-loop={models[1]}"
        + ("  (tiny, generated offline with RANDOM weights: measures serving overhead only)" if args.tiny else ""),
        "",
    ]
    table = {k: metrics(results[k], args) for k in kinds}
    rows = list(next(iter(table.values())).keys()) if table else []
    width = max([len(r) for r in rows] + [10]) + 2
    header = f"{'metric':<{width}}" + "".join(f"{SERVERS[k]:>15}" for k in kinds)
    has_peers = "ours" in kinds and len(kinds) > 1
    out.append(header + (f"{'ours/best peer':>16}" if has_peers else ""))
    for row in rows:
        lower = "throughput" not in row
        line = f"{row:<{width}}"
        for k in kinds:
            v = table[k][row]
            line += f"{(f'{v:.2f}' if 'restart /' in row else f'{v:.1f}') if v is not None else '-':>15}"
        if has_peers and "restart /" not in row:
            mine = table["ours"][row]
            peers = [table[k][row] for k in kinds if k != "ours" and table[k][row]]
            best = (min(peers) if lower else max(peers)) if peers else None
            line += f"{f'{mine / best:.2f}x' if mine and best else '-':>16}"
        out.append(line)
    out.append("")
    out += rounds_lines(results, args)
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
        if r.short_requests:
            out.append(f"{r.name}: {r.short_requests} throughput requests ended before --max-tokens")
        if r.mlx_peak:
            out.append(f"{r.name}: MLX peak memory {r.mlx_peak / 2**20:.1f} MiB")
        for e in r.errors:
            out.append(f"{r.name}: ERROR {e}")
    out.append("ours/best peer: agentgate divided by the best of the other servers (throughput: above 1x is better; "
               "times and memory: below 1x is better)")
    return "\n".join(out)


def rounds_lines(results: dict[str, ServerResult], args: argparse.Namespace) -> list[str]:
    """With --rounds: each round's tok/s and load average, and ours / the best peer round by round (the servers
    of one round ran minutes apart, so a round's ratio is less moved by the machine's other load than the medians').
    """
    if args.rounds < 2:
        return []
    out = []
    for c in args.concurrency:
        for r in results.values():
            if r.rounds.get(c):
                out.append(f"{r.name}: c={c} tok/s per round " + " ".join(f"{v:.1f}" for v in r.rounds[c])
                           + "  (load " + " ".join(f"{v:.1f}" for v in r.loads[c]) + ")")
        ours = results.get("ours")
        peers = [r for k, r in results.items() if k != "ours" and r.rounds.get(c)]
        if ours is not None and ours.rounds.get(c) and peers:
            n = min(len(ours.rounds[c]), *(len(p.rounds[c]) for p in peers))
            ratios = [ours.rounds[c][i] / max(p.rounds[c][i] for p in peers) for i in range(n)]
            out.append(f"ours/best peer c={c} per round: " + " ".join(f"{x:.2f}x" for x in ratios)
                       + f"  (median {statistics.median(ratios):.2f}x)")
    return out


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


async def bench_server(kind: str, models: tuple[str, str], args: argparse.Namespace, workdir: Path,
                       result: ServerResult | None = None) -> ServerResult:
    """All parts of one server; given the `result` of an earlier round, its throughput part only (one more
    round of each concurrency)."""
    again = result is not None
    result = result or ServerResult(kind)
    bias = eos_bias(models[0])
    for part, model in (("throughput", models[0]), ("agent", models[1])):
        if part == "agent" and (args.turns == 0 or again):
            continue
        server = make_server(kind, model, workdir, args)
        print(f"[{kind}] starting for the {part} part ...", file=sys.stderr)
        try:
            await server.start(args.start_timeout)
            if server.proc is not None and sys.platform == "linux":
                result.blas = await asyncio.to_thread(server_blas, server.proc.pid)
                if kind.startswith("ours") and result.blas == "openblas":  # it sets its thread count itself
                    async with aiohttp.ClientSession() as s, s.get(server.url + "/stats") as r:
                        threads = (await r.json())["blas"].get("threads")
                        result.blas += f" ({threads} thread{'' if threads == 1 else 's'})"
                print(f"[{kind}] BLAS: {result.blas}", file=sys.stderr)
            if part == "throughput":
                for c in args.concurrency:
                    rate, short = await throughput(server.url, server.model_name, c, args.max_tokens,
                                                   no_eos(kind, bias, args), args.timeout, args.min_seconds)
                    result.short_requests += short
                    result.rounds.setdefault(c, []).append(rate)
                    result.loads.setdefault(c, []).append(os.getloadavg()[0])
                    result.throughput[c] = statistics.median(result.rounds[c])
                    print(f"[{kind}] c={c}: {rate:.1f} tok/s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            else:
                conversation: list[dict[str, Any]] = []
                result.loop = await agent_loop(server.url, server.model_name, args.turns, args.tool_chars,
                                               args.agent_max_tokens, args.timeout, conversation=conversation)
                print(f"[{kind}] agent loop: TTFT last turn {result.loop.ttft[-1] * 1000:.0f} ms", file=sys.stderr)
                if args.resume:  # unload and load again (as a ttl unload or an LRU swap), then the next turn
                    result.peak_rss = max(result.peak_rss, server.peak_rss)
                    await server.stop()
                    server = make_server(kind, model, workdir, args)
                    await server.start(args.start_timeout)
                    try:  # a failure here (a cold prefill past --timeout) still leaves the parallel part to run
                        result.resume_ttft = await resume_turn(server.url, server.model_name, conversation,
                                                               args.agent_max_tokens, args.timeout)
                        print(f"[{kind}] resumed after a restart: TTFT {result.resume_ttft * 1000:.0f} ms",
                              file=sys.stderr)
                    except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        result.errors.append(f"resume: {type(exc).__name__}: {exc}")
                        print(f"[{kind}] ERROR resuming after a restart: {type(exc).__name__} {exc}",
                              file=sys.stderr)
                if args.agents:
                    start = time.perf_counter()
                    result.parallel = list(await asyncio.gather(*(
                        agent_loop(server.url, server.model_name, args.parallel_turns, args.tool_chars,
                                   args.agent_max_tokens, args.timeout, agent=i + 1)
                        for i in range(args.agents))))
                    result.parallel_wall = time.perf_counter() - start
                    print(f"[{kind}] {args.agents} parallel agents: {result.parallel_wall:.1f} s", file=sys.stderr)
            if kind.startswith("ours"):
                async with aiohttp.ClientSession() as s, s.get(server.url + "/stats") as r:
                    stats = await r.json()
                result.mlx_peak = max(result.mlx_peak or 0, int(stats["memory"]["peak"]))
        except Exception as exc:
            result.errors.append(f"{part}: {type(exc).__name__}: {exc}")
            print(f"[{kind}] ERROR in the {part} part: {exc}", file=sys.stderr)
        finally:
            result.peak_rss = max(result.peak_rss, server.peak_rss)
            await server.stop()
    return result


async def main_async(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="agentgate-bench-"))
    payload: dict[str, Any] = {"date": dt.datetime.now().astimezone().isoformat(), "machine": machine(),
                               "args": {k: str(v) for k, v in vars(args).items() if k != "json"}, "shapes": {}}
    failed = False
    try:
        versions = {k: peer_version(args.peers_dir, k) for k in args.servers if k in PEER_PACKAGES}
        texts = []
        for size in args.tiny_size if args.tiny else ["model"]:
            shape_dir = workdir / size
            shape_dir.mkdir()
            models = (args.model, args.model) if args.model else tiny_models(workdir / "models", size)
            results: dict[str, ServerResult] = {}
            for kind in args.servers:
                if kind in args.install_errors:
                    results[kind] = ServerResult(kind, errors=[args.install_errors[kind]])
                    continue
                results[kind] = await bench_server(kind, models, args, shape_dir)
            for n in range(1, args.rounds):  # more throughput rounds, the servers' order reversed every other one
                for kind in args.servers[::-1] if n % 2 else args.servers:
                    if kind not in args.install_errors:
                        await bench_server(kind, models, args, shape_dir, results[kind])
            text = (f"== shape: {size} ==\n" if args.tiny else "") + report(results, args, models, versions)
            print(text, flush=True)
            texts.append(text)
            failed = failed or any(r.errors for r in results.values())
            payload["shapes"][size] = {"models": models, "results": {k: asdict(v) for k, v in results.items()},
                                       "report": text}
        payload["report"] = "\n\n".join(texts)
        return (1 if failed else 0), payload
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work folder kept: {workdir}", file=sys.stderr)


# -- constrained decoding A/B ----------------------------------------------------------------------------------
CONSTRAINED_TOOL = {
    "type": "function",
    "function": {"name": "edit_file", "parameters": {"type": "object", "properties": {
        "path": {"type": "string"}, "line": {"type": "integer", "minimum": 1, "maximum": 100000},
        "mode": {"enum": ["insert", "replace", "delete"]}, "dry_run": {"type": "boolean"},
        "lines": {"type": "array", "items": {"type": "string"}}},
        "required": ["path", "line", "mode", "dry_run", "lines"]}},
}


async def decode_waves(url: str, model: str, concurrency: int, max_tokens: int, bias: dict[str, float] | None,
                       timeout: float, min_seconds: float, wave: int, pid: int | None = None
                       ) -> tuple[float, float, int, float]:
    """One round at concurrency C, pairs of waves for at least `min_seconds`: the constrained wave, then the
    unconstrained wave of the same requests,
    each request limited to the tokens its constrained twin produced (EOS banned), so both waves decode the same
    number of tokens per stream and the batch shrinks the same way. The prompts are prefilled once before (a
    max_tokens 1 wave), so both waves start from a prefix-cache hit and the wall time is decode time. Returns
    (constrained tok/s, unconstrained tok/s, mean tokens per request, the server's CPU time for the
    unconstrained waves over that for the constrained ones: a ratio the machine's other load moves less than
    wall time). Every request asks for a call with
    tool_choice "required"; unconstrained requests send `x-agentgate-constrain: off`."""
    off = {"x-agentgate-constrain": "off"}

    def body(i: int, limit: int) -> dict[str, Any]:
        b: dict[str, Any] = {"model": model, "max_tokens": limit, "temperature": 0.0,
                             "tools": [CONSTRAINED_TOOL], "tool_choice": "required",
                             "messages": [{"role": "user", "content": f"Edit {i}: fix the bug in file {i}."}]}
        if bias:
            b["logit_bias"] = bias
        return b

    con_wall = unc_wall = con_cpu = unc_cpu = 0.0
    tokens = requests = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        while requests == 0 or con_wall < min_seconds:  # whole pairs of waves, each pair on new prompts
            ids = [(wave * 1000 + requests) * concurrency + i for i in range(concurrency)]
            await asyncio.gather(*(stream_chat(s, url, body(i, 1), timeout, off) for i in ids))
            start, cpu = time.perf_counter(), cpu_seconds(pid)
            con = await asyncio.gather(*(stream_chat(s, url, body(i, max_tokens), timeout) for i in ids))
            con_wall += time.perf_counter() - start
            con_cpu += cpu_seconds(pid) - cpu
            lengths = [max(1, r.completion_tokens) for r in con]
            start, cpu = time.perf_counter(), cpu_seconds(pid)
            unc = await asyncio.gather(*(stream_chat(s, url, body(i, n), timeout, off)
                                         for i, n in zip(ids, lengths, strict=True)))
            unc_wall += time.perf_counter() - start
            unc_cpu += cpu_seconds(pid) - cpu
            if sum(r.completion_tokens for r in unc) != sum(lengths):
                raise RuntimeError("the unconstrained wave did not generate the constrained wave's token counts")
            tokens += sum(lengths)
            requests += len(ids)
    return tokens / con_wall, tokens / unc_wall, round(tokens / requests), unc_cpu / con_cpu if con_cpu else 0.0


async def constraint_ab(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """`--constrain-ab`: our worker only; decode tok/s with and without a tool-call grammar at each concurrency,
    in paired rounds of the same requests and token counts (`decode_waves`)."""
    workdir = Path(tempfile.mkdtemp(prefix="agentgate-bench-"))
    try:
        model = args.model or tiny_models(workdir / "models", args.tiny_size[0], visible=False)[0]
        server = make_server("ours", model, workdir, args)
        await server.start(args.start_timeout)
        rows: dict[int, dict[str, Any]] = {}
        try:
            pid = server.proc.pid if server.proc is not None else None
            await decode_waves(server.url, server.model_name, 1, args.max_tokens, eos_bias(model), args.timeout,
                               0.0, -1)  # warm up: compiles and caches the grammar
            for c in args.concurrency:
                pairs = [await decode_waves(server.url, server.model_name, c, args.max_tokens, eos_bias(model),
                                            args.timeout, args.min_seconds, wave, pid)
                         for wave in range(args.ab_rounds)]
                ratios = sorted(p[0] / p[1] for p in pairs)
                cpu = sorted(p[3] for p in pairs)
                row = {"constrained": {"tok_s": round(max(p[0] for p in pairs), 1),
                                       "rounds": [round(p[0], 1) for p in pairs]},
                       "unconstrained": {"tok_s": round(max(p[1] for p in pairs), 1),
                                         "rounds": [round(p[1], 1) for p in pairs]},
                       "tokens": round(sum(p[2] for p in pairs) / len(pairs)),
                       "median_ratio": round(ratios[len(ratios) // 2], 3),
                       "median_cpu_ratio": round(cpu[len(cpu) // 2], 3),
                       "ratios": [round(r, 3) for r in ratios]}
                rows[c] = row
                print(f"[constrain] c={c}: {row}", file=sys.stderr)
        finally:
            await server.stop()
        lines = [f"constrained decoding A/B ({model}; {machine()}; load average {os.getloadavg()[0]:.1f}): "
                 f"{args.ab_rounds} paired rounds, each the same requests decoding the same tokens with and "
                 f"without the grammar; tok/s best of the rounds, ratio the median of the rounds' ratios; cpu: "
                 f"the server's CPU time unconstrained / constrained (median)",
                 f"{'c':>3} {'unconstrained':>14} {'constrained':>12} {'ratio':>6} {'cpu':>6}  tokens/request  ratios"]
        for c, row in rows.items():
            lines.append(f"{c:>3} {row['unconstrained']['tok_s']:>14.1f} {row['constrained']['tok_s']:>12.1f} "
                         f"{row['median_ratio']:>5.2f}x {row['median_cpu_ratio']:>5.2f}x  {row['tokens']:>14}  "
                         f"{row['ratios']}")
        text = "\n".join(lines)
        print(text)
        payload = {"date": dt.datetime.now().astimezone().isoformat(), "machine": machine(), "model": model,
                   "load_average": os.getloadavg(),
                   "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
                   "constrain_ab": rows,
                   "report": text}
        return 0, payload
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model path or Hugging Face id (default: tiny generated models)")
    p.add_argument("--tiny-size", type=lambda s: s.split(","), default=["small"],
                   help="shapes of the generated models, comma-separated: small (hidden 64, 2 layers) and/or "
                        "medium (hidden 256, 4 layers)")
    p.add_argument("--servers", type=lambda s: s.split(","), default=DEFAULT_SERVERS,
                   help=f"servers to run, in order (default {','.join(DEFAULT_SERVERS)}; ours_bundled is our worker "
                        "with --blas bundled, the mlx[cpu] wheel's reference BLAS)")
    p.add_argument("--peer-blas", choices=["bundled", "openblas"], default="bundled",
                   help="BLAS of the peer servers' MLX: bundled (what their install gives them, the default) or "
                        "openblas (the renamed OpenBLAS our worker binds, preloaded into them with LD_PRELOAD and "
                        "the same thread count): the same BLAS for everyone, so that the engines alone compare")
    p.add_argument("--only", choices=list(SERVERS), help="run only this server (same as --servers NAME)")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per throughput request")
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="repeat waves of C requests until each concurrency level has run this long")
    p.add_argument("--rounds", type=int, default=1,
                   help="throughput rounds: after the first pass, each server is started again (one at a time, "
                        "the order reversed every other round) for its throughput part; the table shows medians "
                        "and the report each round with its load average")
    p.add_argument("--turns", type=int, default=20, help="agent-loop turns (0 skips the loop)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="skip the restart after the agent loop (resume measurement)")
    p.add_argument("--tool-chars", type=int, default=600, help="characters of each tool result")
    p.add_argument("--agent-max-tokens", type=int, default=128)
    p.add_argument("--agents", type=int, default=8, help="agent loops run at once in the parallel part (0: skip)")
    p.add_argument("--parallel-turns", type=int, default=8, help="turns of each parallel agent")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--worker-args", default="",
                   help='extra options for our worker, e.g. "--cpu-threads 1" to measure without split attention')
    p.add_argument("--vllm-mlx-args", dest="vllm_mlx_args", default="", help="extra options for vllm-mlx serve")
    p.add_argument("--rapid-mlx-args", dest="rapid_mlx_args", default="", help="extra options for rapid-mlx serve")
    p.add_argument("--peers-dir", type=Path, default=Path.home() / ".cache" / "agentgate-bench" / "peers",
                   help="where the peers' virtualenvs are made (once)")
    p.add_argument("--no-netns", action="store_true", help="do not re-run inside `unshare --net`")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds for a server to become ready")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the work folder (server logs, built models)")
    p.add_argument("--constrain-ab", action="store_true",
                   help="instead: decode tok/s of our worker with and without a tool-call grammar (c from "
                        "--concurrency, e.g. 1,8)")
    p.add_argument("--ab-rounds", type=int, default=5,
                   help="paired rounds (constrained, then unconstrained) per concurrency for --constrain-ab")
    args = p.parse_args(argv)
    if args.only:
        args.servers = [args.only]
    unknown = [k for k in args.servers if k not in SERVERS]
    if unknown:
        p.error(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    if any(size not in ("small", "medium") for size in args.tiny_size):
        p.error("--tiny-size takes small and/or medium")
    args.tiny = args.model is None
    args.install_errors = {}
    args.peer_openblas = None
    args.blas_threads = None
    return args


def prepare_peer_blas(args: argparse.Namespace) -> None:
    """For --peer-blas openblas: the renamed OpenBLAS (built once, as the worker does) and its thread count."""
    from engines.worker import blas

    args.blas_threads = int(os.environ.get("OPENBLAS_NUM_THREADS") or blas.DEFAULT_THREADS)
    args.peer_openblas = blas.renamed_copy(blas.find_openblas(), blas.default_cache_dir(), blas.find_patchelf())


NETNS_FLAG = "AGENTGATE_BENCH_NETNS"


def isolated_argv(argv: list[str]) -> list[str] | None:
    """The command that re-runs this bench inside a new network namespace with only `lo` up, where possible."""
    if sys.platform != "linux" or not shutil.which("unshare") or not shutil.which("ip"):
        return None
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
            sys.executable, str(Path(__file__).resolve()), *argv]


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if os.environ.get(NETNS_FLAG) != "1":
        for kind in [] if args.constrain_ab else args.servers:  # the only step that needs the network
            if kind in PEER_PACKAGES:
                error = install_peer(args.peers_dir, kind)
                if error:
                    print(f"[{kind}] {error}", file=sys.stderr)
        if not args.no_netns:
            cmd = isolated_argv(raw)
            if cmd is not None:
                print("running the servers inside `unshare --net` (loopback only)", file=sys.stderr)
                return subprocess.call(cmd, env={**os.environ, NETNS_FLAG: "1"})
            print("unshare --net is not available here: servers run with the host network (loopback binds only)",
                  file=sys.stderr)
    if args.peer_blas == "openblas":
        prepare_peer_blas(args)
    for kind in args.servers:
        exe = peer_venv(args.peers_dir, kind) / "bin" / PEER_PACKAGES[kind][1] if kind in PEER_PACKAGES else None
        if exe is not None and not exe.exists():
            args.install_errors[kind] = f"{SERVERS[kind]} is not installed in {exe.parent.parent}"
    code, payload = asyncio.run(constraint_ab(args) if args.constrain_ab else main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
