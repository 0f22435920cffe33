"""Router overhead benchmark on the agent workload: requests/s and latency through agentgate, through a bare aiohttp
passthrough, and straight to the upstream, side by side in one run.

    python bench/proxy/run.py [--duration 5] [--concurrency 1,16,64]
                              [--scenarios native,text,prose,no-tools,messages,responses,small]
                              [--modes non-stream,stream] [--json out.json] [--before TREE]
                              [--rounds N] [--paced MS]

Needs `nginx` and `wrk` (Debian: apt-get install nginx-light wrk). Everything runs on 127.0.0.1:
  * upstream: nginx answering a fixed completion per scenario (JSON, or an SSE stream of ~15-25 events sent in
    one write) — near-zero cost; with --paced MS the streams come from bench/proxy/paced.py instead, one event per
    write MS ms apart, as engines and cloud APIs stream token by token (each event its own read and write for every
    target: the CPU per request then holds the per-read costs the one-write stream leaves out);
  * baseline: a bare aiohttp reverse proxy (bench/proxy/passthrough.py): the floor any Python proxy pays;
  * agentgate: `agentgate serve` with routing, metrics and one JSON access-log line per request (formatted, then
    sent to /dev/null), tool-call repair on as shipped.
Scenarios (bench/proxy/workload.py): a coding agent's mid-conversation request (~40 KB: system prompt, 22 tools
~24 KB, history with tool results) answered with a native tool call (`native`, nothing to repair), a tool call
written as text that needs repair (`text`), or prose (`prose`); the same history without tools (`no-tools`); and
the old one-line request without tools (`small`). `messages` and `responses` are the same turn as the agent CLIs
send it: Claude Code's Anthropic Messages request on /v1/messages and Codex's Responses request on /v1/responses,
answered with the native tool call; agentgate translates them for its OpenAI-compatible upstream and back, while
the passthrough and the direct path reach an upstream answering in the client's dialect. Before measuring, one
request per scenario checks that agentgate's answer is right (the call repaired, the stream complete). wrk -t1
drives each target at each concurrency for --duration seconds; the table shows requests/s, p50/p99 latency,
agentgate's ratio to the baseline, its p50 over the direct path's, and the CPU time per request of both proxies
(from /proc) with their ratio, which holds up when other jobs share the machine. Then the streamed tool-call TTFB
table (stream_ttfb.py; --no-ttfb skips it). With --before TREE (another checkout, e.g. `git worktree add
/tmp/before main`), that tree's router runs too, on the same interpreter, and a first table sets its CPU per
request beside this tree's.
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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("native", "text", "prose", "no-tools", "messages", "responses", "small")
ANSWER = {"native": "native", "text": "text", "prose": "prose", "no-tools": "prose", "small": "prose",
          "messages": "native", "responses": "native"}
DIALECTS = {"messages": "/v1/messages", "responses": "/v1/responses"}  # scenario: its route on agentgate


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
    """nginx serving each answer as a static file (a POST's 405 turned into the file: `return` caps its text
    at 4 KB)."""
    www = tmp / "www"
    tmp.chmod(0o755)  # nginx's workers may run as another user
    for kind in workload.ANSWERS:
        for suffix, text in (("", json.dumps(workload.completion(kind))), ("-stream", workload.sse(kind))):
            path = www / f"{kind}{suffix}/v1/chat/completions"
            path.parent.mkdir(parents=True)
            path.write_text(text)
    for route, path_ in DIALECTS.items():  # an upstream answering in the client's own dialect
        answers = (("", json.dumps(workload.dialect_answer(route))), ("-stream", workload.dialect_sse(route)))
        for suffix, text in answers:
            path = www / f"{route}{suffix}{path_}"
            path.parent.mkdir(parents=True)
            path.write_text(text)
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
  client_max_body_size 8m; client_body_buffer_size 1m;
  keepalive_requests 1000000;
  etag off;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location ~ -stream/ {{ default_type text/event-stream; error_page 405 =200 $uri; }}
    location / {{ default_type application/json; error_page 405 =200 $uri; }}
  }}
}}
""")
    return conf


def router_conf(tmp: Path, port: int, up_port: int, name: str = "config", stream_port: int | None = None) -> Path:
    """agentgate's config: a provider and a model per answer and mode (streams from `stream_port` when given)."""
    providers, models = [], []
    for kind in workload.ANSWERS:
        for suffix in ("", "-stream"):
            at = stream_port if suffix and stream_port else up_port
            providers.append(f"  up-{kind}{suffix}: {{type: openai, base_url: "
                             f"'http://127.0.0.1:{at}/{kind}{suffix}/v1'}}")
            models.append(f"  - {{name: {kind}{suffix}, provider: up-{kind}{suffix}}}")
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"server: {{host: 127.0.0.1, port: {port}}}\nproviders:\n" + "\n".join(providers)
                   + "\nmodels:\n" + "\n".join(models) + "\n")
    return cfg


def body_for(scenario: str, stream: bool) -> dict[str, Any]:
    model = ANSWER[scenario] + ("-stream" if stream else "")
    if scenario == "messages":
        return workload.messages_request(stream=stream, model=model)
    if scenario == "responses":
        return workload.responses_request(stream=stream, model=model)
    if scenario == "small":
        return workload.small_request(stream=stream, model=model)
    return workload.request(with_tools=scenario not in ("no-tools", "small"), stream=stream, model=model)


def _sse_docs(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


def _chat_calls(raw: bytes, stream: bool) -> tuple[list[tuple[str, str]], str]:
    """The tool calls (name, arguments) and the text of a chat completion or its stream."""
    if not stream:
        msg = json.loads(raw)["choices"][0]["message"]
        return [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or []], \
            msg.get("content") or ""
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
    calls: dict[int, list[str]] = {}
    text = ""
    for d in _sse_docs(raw):
        for ch in d.get("choices", []):
            delta = ch.get("delta", {})
            text += delta.get("content") or ""
            for c in delta.get("tool_calls") or []:
                entry = calls.setdefault(c["index"], ["", ""])
                entry[0] += c.get("function", {}).get("name") or ""
                entry[1] += c.get("function", {}).get("arguments") or ""
    return [(n, a) for n, a in calls.values()], text


def _messages_calls(raw: bytes, stream: bool) -> tuple[list[tuple[str, str]], str]:
    """The same from an Anthropic message or its event stream."""
    if not stream:
        blocks = json.loads(raw)["content"]
        return [(b["name"], json.dumps(b["input"])) for b in blocks if b["type"] == "tool_use"], \
            "".join(b["text"] for b in blocks if b["type"] == "text")
    docs = _sse_docs(raw)
    assert docs and docs[-1]["type"] == "message_stop", raw[-200:]
    calls: dict[int, list[str]] = {}
    text = ""
    for d in docs:
        if d["type"] == "content_block_start" and d["content_block"]["type"] == "tool_use":
            calls[d["index"]] = [d["content_block"]["name"], ""]
        elif d["type"] == "content_block_delta":
            delta = d["delta"]
            if delta["type"] == "input_json_delta":
                calls[d["index"]][1] += delta["partial_json"]
            elif delta["type"] == "text_delta":
                text += delta["text"]
    return [(n, a) for n, a in calls.values()], text


def _responses_calls(raw: bytes, stream: bool) -> tuple[list[tuple[str, str]], str]:
    """The same from a Responses object, or the one its stream completes with."""
    if stream:
        docs = _sse_docs(raw)
        assert docs and docs[-1]["type"] == "response.completed", raw[-200:]
        doc = docs[-1]["response"]
    else:
        doc = json.loads(raw)
    items = doc["output"]
    return [(i["name"], i["arguments"]) for i in items if i["type"] == "function_call"], \
        "".join(c.get("text", "") for i in items if i["type"] == "message" for c in i["content"])


def check(port: int, scenario: str, stream: bool) -> None:
    """One request through agentgate: the answer must be what a client of this scenario needs."""
    body = body_for(scenario, stream)
    route = DIALECTS.get(scenario, "/v1/chat/completions")
    req = urllib.request.Request(f"http://127.0.0.1:{port}{route}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **EXTRA_HEADERS.get(scenario, {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise SystemExit(f"agentgate answered {scenario} {'stream' if stream else 'non-stream'} with {err.code}: "
                         f"{err.read()[:500]!r}") from None
    read = {"messages": _messages_calls, "responses": _responses_calls}.get(scenario, _chat_calls)
    got, text = read(raw, stream)
    want = {"native": "edit_file", "text": "bash"}.get(ANSWER[scenario])
    if want is None:
        assert not got and text, (scenario, raw[:300])
        return
    assert len(got) == 1 and got[0][0] == want, (scenario, raw[:300])
    args = json.loads(got[0][1])
    if scenario == "text":
        assert args["timeout"] == 120000 and "<tool_call>" not in text, (scenario, raw[:300])
    if want == "edit_file":
        assert args == workload.NATIVE_ARGS, (scenario, raw[:300])


EXTRA_HEADERS = {"messages": {"anthropic-version": "2023-06-01"}}  # what Claude Code sends besides its key


WRK_LUA = """
wrk.method = "POST"
local f = assert(io.open("{path}", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
{extra}"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, body: dict[str, Any], conns: int, duration: int, tmp: Path,
            pid: int | None = None, headers: dict[str, str] | None = None) -> dict[str, float]:
    """One wrk run; with `pid`, also the CPU time that process spent per request (robust to a busy machine)."""
    data = json.dumps(body).encode()
    payload = tmp / f"body-{abs(hash(data))}.json"
    payload.write_bytes(data)
    script = tmp / f"post-{abs(hash(data))}.lua"
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(WRK_LUA.replace("{path}", str(payload)).replace("{extra}", extra))
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else 0.0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    errs = float(errors.group(1)) if errors else 0.0
    if sock_errors:
        errs += sum(float(g) for g in sock_errors.groups())
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": errs,
            "cpu_us": cpu / total * 1e6 if total else 0.0}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds (errors summed)."""
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--modes", default="non-stream,stream")
    ap.add_argument("--targets", default="direct,aiohttp,agentgate", help="a subset, e.g. agentgate for profiling")
    ap.add_argument("--before", metavar="TREE", help="also measure the router in another checkout (e.g. a `git "
                    "worktree add` of main) as target `before`, side by side with this one")
    ap.add_argument("--rounds", type=int, default=1, help="measure each cell this many times, the targets taking "
                    "turns, and report each figure's median (steadier on a shared machine)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--no-ttfb", action="store_true", help="skip the streamed tool-call TTFB table")
    ap.add_argument("--paced", type=float, default=0.0, metavar="MS", help="streams from bench/proxy/paced.py, one "
                    "event per write MS ms apart (token by token), instead of nginx's one write per stream")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench/proxy needs {tool}: apt-get install nginx-light wrk", file=sys.stderr)
            return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(scenarios) - set(SCENARIOS) | set(modes) - {"non-stream", "stream"} | \
        set(targets) - {"direct", "aiohttp", "agentgate"}
    if args.before:
        targets.append("before")
    if unknown:
        print(f"unknown: {sorted(unknown)}", file=sys.stderr)
        return 2
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, str, int, dict[str, dict[str, float]]]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        up_port, base_port, ag_port, before_port = free_port(), free_port(), free_port(), free_port()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", str(nginx_conf(tmp, up_port)), "-p", str(tmp)]))
        paced_port = free_port() if args.paced else None
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench/proxy/passthrough.py"), str(base_port),
                                       f"http://127.0.0.1:{up_port}"]))
        procs.append(subprocess.Popen([sys.executable, "-m", "router", "serve", "--config",
                                       str(router_conf(tmp, ag_port, up_port, stream_port=paced_port))], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if args.before:  # the same interpreter and packages; the other tree's router and repair come first
            procs.append(subprocess.Popen([sys.executable, "-m", "router", "serve", "--config",
                                           str(router_conf(tmp, before_port, up_port, "before", paced_port))],
                                          cwd=args.before, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if paced_port is not None:  # last, so the pids below keep their places
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench/proxy/paced.py"), str(paced_port),
                                           str(args.paced)]))
        try:
            for port in (up_port, base_port, ag_port) + ((before_port,) if args.before else ()) + \
                    ((paced_port,) if paced_port is not None else ()):
                wait_port(port)
            urllib.request.urlopen(f"http://127.0.0.1:{ag_port}/health", timeout=10).read()
            for scenario in scenarios:
                for mode in modes:
                    check(ag_port, scenario, mode == "stream")
            print(f"  agentgate pid {procs[2].pid}; answers checked", file=sys.stderr)
            pids = {"aiohttp": procs[1].pid, "agentgate": procs[2].pid}
            if args.before:
                pids["before"] = procs[3].pid
            for scenario in scenarios:
                for mode in modes:
                    stream = mode == "stream"
                    route = DIALECTS.get(scenario, "/v1/chat/completions")
                    answer = scenario if scenario in DIALECTS else ANSWER[scenario]
                    path = f"/{answer}{'-stream' if stream else ''}{route}"
                    source = paced_port if stream and paced_port is not None else up_port
                    up_url = f"http://127.0.0.1:{source}{path}"
                    via = f"/via/{source}" if source != up_port else ""  # the passthrough's other upstream
                    urls = {"direct": up_url, "aiohttp": f"http://127.0.0.1:{base_port}{via}{path}",
                            "agentgate": f"http://127.0.0.1:{ag_port}{route}",
                            "before": f"http://127.0.0.1:{before_port}{route}"}
                    body = body_for(scenario, stream)
                    for c in levels:
                        runs: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
                        for _ in range(args.rounds):  # targets take turns, so a busy minute weighs on each alike
                            for t in targets:
                                runs[t].append(run_wrk(urls[t], body, c, args.duration, tmp, pids.get(t),
                                                       EXTRA_HEADERS.get(scenario)))
                        rows.append((scenario, mode, c, {t: median_run(r) for t, r in runs.items()}))
                        print(f"  measured {scenario} {mode} c={c}", file=sys.stderr)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    report(rows, args.duration, targets, args.rounds, args.paced)
    if args.json:
        Path(args.json).write_text(json.dumps([{"scenario": s, "mode": m, "concurrency": c, **res}
                                               for s, m, c, res in rows], indent=2))
    if not args.no_ttfb:
        print()
        print(stream_ttfb_table())
    return 0


def stream_ttfb_table(repeat: int = 3) -> str:
    """Time to the first payload of a streamed tool call (and reasoning, prose) through agentgate vs direct
    (bench/proxy/stream_ttfb.py, which also runs alone)."""
    import stream_ttfb

    return stream_ttfb.report(stream_ttfb.measure_all(repeat))


def before_table(rows: list[tuple[str, str, int, dict[str, dict[str, float]]]]) -> None:
    """This tree against the `--before` tree, each as the passthrough's CPU per request over its own (higher is
    better): measured in the same minutes, so a busy machine weighs on both alike."""
    print(f"{'scenario':<10}{'mode':<11}{'conc':>5} | {'cpu us/req aiohttp':>18} {'before':>7} {'now':>7} | "
          f"{'ratio before':>12} {'ratio now':>9} | {'rps before':>10} {'rps now':>7} | {'p99/p50 before':>14} "
          f"{'now':>5}")
    for scenario, mode, c, res in rows:
        b, old, new = res.get("aiohttp"), res["before"], res["agentgate"]
        base = b["cpu_us"] if b else 0.0
        r_old, r_new = (base / r["cpu_us"] if r["cpu_us"] else 0.0 for r in (old, new))
        t_old, t_new = (r["p99"] / r["p50"] if r["p50"] else 0.0 for r in (old, new))
        print(f"{scenario:<10}{mode:<11}{c:>5} | {base:>18.0f} {old['cpu_us']:>7.0f} {new['cpu_us']:>7.0f} | "
              f"{r_old:>11.2f}x {r_new:>8.2f}x | {old['rps']:>10.0f} {new['rps']:>7.0f} | {t_old:>14.1f} "
              f"{t_new:>5.1f}")
    print()


def report(rows: list[tuple[str, str, int, dict[str, dict[str, float]]]], duration: int, targets: list[str],
           rounds: int = 1, paced: float = 0.0) -> None:
    cpu = platform.processor() or platform.machine()
    size = len(json.dumps(workload.request(with_tools=True, stream=False, model="native")))
    tools = len(json.dumps(workload.tools()))
    cells = f"{duration}s per cell" + (f" x {rounds} rounds (medians)" if rounds > 1 else "")
    print(f"\nagentgate bench/proxy — {dt.date.today()} — {os.cpu_count()} cores ({cpu}), Python "
          f"{platform.python_version()}, {cells}, wrk -t1, upstream nginx on 127.0.0.1"
          f"{f' (streams: paced.py, one event per write every {paced:g} ms)' if paced else ''}; agent request "
          f"{size / 1000:.1f} KB ({len(workload.tools())} tools, {tools / 1000:.1f} KB)\n")
    if "before" in targets:
        before_table(rows)
    if targets not in (["direct", "aiohttp", "agentgate"], ["direct", "aiohttp", "agentgate", "before"]):
        for scenario, mode, c, res in rows:
            print(f"{scenario:<10}{mode:<11}{c:>5} " + " | ".join(
                f"{t} {r['rps']:.0f} rps p50 {r['p50']:.2f} p99 {r['p99']:.2f} cpu/req {r['cpu_us']:.0f} us"
                for t, r in res.items()))
        return
    hdr = (f"{'scenario':<10}{'mode':<11}{'conc':>5} | {'direct rps':>10} | {'aiohttp rps':>11} {'p50 ms':>7} | "
           f"{'agentgate rps':>13} {'p50 ms':>7} {'p99 ms':>7} | {'vs aiohttp':>10} {'added p50 ms':>12} "
           f"{'p99/p50':>7} | {'cpu us/req aiohttp':>18} {'agentgate':>9} {'ratio':>6}")
    print(hdr)
    print("-" * len(hdr))
    for scenario, mode, c, res in rows:
        d, b, a = res["direct"], res["aiohttp"], res["agentgate"]
        print(f"{scenario:<10}{mode:<11}{c:>5} | {d['rps']:>10.0f} | {b['rps']:>11.0f} {b['p50']:>7.2f} | "
              f"{a['rps']:>13.0f} {a['p50']:>7.2f} {a['p99']:>7.2f} | {a['rps'] / b['rps']:>9.2f}x "
              f"{a['p50'] - d['p50']:>12.2f} {a['p99'] / a['p50']:>7.1f} | {b['cpu_us']:>18.0f} {a['cpu_us']:>9.0f} "
              f"{b['cpu_us'] / a['cpu_us'] if a['cpu_us'] else 0:>5.2f}x")
        if any(r["errors"] for r in res.values()):
            print(f"  !! errors: { {k: v['errors'] for k, v in res.items()} }")


if __name__ == "__main__":
    raise SystemExit(main())
