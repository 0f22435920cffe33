"""The stream writer's queue: what the producer writes before it next waits goes out in one socket write."""

from __future__ import annotations

import asyncio

import pytest

from router import relay


class Resp:
    def __init__(self, fail: bool = False) -> None:
        self.writes: list[bytes] = []
        self.fail = fail

    async def write(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionResetError
        self.writes.append(data)


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
