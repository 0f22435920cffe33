"""One repair owner per request: who repairs a reply's tool calls, the router or the local engine that made it.

Our MLX engine worker runs tool-call repair itself (it knows its model's format) and says so with
`x-agentgate-repaired` on every chat reply (engines/wire.py). For such a reply the router validates instead of
repairing again (`repair.validate`): content passes through unscanned (prose the engine left as prose stays
prose), each structured call is checked against the declared tools, and the engine's own report (the repair kinds
it made, the calls it could not make valid) is what the router counts, once. The decision needs both signs: the
upstream is a local engine the router supervises (`kind == "engine"`, so a remote provider's headers never turn
repair off) and the reply carries the header (an external engine command that does not repair never sends it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engines.wire import REPAIRED_HEADER, REPAIRS_HEADER, REPORT_MEMBER
from repair import StreamRepairer, ToolIndex
from repair.validate import Reported, StreamValidator

from .chat_types import ChatRequest
from .config.model import RepairPolicy


def engine_repaired(kind: str, headers: Mapping[str, str]) -> bool:
    """Whether the reply comes from a local engine that already repaired it (see the module docstring)."""
    return kind == "engine" and REPAIRED_HEADER in headers


def whole_report(doc: dict[str, Any], headers: Mapping[str, str]) -> Reported:
    """The engine's report on a whole completion, taken out of the document (clients never see it)."""
    return Reported.parse(doc.pop(REPORT_MEMBER, None), headers.get(REPAIRS_HEADER))


def chunk_report(doc: dict[str, Any]) -> Reported | None:
    """The engine's report when `doc` is the stream chunk that carries it."""
    member = doc.get(REPORT_MEMBER)
    return None if member is None else Reported.parse(member)


def stream_checker(engine: bool, index: ToolIndex | None, req: ChatRequest, policy: RepairPolicy,
                   max_chars: int, whole: bool = False) -> StreamRepairer | StreamValidator:
    """A stream's repairer, or for an engine's reply its validator; calls go out as they arrive with on_failure
    "content", and are held to the end with "retry" and "error" (where they can still be refused or re-asked), and
    for a `whole` stream, one already in hand (sent in one write, they would gain nothing from going piece by
    piece)."""
    incremental = policy.on_failure == "content" and not whole
    if engine:
        return StreamValidator(index, tool_choice=req.tool_choice, parallel_tool_calls=req.parallel_tool_calls,
                               incremental=incremental, max_chars=max_chars)
    return StreamRepairer(index, tool_choice=req.tool_choice, parallel_tool_calls=req.parallel_tool_calls,
                          format=policy.format, mode=policy.mode, incremental=incremental, max_chars=max_chars,
                          generic_forms=not req.data_answer, keep_failed_calls=policy.on_failure == "content",
                          taken_ids=req.taken_ids)
