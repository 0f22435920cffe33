"""CPU of one streamed agent answer inside the router, without sockets: the bench's SSE answer (`workload.sse`)
through the chat pipeline (request check, repair stream, envelope) and the OpenAI chunk encoder, timed with the
thread's CPU clock. It separates the repairing stream's own cost from aiohttp's and the event loop's, which
`run.py` measures together.

    python bench/proxy/stream_cpu.py [--kinds native,text,prose] [--pieces N] [--reads halves|events|whole]
                                     [-n 300] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=cg.out python bench/proxy/stream_cpu.py --kinds prose --callgrind 100

`--callgrind N` (under callgrind): the counters zeroed after the warm-up, N answers, the counters dumped; the dump's
`summary` over N is the instructions of one answer, a count that does not move with the machine's load.

`--pieces` splits the native call's arguments (or the text answers) into N events instead of the workload's
12 (16); the difference between two values is the cost per event. `--reads` is how the upstream's stream arrives:
`halves` (the default) in two reads, `events` one read per event (as a stream arriving token by token does), `whole`
all of it in the first read (as nginx's single write does). `--profile` prints cProfile's top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run  # noqa: E402
import workload  # noqa: E402

from router import jsoncodec, pipeline, relay  # noqa: E402
from router.config.load import load_config  # noqa: E402
from router.context import RequestContext  # noqa: E402
from router.exchange import Exchange  # noqa: E402
from router.live_config import LiveConfig  # noqa: E402
from router.metrics import Metrics  # noqa: E402
from router.toolcache import ToolIndexCache  # noqa: E402


class _Reply:
    """The upstream reply after the part dispatch read, in reads."""

    status = 200
    headers = {"Content-Type": "text/event-stream"}

    def __init__(self, rest: list[bytes]) -> None:
        self.rest = rest

    async def _gen(self) -> Any:
        for chunk in self.rest:
            yield chunk

    def chunks(self) -> Any:
        return self._gen()

    async def close(self) -> None:
        pass


READS = ("halves", "events", "whole")


class _Opened:
    """The stream in the reads `reads` names: its two halves, one read per event (as it arrives token by token),
    or all of it in the first."""

    def __init__(self, upstream: Any, sse: bytes, reads: str = "halves") -> None:
        parts = workload.sse_events(sse) if reads == "events" else [sse] if reads == "whole" \
            else [sse[:len(sse) // 2], sse[len(sse) // 2:]]
        self.reply = _Reply(parts[1:])
        self.upstream = upstream
        self.first = parts[0]
        self.target = None

    async def close(self) -> None:
        pass


class Harness:
    def __init__(self, kind: str, pieces: int | None, reads: str = "halves") -> None:
        if pieces is not None:
            split = workload._pieces
            workload._pieces = lambda text, n: split(text, pieces)  # type: ignore[assignment]
        self.sse = workload.sse(kind).encode()
        tmp = Path(tempfile.mkdtemp())
        self.metrics = Metrics()
        self.runtime = LiveConfig.build(load_config(bench_run.router_conf(tmp, 1, 2)), self.metrics, None)
        self.cache = ToolIndexCache()
        self.model = kind + "-stream"
        self.body = workload.request(with_tools=True, stream=True, model=self.model)
        self.raw = jsoncodec.dumps(self.body)
        upstream = next(iter(self.runtime.upstreams.values()))

        async def dispatch(ctx: Any, request: Any) -> _Opened:
            return _Opened(upstream, self.sse, reads)

        pipeline.dispatch = dispatch  # type: ignore[assignment]

    async def one(self) -> bytes:
        ex = Exchange("r", "chat")
        route = self.runtime.table.resolve_for(self.model, None)
        ctx = RequestContext(ex, route, None, self.runtime, self.metrics, self.cache, {})
        reply = await pipeline.chat(ctx, self.body, stream=True, raw=self.raw)
        enc = relay.OpenAIChunks()
        out: list[bytes] = []
        assert reply.chunks is not None
        async for item in reply.chunks:
            for it in item if type(item) is list else [item]:
                out.extend(enc.feed(it))
        out.extend(enc.finish())
        return b"".join(out)

    async def measure(self, n: int) -> float:
        for _ in range(50):
            await self.one()
        best = float("inf")
        for _ in range(5):
            t = time.thread_time()
            for _ in range(n):
                await self.one()
            best = min(best, (time.thread_time() - t) / n)
        return best


async def callgrind_count(h: Harness, n: int) -> None:
    """N answers between zeroed and dumped callgrind counters (after a warm-up)."""
    for _ in range(50):
        await h.one()
    _callgrind_control("-z")
    for _ in range(n):
        await h.one()
    _callgrind_control("-d")


def _callgrind_control(flag: str) -> None:
    """`callgrind_control FLAG` for this process (-z zeroes the counters, -d dumps them); waited for, as the
    answers it brackets must not run meanwhile."""
    subprocess.run(["callgrind_control", flag, str(os.getpid())], capture_output=True, check=False)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default="native,text,prose")
    ap.add_argument("--pieces", type=int, default=None)
    ap.add_argument("--reads", choices=READS, default="halves", help="how the stream arrives (see above)")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--callgrind", type=int, default=0, metavar="N", help="under callgrind: count N answers")
    args = ap.parse_args()
    for kind in args.kinds.split(","):
        h = Harness(kind, args.pieces, args.reads)
        if args.callgrind:
            await callgrind_count(h, args.callgrind)
            continue
        print(f"{kind:7s} {await h.measure(args.n) * 1e6:7.0f} us CPU per streamed answer")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.n):
                await h.one()
            prof.disable()
            top = int(os.environ.get("TOP", "25"))
            pstats.Stats(prof).sort_stats(os.environ.get("SORT", "tottime")).print_stats(top)


if __name__ == "__main__":
    asyncio.run(main())
