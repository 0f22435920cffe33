"""The baseline: a bare aiohttp reverse proxy (no routing, checks or metrics). Usage: passthrough.py PORT UPSTREAM

A path /via/PORT/... goes to 127.0.0.1:PORT/... instead (run.py's paced streaming upstream)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    session: aiohttp.ClientSession | None = None

    async def proxy(request: web.Request) -> web.StreamResponse:
        assert session is not None
        body = await request.read()
        path = request.path
        target = upstream + path
        if path.startswith("/via/"):
            port, _, rest = path[5:].partition("/")
            target = f"http://127.0.0.1:{int(port)}/{rest}"
        async with session.post(target, data=body,
                                headers={"Content-Type": "application/json"}) as up:
            if b'"stream":true' in body or b'"stream": true' in body:
                resp = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream"})
                try:
                    await resp.prepare(request)
                    async for chunk in up.content.iter_any():
                        await resp.write(chunk)
                    await resp.write_eof()
                except (ConnectionResetError, aiohttp.ClientConnectionResetError):  # wrk closed at the end
                    pass
                return resp
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await session.close()

    app = web.Application()
    app.cleanup_ctx.append(ctx)
    app.router.add_post("/{tail:.*}", proxy)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
