"""A Messages request's unsupported type (a content block's, an image or a document source's) is named in its 400,
cut as the route cuts every value it quotes: a 1 MB type string gave a 1 MB error body."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG

BIG = "K" * 1_000_000


@pytest.mark.parametrize("block", [
    {"type": BIG},
    {"type": "image", "source": {"type": BIG}},
    {"type": "document", "source": {"type": BIG}},
    {"type": ["a"] * 100_000},
], ids=["block", "image", "document", "list"])
async def test_an_unsupported_type_is_named_cut(fakes, router, block: dict[str, Any]) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": [block]}]}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        async with aiohttp.ClientSession() as s, s.post(r.url + path, json=body) as resp:
            raw = await resp.read()
            assert resp.status == 400, raw[:300]
        assert len(raw) < 1000 and b"KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK" not in raw, raw[:300]
    assert not up.requests
