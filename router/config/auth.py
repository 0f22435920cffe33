"""Authentication fails closed: when a config may serve without client keys."""

from __future__ import annotations

import ipaddress

from .model import ServerConfig

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine ("" and 0.0.0.0 mean every interface)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def open_relay_refusal(server: ServerConfig) -> str | None:
    """Why the router must not serve with `server`, or None. Without client keys anyone who reaches the port
    spends the configured providers' credit: that is refused beyond loopback unless the config says
    `server.allow_unauthenticated: true`."""
    if server.api_keys or server.allow_unauthenticated or is_loopback(server.host):
        return None
    return (f"server.host {server.host!r} is reachable from other machines and no client key is configured "
            f"({_why_no_key(server)}). Set a key, listen on 127.0.0.1, or set server.allow_unauthenticated: true to "
            "serve without keys on purpose.")


def open_console_warning(server: ServerConfig) -> str | None:
    """What to tell an operator about `server.admin_auth: false` on a bind other machines reach, or None: with
    client keys configured, the console, /admin/reload and the unload routes then answer anyone who reaches the port
    without a key (they ask for none on loopback, where only this machine does; without any key the router refuses
    to serve beyond loopback unless `allow_unauthenticated`, which says so itself)."""
    if server.admin_auth or not server.api_keys or is_loopback(server.host):
        return None
    return (f"server.admin_auth: false on {server.host!r}, reachable from other machines: the console (/ui), "
            "/admin/reload and the unload routes answer anyone who reaches this port, WITHOUT a client key (they "
            "can read the request log and captures, reload the config and stop engines). Remove it, or listen on "
            "127.0.0.1")


def _why_no_key(server: ServerConfig) -> str:
    """Why `server` has no client key, naming the unset variables (never a value)."""
    if not server.unset_key_vars:
        return "server.api_keys is empty"
    return f"every key of server.api_keys names an unset environment variable: {', '.join(server.unset_key_vars)}"


def unset_keys_warning(server: ServerConfig) -> str | None:
    """What to tell an operator at start-up about client keys left out because their environment variables are
    unset (variables named, never a value), or None. On loopback, with every key left out, no key is required."""
    if not server.unset_key_vars:
        return None
    names = ", ".join(server.unset_key_vars)
    said = f"variable {names} is" if len(server.unset_key_vars) == 1 else f"variables {names} are"
    if server.api_keys:
        effect = "the keys naming them do not exist; requests use the other configured keys"
    elif is_loopback(server.host):
        effect = f"no client key is left, so requests to {server.host} need none"
    else:
        effect = "no client key is left (server.allow_unauthenticated: true)"
    return f"client key environment {said} not set: {effect}"


def reload_refusal(old: ServerConfig, new: ServerConfig) -> str | None:
    """Why a reload from `old` to `new` must be rejected, or None: it would turn authentication off."""
    if new.api_keys or new.allow_unauthenticated:
        return None
    if old.api_keys:
        return (f"the new config has no usable client key ({_why_no_key(new)}): applying it would turn "
                "authentication off. Set a key, or set server.allow_unauthenticated: true to serve without keys on "
                "purpose.")
    return open_relay_refusal(new)
