"""A streaming upstream that paces its events: each answer of `workload` (the chat SSE per kind, and the Messages and
Responses streams) sent one event per socket write, GAP_MS apart, as an engine or a cloud API streams token by
token. nginx (run.py's upstream) sends a whole stream in one write, which leaves a proxy one read and one write per
answer and puts all of its per-event work in one burst; here each event is its own read and write.

    python bench/proxy/paced.py PORT GAP_MS

Paths as nginx's in run.py: /{kind}-stream/v1/chat/completions, /messages-stream/v1/messages,
/responses-stream/v1/responses (anything else: 404). The body is read, not looked at.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload


def streams() -> dict[str, list[bytes]]:
    """Each path's events."""
    out = {f"/{kind}-stream/v1/chat/completions": workload.sse_events(workload.sse(kind).encode())
           for kind in workload.ANSWERS}
    out["/messages-stream/v1/messages"] = workload.sse_events(workload.dialect_sse("messages").encode())
    out["/responses-stream/v1/responses"] = workload.sse_events(workload.dialect_sse("responses").encode())
    return out


def app(gap: float) -> web.Application:
    paths = streams()

    async def answer(request: web.Request) -> web.StreamResponse:
        events = paths.get(request.path)
        if events is None:
            raise web.HTTPNotFound()
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await resp.prepare(request)
            for event in events:
                await asyncio.sleep(gap)
                await resp.write(event)
            await resp.write_eof()
        except ConnectionError:  # wrk closes its connections at the end of a run, mid-stream
            pass
        return resp

    application = web.Application()
    application.router.add_post("/{tail:.*}", answer)
    return application


def main() -> None:
    port, gap_ms = int(sys.argv[1]), float(sys.argv[2])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app(gap_ms / 1000), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
