"""The stream writer's queue: what the producer writes before it next waits goes out in one socket write."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from router import relay
from tests.stalled_client import post, stalled

IDLE_1S = """
server: {idle_timeout: 1}
providers:
  lab: {type: openai, base_url: '%s', retries: 0}
models:
  - {name: m, provider: lab}
"""


class Resp:
    def __init__(self, fail: bool = False) -> None:
        self.writes: list[bytes] = []
        self.ended: bytes | None = None
        self.fail = fail

    async def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError
        self.writes.append(data)

    async def write_eof(self, data: bytes = b"") -> None:
        if self.fail:
            raise ConnectionResetError
        self.ended = data


async def test_events_written_before_the_producer_waits_go_out_together() -> None:
    resp = Resp()
    out = relay._Out(resp, b"", 0)  # type: ignore[arg-type]
    for i in range(5):
        await out.write(b"e%d" % i)
    assert resp.writes == []
    await asyncio.sleep(0.01)  # the producer waits (for the upstream): the queue goes out
    assert resp.writes == [b"e0e1e2e3e4"]
    await out.write(b"x" * relay.FLUSH_BYTES)  # a full queue is written before write() returns
    assert resp.writes[-1] == b"x" * relay.FLUSH_BYTES
    await out.write(b"end")
    await out.flush()
    assert resp.writes[-1] == b"end"
    out.stop()


async def test_a_client_gone_while_the_queue_went_out_is_seen_by_the_next_write() -> None:
    out = relay._Out(Resp(fail=True), b"", 0)  # type: ignore[arg-type]
    await out.write(b"e0")
    await asyncio.sleep(0.01)
    with pytest.raises(relay.ClientGone):
        await out.write(b"e1")
    with pytest.raises(relay.ClientGone):
        await out.flush()
    out.stop()


async def test_a_stream_ready_at_once_goes_out_with_its_end_in_one_write() -> None:
    resp = Resp()
    out = relay._Out(resp, b"", 0)  # type: ignore[arg-type]
    out.start()
    for i in range(3):
        await out.write(b"e%d" % i)
    await out.end(b"final")  # the producer never waited: the headers go with everything, ended
    assert resp.writes == [] and resp.ended == b"e0e1e2final"
    out.stop()


async def test_a_stream_ready_at_once_starts_no_sender() -> None:
    resp = Resp()
    out = relay._Out(resp, b"", 0)  # type: ignore[arg-type]
    started = []

    async def sender() -> None:
        started.append(1)

    out._send_later = sender  # type: ignore[method-assign]
    out.start()
    await out.write(b"e0")
    await out.end(b"final")
    await asyncio.sleep(0.01)
    assert started == [] and resp.ended == b"e0final"
    out.stop()


async def test_the_headers_go_out_alone_when_nothing_is_ready_when_the_producer_first_waits() -> None:
    resp = Resp()
    out = relay._Out(resp, b"", 0)  # type: ignore[arg-type]
    out.start()
    await asyncio.sleep(0.01)  # waiting for the upstream's first bytes
    assert resp.writes == [b""]  # an empty write: aiohttp sends the buffered headers
    await out.write(b"e0")
    await asyncio.sleep(0.01)
    await out.write(b"e1")
    await out.end(b"final")
    assert resp.writes == [b"", b"e0"] and resp.ended == b"e1final"
    out.stop()


async def test_end_raises_client_gone() -> None:
    out = relay._Out(Resp(fail=True), b"", 0)  # type: ignore[arg-type]
    with pytest.raises(relay.ClientGone):
        await out.end(b"final")
    out.stop()


async def test_headers_reach_the_client_before_the_first_event_exists() -> None:
    """The headers are buffered to share the first event's write, but a client waits for no event to see them."""
    from aiohttp import web

    from router.exchange import Exchange

    seen_headers = asyncio.Event()

    async def items() -> AsyncIterator[dict[str, list[int]]]:
        await seen_headers.wait()  # the first event exists only once the client saw the headers
        yield {"choices": []}

    async def handler(request: web.Request) -> web.StreamResponse:
        return await relay.write_stream(request, Exchange("r", "chat"), items(), relay.OpenAIChunks(), {})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def client() -> bytes:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
            seen_headers.set()
            return await resp.read()

    try:  # (the bound only turns a hang into a failure)
        assert await asyncio.wait_for(client(), 60) == b'data: {"choices":[]}\n\ndata: [DONE]\n\n'
    finally:
        await runner.cleanup()


async def _drained(sock: socket.socket) -> bool:
    """Read what the router sent until the connection ends (closed or reset: True); the bound is a hang guard."""
    loop = asyncio.get_running_loop()
    try:
        while await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 20):
            pass
    except ConnectionResetError:
        pass
    except asyncio.TimeoutError:
        return False
    return True


async def test_a_client_that_stops_reading_frees_its_provider_slot(fakes, router) -> None:
    """A client that keeps its connection open but reads no more (its receive buffer full) holds the upstream and
    its concurrency slot only until a write to it has waited `server.idle_timeout`: the stream then ends as a
    client gone (the connection aborted, the upstream closed), and a request queued behind it is served, while the
    stalled client still holds its connection open (its queue bound is far off)."""
    import json

    from tests.fakes.openai_upstream import Step, chunk
    from tests.waiting import wait_until

    up = await fakes()
    r = await router(f"""
server: {{idle_timeout: 1}}
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, max_concurrency: 1, max_queue: 4, queue_timeout: 60}}
models:
  - {{name: m, provider: lab}}
""")
    lab = r.state.runtime.upstreams["lab"]
    ended: list[str | None] = []
    r.state.metrics.request_observers.append(lambda ex, fields: ended.append(ex.error))
    big = b"data: " + json.dumps(chunk("m", {"content": "x" * 16384})).encode() + b"\n\n"
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}), *[big] * 2000]))  # 32 MB, never read
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    sock, head = await stalled(r.url, post("/v1/chat/completions", body))  # the stream began; then no more reads
    try:
        assert head.startswith(b"HTTP/1.1 200"), head
        queued = asyncio.ensure_future(r.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "next"}]))  # queued behind the stalled stream
        done, _ = await asyncio.wait({queued}, timeout=40)  # (a hang guard; the queue's own bound is 60 s)
        if not done:
            queued.cancel()
            pytest.fail(f"the queued request was never served: the stalled stream still holds the slot "
                        f"(active {lab.limiter.active}, ended {ended})")
        assert queued.result().choices[0].message.content == "echo: next"  # (one slot: the stalled one's, freed)
        assert await _drained(sock)  # the router ended the stalled connection: the client never closed it
        await wait_until(lambda: lab.limiter.active == 0 and lab.outstanding == 0)
        await wait_until(lambda: up.cancelled == 1)  # the upstream's stream was closed
        await wait_until(lambda: len(ended) == 2)
        assert ended.count("client_disconnected") == 1  # the stalled stream's record; the other one's, no error
    finally:
        sock.close()


async def test_a_client_that_stops_reading_a_whole_answer_is_let_go(fakes, router) -> None:
    """A non-streamed answer too large for the socket's buffers, to a client that keeps its connection open but
    reads no more: the write waited for it without end, holding the request in flight (a shutdown's drain, a
    reload's retired providers) and the answer's bytes. It now ends as a stream's does, once no byte left for
    `server.idle_timeout`, recorded as a client gone (a 499 after its 200)."""
    import json

    from router.drain import IN_FLIGHT
    from tests.fakes.openai_upstream import Step, completion
    from tests.waiting import wait_until

    up = await fakes()
    r = await router(IDLE_1S % up.url)
    ended: list[tuple[str | None, int]] = []
    r.state.metrics.request_observers.append(lambda ex, fields: ended.append((ex.error, ex.ended_with)))
    up.push(Step(json=completion("x" * (24 << 20), "m")))  # 24 MB, past what the kernel buffers hold
    in_flight = r.app[IN_FLIGHT]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    sock, head = await stalled(r.url, post("/v1/chat/completions", body))  # the answer began; then no more reads
    try:
        assert head.startswith(b"HTTP/1.1 200"), head
        await wait_until(lambda: not in_flight._tasks, timeout=8)
        await wait_until(lambda: len(ended) == 1)
        assert ended == [("client_disconnected", 499)]  # its 200 went out: it counts as a 499
    finally:
        sock.close()


async def test_a_slow_reader_of_a_whole_answer_gets_all_of_it(fakes, router) -> None:
    """The bound is on a write that makes no progress, not on its length: a client that reads a large answer
    more slowly than `server.idle_timeout` allows for the whole of it gets every byte."""
    import json

    from tests.fakes.openai_upstream import Step, completion

    up = await fakes()
    r = await router(IDLE_1S % up.url)
    text = "x" * (12 << 20)
    up.push(Step(json=completion(text, "m")))
    host, port = r.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 16)
    try:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        got, pauses, pause = 0, 0, 0.1
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
            got += len(chunk)
            await asyncio.sleep(pause)  # at most 1 MB per pause: the whole answer takes longer than the bound
            pauses += 1
        assert pauses * pause > 1  # the reader's pauses alone outlast the bound (`idle_timeout`: 1 s)
        assert got > len(text)
    finally:
        writer.close()
