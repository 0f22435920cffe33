"""An opened upstream stream in process, as `router.relay.UpstreamReader` reads it: the bytes of each read given
(test fixture, never product code)."""

from __future__ import annotations

from collections.abc import AsyncIterator


class _Reply:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def chunks(self) -> AsyncIterator[bytes]:
        for r in self.reads:
            yield r


class _Breaker:
    def success(self) -> None:
        pass

    def failure(self) -> None:
        pass


class _Upstream:
    name = "up"
    secrets = ()
    breaker = _Breaker()


class Opened:
    """What dispatch hands the reader: the first read's bytes, the rest of the reply's reads, the upstream."""

    def __init__(self, reads: list[bytes]) -> None:
        self.first = reads[0] if reads else b""
        self.reply = _Reply(reads[1:])
        self.upstream = _Upstream()
