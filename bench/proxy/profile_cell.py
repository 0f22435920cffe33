"""Where one cell of bench/proxy/run.py spends its CPU: one target (agentgate, or the bare aiohttp passthrough) on one
scenario, mode and concurrency, with the CPU per request split into user and system time, the system calls per
request that read and write (`/proc/PID/io`), and, with --spy, py-spy's samples as each function's own CPU time per
request (the process's measured CPU per request shared out by the samples: the figures add up to it).

    python bench/proxy/profile_cell.py native stream 16 [--paced MS] [--target agentgate|aiohttp] [--tree TREE]
                                  [--duration 5] [--spy OUT.txt [--blocking]] [--top 40] [--inclusive]
                                  [--header K:V]
    python bench/proxy/profile_cell.py --diff A.txt B.txt [--top 40]

The same upstreams as run.py (nginx writing a whole stream at once; --paced MS: bench/proxy/paced.py, one event per
write), the same agent request and the same router config (--tree: another checkout's router, e.g. a `git worktree
add` of main, on this interpreter). --spy needs py-spy (`pip install py-spy`); OUT keeps its raw samples, with the
CPU per request in its first line, for --diff, which sets two such profiles side by side (A's µs/request minus
B's, per function, largest first: what a change bought or cost, or what agentgate adds to the passthrough). Neither
way of sampling is exact: by default py-spy reads the running process, and some stacks come out torn (a frame
charged under a caller it never had); with --blocking it stops the process for each sample, which keeps stacks
whole but interrupts system calls, and functions making one (a socket write, even getpid()) come out several times
their cost. Compare profiles taken alike. Single runs move by about +-5 % on a shared machine: trust differences
above that, or repeat.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

ROOT = Path(__file__).resolve().parents[2]
CPU_LINE = "# cpu_us_per_request "


def proc_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_io(pid: int) -> dict[str, int]:
    """`/proc/PID/io`'s counters (syscr, syscw: read and write system calls)."""
    pairs = (line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line)
    return {k: int(v) for k, v in pairs}


def load_samples(path: Path) -> tuple[float, list[tuple[list[str], int]]]:
    """A profile written by --spy: the CPU per request, and py-spy's stacks (frames without line numbers)."""
    cpu = 0.0
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        if line.startswith(CPU_LINE):
            cpu = float(line[len(CPU_LINE):])
            continue
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks.append(([re.sub(r":\d+\)", ")", f) for f in stack.split(";")], int(n)))
    return cpu, stacks


def per_function(path: Path, inclusive: bool = False) -> dict[str, float]:
    """Each function's CPU µs per request: its own (the frame the sample was in), or with what it called."""
    cpu, stacks = load_samples(path)
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in stacks:
        total += n
        for frame in (set(frames) if inclusive else frames[-1:]):
            counts[frame] += n
    return {f: n / total * cpu for f, n in counts.items()} if total else {}


def print_top(path: Path, top: int, inclusive: bool) -> None:
    kind = "with what it calls" if inclusive else "own time"
    print(f"\nµs/request by function ({kind}; py-spy samples shared out over the measured CPU):")
    for frame, us in sorted(per_function(path, inclusive).items(), key=lambda kv: -kv[1])[:top]:
        print(f"{us:8.1f}  {frame[:110]}")


def print_diff(a: Path, b: Path, top: int) -> None:
    fa, fb = per_function(a), per_function(b)
    print(f"{'A - B':>8} {'A':>8} {'B':>8}  µs/request, own time (A: {a}, {load_samples(a)[0]:.0f} µs; "
          f"B: {b}, {load_samples(b)[0]:.0f} µs)")
    keys = sorted(set(fa) | set(fb), key=lambda k: -abs(fa.get(k, 0.0) - fb.get(k, 0.0)))
    for k in keys[:top]:
        print(f"{fa.get(k, 0.0) - fb.get(k, 0.0):8.1f} {fa.get(k, 0.0):8.1f} {fb.get(k, 0.0):8.1f}  {k[:100]}")


def measure(args: argparse.Namespace) -> int:
    if args.spy and shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("--spy needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    stream = args.mode == "stream"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        up, port = bench.free_port(), bench.free_port()
        paced = bench.free_port() if args.paced and stream else None
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs = [subprocess.Popen([nginx, "-c", str(bench.nginx_conf(tmp, up)), "-p", str(tmp)])]
        if paced is not None:
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench/proxy/paced.py"), str(paced),
                                           str(args.paced)]))
        if args.target == "aiohttp":
            target = subprocess.Popen([sys.executable, str(ROOT / "bench/proxy/passthrough.py"), str(port),
                                       f"http://127.0.0.1:{up}"])
        else:
            target = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config",
                                       str(bench.router_conf(tmp, port, up, stream_port=paced))],
                                      cwd=args.tree or ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(target)
        try:
            for p in (up, port) + ((paced,) if paced is not None else ()):
                bench.wait_port(p)
            route = bench.DIALECTS.get(args.scenario, "/v1/chat/completions")
            if args.target == "agentgate":
                bench.check(port, args.scenario, stream)
                url = f"http://127.0.0.1:{port}{route}"
            else:
                answer = args.scenario if args.scenario in bench.DIALECTS else bench.ANSWER[args.scenario]
                via = f"/via/{paced}" if paced is not None else ""
                url = f"http://127.0.0.1:{port}{via}/{answer}{'-stream' if stream else ''}{route}"
            body = bench.body_for(args.scenario, stream)
            headers = {**bench.EXTRA_HEADERS.get(args.scenario, {}), **dict(h.split(":", 1) for h in args.header)}
            bench.run_wrk(url, body, args.concurrency, 2, tmp, target.pid, headers)  # warm: caches, pools
            spy = None
            if args.spy:
                spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                                        "record", "-p", str(target.pid), "-r", "500", "-f", "raw",
                                        *([] if args.blocking else ["--nonblocking"]),
                                        "-o", str(tmp / "samples.txt"), "-d", str(args.duration + 1)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            t0, io0 = proc_times(target.pid), proc_io(target.pid)
            res = bench.run_wrk(url, body, args.concurrency, args.duration, tmp, None, headers)
            t1, io1 = proc_times(target.pid), proc_io(target.pid)
            if spy is not None:
                spy.wait()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
        n = res["rps"] * args.duration
        user, system = ((t1[i] - t0[i]) / n * 1e6 for i in (0, 1))
        print(f"{args.target} {args.scenario} {args.mode} c={args.concurrency}"
              f"{f' paced {args.paced:g} ms' if paced is not None else ''}: {res['rps']:.0f} RPS, p50 "
              f"{res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, errors {res['errors']:.0f}")
        print(f"CPU per request {user + system:.0f} µs (user {user:.0f}, system {system:.0f}); system calls per "
              f"request: {(io1['syscr'] - io0['syscr']) / n:.1f} reading, {(io1['syscw'] - io0['syscw']) / n:.1f} "
              "writing")
        if args.spy:
            samples = tmp / "samples.txt"
            out = Path(args.spy)
            out.write_text(f"{CPU_LINE}{user + system:.1f}\n" + (samples.read_text() if samples.exists() else ""))
            print_top(out, args.top, args.inclusive)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", nargs="?", choices=bench.SCENARIOS)
    ap.add_argument("mode", nargs="?", choices=("non-stream", "stream"))
    ap.add_argument("concurrency", nargs="?", type=int)
    ap.add_argument("--target", choices=("agentgate", "aiohttp"), default="agentgate")
    ap.add_argument("--tree", help="another checkout whose router runs (agentgate target)")
    ap.add_argument("--paced", type=float, default=0.0, metavar="MS")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--spy", metavar="OUT", help="sample with py-spy; raw samples kept in OUT")
    ap.add_argument("--blocking", action="store_true", help="py-spy stops the process for each sample (see above)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--inclusive", action="store_true", help="functions with what they call (default: own time)")
    ap.add_argument("--header", action="append", default=[], metavar="K:V", help="one more request header")
    ap.add_argument("--diff", nargs=2, metavar=("A", "B"), help="two --spy profiles side by side")
    args = ap.parse_args()
    if args.diff:
        print_diff(Path(args.diff[0]), Path(args.diff[1]), args.top)
        return 0
    if args.scenario is None or args.mode is None or args.concurrency is None:
        ap.error("scenario, mode and concurrency are needed (or --diff A B)")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
