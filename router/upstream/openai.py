"""Any OpenAI-compatible server: cloud providers, llama.cpp, vLLM, another agentgate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from .. import jsoncodec
from ..config.model import ProviderConfig
from .base import AiohttpReply, Reply, Upstream, with_timeout


def client_timeout(config: ProviderConfig) -> aiohttp.ClientTimeout:
    t = config.policy.timeouts
    return aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_connect=t.connect, sock_read=t.idle)


class OpenAIUpstream(Upstream):
    kind = "openai"

    def __init__(self, config: ProviderConfig, connector: aiohttp.BaseConnector | None = None) -> None:
        super().__init__(config)
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None
        headers = {"Content-Type": "application/json", "User-Agent": "agentgate"}
        headers.update(dict(config.headers))
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._headers = headers
        self._base = config.base_url

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = self._connector or aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=client_timeout(self.config), headers=self._headers,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, path: str, body: dict[str, Any], raw: bytes | None, headers: Mapping[str, str],
                   stream: bool) -> Reply:
        data = raw if raw is not None else jsoncodec.dumps(body)
        resp = await with_timeout(
            self.session.post(self._base + path, data=data, headers=headers, allow_redirects=False),
            self.config.policy.timeouts.first_byte,
        )
        return AiohttpReply(resp, secret=self.secrets)

    async def get(self, path: str, headers: Mapping[str, str]) -> Reply:
        resp = await with_timeout(self.session.get(self._base + path, headers=headers, allow_redirects=False),
                                  self.config.policy.timeouts.first_byte)
        return AiohttpReply(resp, secret=self.secrets)
