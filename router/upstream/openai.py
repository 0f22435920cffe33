"""Any OpenAI-compatible server: cloud providers, llama.cpp, vLLM, another agentgate."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import aiohttp
from multidict import CIMultiDict

from .. import jsoncodec
from ..config.model import ProviderConfig
from .base import AiohttpReply, Reply, Upstream, UpstreamRequest, with_timeout

log = logging.getLogger("agentgate")


def client_timeout(config: ProviderConfig) -> aiohttp.ClientTimeout:
    """The session's timeouts. The wait for the answer's headers is `first_byte` (`with_timeout` around the
    request), the gaps in its body `idle` (the reply's `IdleWatch`, not aiohttp's `sock_read`, which would also cut
    the wait for the headers short and costs a timer per packet)."""
    t = config.policy.timeouts
    return aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_connect=t.connect)


FRAMING = frozenset({"connection", "content-length", "keep-alive", "proxy-connection", "te", "trailer",
                     "transfer-encoding", "upgrade"})
"""HTTP's own headers, which frame each message and its connection: written by the client library for the body it
sends, never taken from the config (a configured `Content-Length` short of the body, or a `Transfer-Encoding`
beside the real length, would make the rest of the body, the client's text, a request of its own to the
upstream)."""


def session_headers(*layers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """The headers of every request to a provider: each layer's replacing an earlier layer's of the same name in
    any case (a configured `authorization` is not sent beside the provider's `Authorization`), none of HTTP's
    framing (`FRAMING`)."""
    out: CIMultiDict[str] = CIMultiDict()
    for layer in layers:
        for name, value in layer:
            if name.lower() not in FRAMING:
                out[name] = value
    return out


def warn_framing(config: ProviderConfig) -> None:
    """Log the configured headers that are HTTP's framing, which are not sent (`session_headers`)."""
    names = [name for name, _ in config.headers if name.lower() in FRAMING]
    if names:
        log.warning("provider %s: headers %s are set by HTTP for each request; the configured values are not sent",
                    config.name, ", ".join(names))


class HttpUpstream(Upstream):
    """A provider reached over one pooled aiohttp session (opened on first use, closed for good at shutdown or
    when a reload retires it), sending `headers`, then the configured ones, then `credentials` with every
    request (`session_headers`)."""

    def __init__(self, config: ProviderConfig, connector: aiohttp.BaseConnector | None, headers: dict[str, str],
                 credentials: dict[str, str]) -> None:
        super().__init__(config)
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None
        self._headers = session_headers(headers.items(), config.headers, credentials.items())
        warn_framing(config)
        self._base = config.base_url

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.closed:  # never opened again: nothing would close it
                raise self.closed_error()
            connector = self._connector or aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=client_timeout(self.config), headers=self._headers,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def close(self) -> None:
        await super().close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class OpenAIUpstream(HttpUpstream):
    kind = "openai"

    def __init__(self, config: ProviderConfig, connector: aiohttp.BaseConnector | None = None) -> None:
        super().__init__(config, connector, {"Content-Type": "application/json", "User-Agent": "agentgate"},
                         {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {})

    async def send(self, request: UpstreamRequest) -> Reply:
        data = request.raw if request.raw is not None else jsoncodec.dumps(request.body)
        resp = await with_timeout(
            self.session.post(self._base + request.path, data=data, headers=request.headers, allow_redirects=False),
            self.config.policy.timeouts.first_byte,
        )
        return AiohttpReply(resp, secret=self.secrets, idle=self.config.policy.timeouts.idle)

