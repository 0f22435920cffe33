"""Client authentication at the edge: which configured key a request presents, and what that key may do.

Keys come as `Authorization: Bearer <key>` or as `x-api-key` (Anthropic's SDKs), either one matching when both are
sent, or, for the console only, as HTTP Basic credentials (any user name, the key as the password). Every comparison
takes constant time. Whether a config may serve without keys at all is decided when it loads (`config/auth.py`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Mapping

from .config.auth import is_loopback
from .config.model import ClientKey, ServerConfig
from .errors import ApiError

BASIC_CHALLENGE = 'Basic realm="agentgate console", charset="UTF-8"'


def find_key(keys: tuple[ClientKey, ...], token: str | None) -> ClientKey | None:
    """The key matching `token`, compared in constant time against every configured key."""
    if token is None:
        return None
    presented = token.encode("utf-8", "surrogateescape")  # header bytes that were not UTF-8 stay bytes
    found: ClientKey | None = None
    for key in keys:
        if hmac.compare_digest(presented, key.key.encode()):
            found = key
    return found


def presented_key(keys: tuple[ClientKey, ...], headers: Mapping[str, str]) -> ClientKey | None:
    """The configured key a request presents as `Authorization: Bearer` or as `x-api-key`: either matching is
    enough (Claude Code sends both when both ANTHROPIC_AUTH_TOKEN and ANTHROPIC_API_KEY are set, and a proxy on
    the way may set an Authorization of its own scheme)."""
    key = find_key(keys, bearer(headers))
    if key is None and "Authorization" in headers and (api_key := headers.get("x-api-key")) is not None:
        key = find_key(keys, api_key)  # (without Authorization, `bearer` was x-api-key already)
    return key


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer`, else `x-api-key`."""
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return headers.get("x-api-key")


def basic_password(headers: Mapping[str, str]) -> str | None:
    """The password of HTTP Basic credentials (the user name when there is no password)."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return (password or user) if colon else None


def client_key(keys: tuple[ClientKey, ...], headers: Mapping[str, str],
               server: ServerConfig | None = None) -> ClientKey | None:
    """None when no keys are configured (with `server`, a web page's request refused then: `refuse_browsers`);
    raises 401 when keys are configured and none matched."""
    if not keys:
        if server is not None:
            refuse_browsers(headers, server)
        return None
    key = presented_key(keys, headers)
    if key is None:
        raise ApiError(401, "Missing or invalid API key. Send 'Authorization: Bearer <key>'.", "invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    return key


def require_unrestricted(key: ClientKey | None, action: str) -> None:
    """Operator actions need a key that is not limited to some models (403 otherwise)."""
    if key is not None and key.models is not None:
        raise ApiError(403, f"This API key is limited to some models and may not {action}.", "admin_forbidden")


def check_model_allowed(key: ClientKey | None, model: str, entry: str) -> None:
    """403 unless `key` may use `model` (or the entry it names)."""
    if key is not None and key.models is not None and model not in key.models and entry not in key.models:
        raise ApiError(403, f"This API key may not use model {model!r}.", "model_not_allowed")


def require_operator(keys: tuple[ClientKey, ...], admin_auth: bool, headers: Mapping[str, str], action: str,
                     server: ServerConfig) -> None:
    """What operator routes (`/admin/reload`, `/unload`) require: with keys configured, an unrestricted one, unless
    the config says `server.admin_auth: false`; with no key to check, a request no web page made (see
    `refuse_browsers`)."""
    if admin_auth and keys:
        require_unrestricted(client_key(keys, headers), action)
    else:
        refuse_browsers(headers, server)


@functools.lru_cache(maxsize=256)  # a few Host values in practice; bounded whatever clients send
def local_host(host_header: str, configured: str) -> bool:
    """Whether a Host header names this machine: an IP address, localhost (or a name under .localhost), or the
    configured server.host. A web page that re-points its own domain at 127.0.0.1 (DNS rebinding) sends its domain."""
    import ipaddress

    host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    host = host.strip("[]").lower()
    if host in ("localhost", configured.lower()) or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("]")[0])
    except ValueError:
        return False
    return True


_loopback = functools.lru_cache(maxsize=16)(is_loopback)  # per configured host: once, not per request


def _authority(url: str) -> str:
    """The host[:port] of an Origin or Referer URL, lower-cased."""
    return url.partition("://")[2].partition("/")[0].partition("?")[0].lower()


def local_page(url: str, host_header: str, configured: str) -> bool:
    """Whether a page at `url` (an Origin or a Referer) is this router's own or one on this machine: the origin
    the request went to (the Host), localhost (or a name under .localhost), a loopback address, or the configured
    server.host. Any other address is another site (a page served from 203.0.113.5 is not this machine's)."""
    import ipaddress

    authority = _authority(url)
    if authority and authority == host_header.lower():
        return True
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    host = host.strip("[]").partition("]")[0]
    if host in ("localhost", configured.lower()) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_browsers(headers: Mapping[str, str], server: ServerConfig) -> None:
    """When no client key guards a route, a request a web page sent is refused (403): a page on another site
    (`Sec-Fetch-Site: cross-site`/`same-site`, or an `Origin` that is not this machine) could otherwise spend the
    providers' keys or stop engines with a form or an image (the router answers no CORS, so no page may read its
    answers), and a page that re-points its own domain at this machine (DNS rebinding) sends that domain as Host.
    Programs (SDKs, agent CLIs, curl) send none of these. A browser without Fetch Metadata (Safari before 16.4)
    sends no Origin with an image's GET: its Referer is judged then. The Host is checked on a loopback bind (a
    router that serves a network without keys, `allow_unauthenticated`, answers that network's names)."""
    site = headers.get("Sec-Fetch-Site")
    page = headers.get("Origin")
    if page is None or page == "null":
        page = headers.get("Referer") if page is None else page
    configured = server.host
    host = headers.get("Host", "")
    if site in ("cross-site", "same-site") or (page is not None and not local_page(page, host, configured)) or (
            _loopback(configured) and not local_host(host, configured)):
        raise ApiError(403, "Without client keys the router answers programs on this machine only, not web pages "
                       "from other sites (Origin, Sec-Fetch-Site) or names other than this machine's (Host).",
                       "cross_site_refused")
