"""Client authentication at the edge: which configured key a request presents, and what that key may do.

Keys come as `Authorization: Bearer <key>`, as `x-api-key` (Anthropic's SDKs), or, for the console only, as HTTP
Basic credentials (any user name, the key as the password). Every comparison takes constant time. Whether a config
may serve without keys at all is decided when it loads (`config/auth.py`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from .config.model import ClientKey
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


def client_key(keys: tuple[ClientKey, ...], headers: Mapping[str, str]) -> ClientKey | None:
    """None when no keys are configured; raises 401 when keys are configured and none matched."""
    if not keys:
        return None
    key = find_key(keys, bearer(headers))
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


def require_operator(keys: tuple[ClientKey, ...], admin_auth: bool, headers: Mapping[str, str], action: str) -> None:
    """What operator routes (`/admin/reload`, `/unload`) require: with keys configured, an unrestricted one, unless
    the config says `server.admin_auth: false`."""
    if admin_auth:
        require_unrestricted(client_key(keys, headers), action)
