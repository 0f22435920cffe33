"""Keeping a provider's credentials out of what reaches the client: upstream bodies and upstream headers.

`scrub_body` redacts a secret from a body whether it appears literally or JSON-escaped (`\\u0073k-...`): the
literal form by a byte replace, the escaped forms by decoding the JSON and redacting the decoded strings.
`safe_headers` rebuilds the few upstream response headers the router uses from validated values; nothing an
upstream sends is copied as is.
"""

from __future__ import annotations

import functools
import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from .resilience import parse_retry_after

REDACTED = "[redacted]"
MAX_RETRY_AFTER = 86_400  # a longer Retry-After is cut to a day

_MEDIA_TYPES = frozenset({
    "application/json", "text/event-stream", "text/plain", "text/html", "application/problem+json",
    "application/x-ndjson", "application/octet-stream",
})
_REPAIR_KINDS = re.compile(r"[a-z][a-z0-9_]{0,47}(,[a-z][a-z0-9_]{0,47}){0,15}")


def _secrets(secrets: str | Iterable[str | None] | None) -> list[str]:
    if secrets is None:
        return []
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    return sorted({s for s in items if s}, key=len, reverse=True)


def scrub_text(text: str, secrets: str | Iterable[str | None] | None) -> str:
    """`text` (already decoded) with every secret replaced by `[redacted]`."""
    for s in _secrets(secrets):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def scrub_literal(data: bytes, secrets: str | Iterable[str | None] | None) -> bytes:
    """`data` with every literal occurrence of a secret redacted (for bytes we encoded ourselves, where a decoded
    secret shows literally)."""
    for s in _secrets(secrets):
        raw = s.encode()
        if raw in data:
            data = data.replace(raw, REDACTED.encode())
    return data


def _scrub_doc(node: Any, secrets: list[str]) -> tuple[Any, bool]:
    if isinstance(node, str):
        out = scrub_text(node, secrets)
        return out, out != node
    if isinstance(node, list):
        changed = False
        items = []
        for v in node:
            v2, c = _scrub_doc(v, secrets)
            items.append(v2)
            changed |= c
        return items, changed
    if isinstance(node, dict):
        changed = False
        obj = {}
        for k, v in node.items():
            k2, ck = _scrub_doc(k, secrets)
            v2, cv = _scrub_doc(v, secrets)
            obj[k2] = v2
            changed |= ck or cv
        return obj, changed
    return node, False


_SHORT_ESCAPED = frozenset('"\\/\b\f\n\r\t')  # what a JSON escape other than \uXXXX can stand for
WITHHELD = (b'{"error": {"message": "The upstream\'s answer held a configured credential; it was withheld.", '
            b'"type": "upstream_error", "code": "upstream_credential_withheld"}}')
_ESCAPE = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_ESCAPED_CHAR = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
                 b"t": b"\t"}


def _unescaped(match: re.Match[bytes]) -> bytes:
    code, short = match.group(1), match.group(2)
    if short is not None:
        return _ESCAPED_CHAR[short]
    return chr(int(code, 16)).encode("utf-8", "replace")


def _spelled(body: bytes, raws: list[bytes]) -> bool:
    """Whether a secret can be read in `body` once its JSON escapes, its percent-encoding, or both, are decoded
    (whatever the body is: JSON or not, parsable or not)."""
    forms = [body]
    if b"\\" in body:
        forms.append(_ESCAPE.sub(_unescaped, body))
    if b"%" in forms[-1]:  # percent-encoded, its percent signs as they are or JSON-escaped
        forms += [urllib.parse.unquote_to_bytes(f) for f in list(forms) if b"%" in f]
        if b"\\" in forms[-1]:  # escapes percent-encoded
            forms.append(_ESCAPE.sub(_unescaped, forms[-1]))
    return any(r in f for f in forms[1:] for r in raws)


def scrub_body(body: bytes, secrets: str | Iterable[str | None] | None) -> bytes:
    """`body` with every secret redacted, literal, JSON-escaped or percent-encoded: the literal form by a byte
    replace, an escaped one by redacting the decoded JSON document's strings. A body in which a secret can still be
    read after that (not JSON, JSON the standard library refuses, a duplicate key, a percent-encoding) is withheld
    whole (`WITHHELD`, an OpenAI-shaped error)."""
    found = _secrets(secrets)
    if not found or not body:
        return body
    body = scrub_literal(body, found)
    marker = b"\\" if any(c in _SHORT_ESCAPED for s in found for c in s) else b"\\u"
    if marker not in body and b"%" not in body:  # no escape that could spell a secret: the byte replace saw it all
        return body
    raws = [s.encode() for s in found]
    if not _spelled(body, raws):
        return body
    try:
        doc, changed = _scrub_doc(json.loads(body), found)
    except (ValueError, RecursionError):
        return WITHHELD
    out = json.dumps(doc, ensure_ascii=False).encode("utf-8", "backslashreplace") if changed else body
    return WITHHELD if _spelled(out, raws) else out


@functools.lru_cache(maxsize=64)  # an upstream sends the same one or two values on every reply
def _content_type(value: str | None) -> str | None:
    if not value:
        return None
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media not in _MEDIA_TYPES:
        return "text/plain" if media.startswith("text/") else "application/octet-stream"
    charset = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_-]+)", params)
    if charset and charset.group(1).lower() == "utf-8":
        return f"{media}; charset=utf-8"
    return media


def _retry_after(value: str | None) -> str | None:
    if not value or len(value) > 64:
        return None
    seconds = parse_retry_after(value)
    if seconds is None or math.isnan(seconds):
        return None
    return str(min(MAX_RETRY_AFTER, math.ceil(seconds)))


CONSTRAINT_LABELS = frozenset({"tools", "tools_lazy", "json", "none", "off", "fallback", "broken",
                               "unsupported_format", "unsupported_trigger", "no_trigger"})


def safe_headers(raw: Mapping[str, str], secrets: str | Iterable[str | None] | None = None) -> dict[str, str]:
    """The upstream response headers the router reads, rebuilt from validated values: `Content-Type` (one of a few
    media types), `Retry-After` (whole seconds), `x-agentgate-repairs` (repair kind names),
    `x-agentgate-constrained` (one of a local engine's constraint labels) and `x-agentgate-repaired` (a repair
    mode, "repair" or "detect"). Everything else is dropped."""
    out: dict[str, str] = {}
    ctype = _content_type(raw.get("Content-Type"))
    if ctype:
        out["Content-Type"] = ctype
    retry = _retry_after(raw.get("Retry-After"))
    if retry is not None:
        out["Retry-After"] = retry
    repairs = raw.get("x-agentgate-repairs")
    if repairs and _REPAIR_KINDS.fullmatch(repairs) and scrub_text(repairs, secrets) == repairs:
        out["x-agentgate-repairs"] = repairs
    constrained = raw.get("x-agentgate-constrained")
    if constrained in CONSTRAINT_LABELS:
        out["x-agentgate-constrained"] = constrained
    repaired = raw.get("x-agentgate-repaired")
    if repaired in ("repair", "detect"):
        out["x-agentgate-repaired"] = repaired
    return out
