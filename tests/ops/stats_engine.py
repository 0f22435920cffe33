"""An external engine for the metrics tests: serves on $PORT like an OpenAI server and reports `/stats` in the
shape of the MLX worker (run as a `command:` engine by the router's supervisor)."""

from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web

STATS = {
    "model": "stats-engine", "ready": True, "queue": 2, "running": 3, "max_batch": 8, "peak_batch": 3, "steps": 10,
    "tokens": {"prompt": 40, "cached": 24, "generated": 17},
    "cache": {"entries": 1, "bytes": 4096, "hits": 5, "exact_hits": 1, "misses": 2, "hit_tokens": 24},
    "blas": {"blas": "openblas", "mode": "auto", "threads": 2, "verified": True},
}


async def endless(request: web.Request) -> web.StreamResponse:
    """A 200 whose body never ends (ENDLESS=1): what a broken engine could answer /health and /stats with."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(b'{"padding": "')
    while True:
        await resp.write(b"x" * 65536)


async def health(request: web.Request) -> web.StreamResponse:
    if os.environ.get("ENDLESS"):
        return await endless(request)
    return web.json_response({"status": "ok"})


async def stats(request: web.Request) -> web.StreamResponse:
    if os.environ.get("ENDLESS"):
        return await endless(request)
    return web.json_response(STATS)


async def chat(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({
        "id": "chatcmpl-engine", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "local"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5,
                  "prompt_tokens_details": {"cached_tokens": 2}},
    })


async def echo(request: web.Request) -> web.Response:
    """The request as it arrived (for /upstream's forwarding): its path, its header names, the coding its body is
    said to have, and the size of that body as read (decoded when the coding is one aiohttp decodes)."""
    return web.json_response({"raw_path": request.raw_path, "headers": sorted(k.lower() for k in request.headers),
                              "coding": request.headers.get("Content-Encoding"), "size": len(await request.read())})


async def hop(request: web.Request) -> web.Response:
    """An answer with fields its `Connection` header declares hop-by-hop (RFC 9110 section 7.6.1)."""
    return web.json_response({}, headers={"Connection": "X-Engine-Hop, x-engine-hop2", "X-Engine-Hop": "1",
                                          "X-Engine-Hop2": "1", "X-Engine-Kept": "1"})


async def cut(request: web.Request) -> web.StreamResponse:
    """An answer that stops half way: part of a body, then the connection closed."""
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(b"partial ")
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.close()
    return resp


async def big(request: web.Request) -> web.Response:
    """A 24 MB answer (past what the sockets' buffers hold between the router and a client that stops reading)."""
    return web.Response(body=b"x" * (24 << 20), content_type="text/plain")


def main() -> None:
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/cut", cut)
    app.router.add_get("/hop", hop)
    app.router.add_get("/big", big)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    main()
