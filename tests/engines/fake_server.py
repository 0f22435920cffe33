"""A tiny OpenAI-style server run as an external engine command in the lifecycle tests.

    python fake_server.py --port N [--model NAME] [--not-ready] [--exit-code CODE] [--child-pidfile PATH]
                          [--pidfile PATH] [--ignore-sigterm]
    python fake_server.py -m engines --model NAME --socket PATH --name NAME [--tool-format F] [...]

The second form stands in for the MLX worker's command line: it serves on a Unix socket (mode 0600).
Both say "fake server listening" on stderr once they listen, as the worker says when it is ready.

GET /health answers 200 (503 with --not-ready); POST /v1/chat/completions echoes the last message (as an event
stream when the body says `stream`; after `fake_sleep` seconds when it names some: the stream sends its first
event at once; when the body names a file as `fake_hold`, it answers once that file exists; when the body says
`fake_drop`, it closes the connection without an answer and keeps running);
GET /v1/models lists --model; GET /v1/argv returns the command line. --exit-code exits at once with that
code after a message on stderr.
--child-pidfile spawns a long-sleeping child process (same process group) and writes its pid there.
--pidfile writes the server's own pid there.
--ignore-sigterm makes the server ignore SIGTERM, so only SIGKILL stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web


async def _until_exists(path: Path) -> None:
    while not path.exists():  # noqa: ASYNC110, ASYNC240 - a file the test makes: no event of its own to wait on
        await asyncio.sleep(0.01)


def build_app(model: str, ready: bool, argv: list[str]) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        if not ready:
            return web.json_response({"status": "loading"}, status=503)
        return web.json_response({"status": "ok"})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages") or [{}]
        text = str(messages[-1].get("content", ""))
        if body.get("fake_drop"):
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if body.get("stream"):
            return await stream(request, body, text)
        await asyncio.sleep(float(body.get("fake_sleep", 0)))
        if body.get("fake_hold"):
            await _until_exists(Path(body["fake_hold"]))
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", model),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
            headers={"x-fake-pid": str(os.getpid())},
        )

    async def stream(request: web.Request, body: dict[str, Any], text: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-fake-pid": str(os.getpid())})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            doc = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                   "model": body.get("model", model),
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        await resp.write(chunk({"role": "assistant", "content": ""}))
        await asyncio.sleep(float(body.get("fake_sleep", 0)))
        await resp.write(chunk({"content": text}) + chunk({}, "stop") + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def show_argv(request: web.Request) -> web.Response:
        return web.json_response(argv)

    app = web.Application()
    app.router.add_get("/v1/argv", show_argv)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--socket", default=None)
    parser.add_argument("-m", dest="module", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--tool-format", default=None)
    parser.add_argument("--model", default="fake")
    parser.add_argument("--not-ready", action="store_true")
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--child-pidfile", default=None)
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--ignore-sigterm", action="store_true")
    args, _extra = parser.parse_known_args()
    if args.exit_code is not None:
        print(f"fatal: refusing to start (exit {args.exit_code})", file=sys.stderr, flush=True)
        sys.exit(args.exit_code)
    if args.pidfile:
        with open(args.pidfile, "w") as fh:
            fh.write(str(os.getpid()))
    if args.child_pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(args.child_pidfile, "w") as fh:
            fh.write(str(child.pid))
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    app = build_app(args.model, not args.not_ready, sys.argv[1:])

    def listening(_banner: str) -> None:  # said once it listens, as the worker says it is ready
        print("fake server listening", file=sys.stderr, flush=True)

    if args.socket:
        print(f"fake server loading on {args.socket}", file=sys.stderr, flush=True)
        os.umask(0o177)
        web.run_app(app, path=args.socket, print=listening, access_log=None)
        return
    print(f"fake server loading on port {args.port}", file=sys.stderr, flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=listening, access_log=None,
                handle_signals=not args.ignore_sigterm)


if __name__ == "__main__":
    main()
