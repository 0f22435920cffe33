"""Router overhead benchmark: requests/s and latency through agentgate vs the same upstream directly.

    python bench/proxy/run.py [--duration 5] [--concurrency 1,16,64]

Needs `nginx` and `wrk` (Debian: apt-get install nginx-light wrk). Everything runs on 127.0.0.1:
  * upstream: nginx answering a fixed chat completion (JSON, or a 12-chunk SSE stream) — near-zero cost;
  * baseline: a bare aiohttp passthrough proxy (bench/proxy/passthrough.py);
  * agentgate: `agentgate serve` with routing, auth-free config, metrics and one JSON log line per request
    (logs go to /dev/null, but are formatted).
wrk drives each target at each concurrency for --duration seconds, non-stream and stream; the table shows
requests/s, p50/p99 latency, and agentgate's ratio to the baseline and its added p50 over the direct path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPLETION = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}


def sse_body() -> str:
    events = []
    for i in range(12):
        events.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
                       "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]})
    events.append({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def nginx_conf(tmp: Path, port: int) -> Path:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")

    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{ default_type application/json; return 200 '{esc(json.dumps(COMPLETION))}'; }}
    location = /stream/v1/chat/completions {{ default_type text/event-stream; return 200 '{esc(sse_body())}'; }}
  }}
}}
""")
    return conf


WRK_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def run_wrk(url: str, body: dict, conns: int, duration: int, tmp: Path) -> dict[str, float]:
    script = tmp / f"post-{abs(hash(json.dumps(body)))}.lua"
    script.write_text(WRK_LUA.format(body=json.dumps(body)))
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": float(errors.group(1)) if errors else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--no-ttfb", action="store_true", help="skip the streamed tool-call TTFB table")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench/proxy needs {tool}: apt-get install nginx-light wrk", file=sys.stderr)
            return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        up_port, base_port, ag_port = free_port(), free_port(), free_port()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", str(nginx_conf(tmp, up_port)), "-p", str(tmp)]))
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench/proxy/passthrough.py"), str(base_port),
                                       f"http://127.0.0.1:{up_port}"]))
        cfg = tmp / "config.yaml"
        cfg.write_text(f"""
server: {{host: 127.0.0.1, port: {ag_port}}}
providers:
  up:     {{type: openai, base_url: 'http://127.0.0.1:{up_port}/v1'}}
  upsse:  {{type: openai, base_url: 'http://127.0.0.1:{up_port}/stream/v1'}}
models:
  - {{name: bench, provider: up}}
  - {{name: bench-stream, provider: upsse, model: bench}}
""")
        procs.append(subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(cfg)], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            for p in (up_port, base_port, ag_port):
                wait_port(p)
            urllib.request.urlopen(f"http://127.0.0.1:{ag_port}/health", timeout=10).read()
            rows = []
            for mode in ("non-stream", "stream"):
                stream = mode == "stream"
                for c in levels:
                    res = {}
                    for target, url, model in (
                        ("direct", f"http://127.0.0.1:{up_port}{'/stream' if stream else ''}/v1/chat/completions",
                         "bench"),
                        ("aiohttp", f"http://127.0.0.1:{base_port}{'/stream' if stream else ''}/v1/chat/completions",
                         "bench"),
                        ("agentgate", f"http://127.0.0.1:{ag_port}/v1/chat/completions",
                         "bench-stream" if stream else "bench"),
                    ):
                        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                        res[target] = run_wrk(url, body, c, args.duration, tmp)
                    rows.append((mode, c, res))
                    print(f"  measured {mode} c={c}", file=sys.stderr)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    cpu = platform.processor() or platform.machine()
    print(f"\nagentgate bench/proxy — {dt.date.today()} — {os.cpu_count()} cores ({cpu}), Python "
          f"{platform.python_version()}, {args.duration}s per cell, wrk -t1, upstream nginx on 127.0.0.1\n")
    hdr = (f"{'mode':<11}{'conc':>5} | {'direct rps':>10} | {'aiohttp rps':>11} {'p50 ms':>7} | "
           f"{'agentgate rps':>13} {'p50 ms':>7} {'p99 ms':>7} | {'vs aiohttp':>10} {'added p50 ms':>12}")
    print(hdr)
    print("-" * len(hdr))
    out = []
    for mode, c, res in rows:
        d, b, a = res["direct"], res["aiohttp"], res["agentgate"]
        print(f"{mode:<11}{c:>5} | {d['rps']:>10.0f} | {b['rps']:>11.0f} {b['p50']:>7.2f} | {a['rps']:>13.0f} "
              f"{a['p50']:>7.2f} {a['p99']:>7.2f} | {a['rps'] / b['rps']:>9.2f}x {a['p50'] - d['p50']:>12.2f}")
        out.append({"mode": mode, "concurrency": c, **{k: v for k, v in res.items()}})
        if any(r["errors"] for r in res.values()):
            print(f"  !! non-2xx responses: { {k: v['errors'] for k, v in res.items()} }")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    if not args.no_ttfb:
        print()
        print(stream_ttfb_table())
    return 0


def stream_ttfb_table(repeat: int = 3) -> str:
    """Time to the first payload of a streamed tool call (and reasoning, prose) through agentgate vs direct
    (bench/proxy/stream_ttfb.py, which also runs alone)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import stream_ttfb

    return stream_ttfb.report(stream_ttfb.measure_all(repeat))


if __name__ == "__main__":
    raise SystemExit(main())
