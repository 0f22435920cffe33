"""Which call each streamed tool-call delta belongs to.

An upstream's `index` names the call a delta continues, except where the upstream reuses one: Ollama, Gemini's
OpenAI-compatible endpoint and gateways translating Responses or Gemini streams give every parallel call index 0,
and some send no index at all. Joined by index, their calls become one (`{"path": "a"}{"path": "b"}`, which no
tool takes: the calls the model made were lost). Here a delta that is another call's header starts a new call: it
names a tool and brings another id, and the tool is another one or this call's arguments are whole (parallel calls
to one tool); or it brings the first id at an index whose call had none, with arguments, after whole ones. An id
alone decides nothing (some upstreams change a call's id on its own fragments, or send a new one with each), nor
does a name at an index (some cut a name in pieces sent with argument pieces, others resend it whole with every
delta): parallel calls at one index without ids stay one call. Without an index, a delta continues the last call
unless it names another tool after that call's arguments began, or brings this tool's name with another id or
with arguments after whole ones.

Calls are numbered in the order they first appear, from 0 (an upstream's own numbering is only a key).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .types import name_with


def whole_json(pieces: list[str]) -> bool:
    """Whether argument pieces joined are one whole JSON value (most are not: looked at only when the last piece
    ends like one)."""
    if not pieces or not pieces[-1].rstrip().endswith(("}", "]")):
        return False
    try:
        json.loads("".join(pieces))
    except (ValueError, RecursionError):
        return False
    return True


MAX_WHOLE_CHECKS = 32  # per call: past this many, its arguments are taken not to be whole (no quadratic work)


class CallSlots:
    __slots__ = ("_at", "_began", "_checks", "_ids", "_last", "_names")

    def __init__(self) -> None:
        self._at: dict[int, int] = {}  # an upstream index -> the call it continues now
        self._ids: list[str] = []      # per call: its id ("" until one came)
        self._names: list[str] = []    # per call: its name so far
        self._began: list[bool] = []   # per call: whether an argument piece came
        self._checks: list[int] = []   # per call: the times `whole` was asked
        self._last = -1                # the call the latest delta went to

    def of_arguments(self, index: int) -> int:
        """The call an argument-only delta at `index` continues (the usual delta: one look-up)."""
        slot = self._at.get(index)
        if slot is None:
            slot = self._new(index, "", "")
        self._began[slot] = True
        self._last = slot
        return slot

    def of_delta(self, index: object, call_id: object, name: object, has_args: bool,
                 whole: Callable[[int], bool] | None = None) -> int:
        """The call a delta belongs to, from its `index`, `id` and `function.name`, and whether it carries
        arguments; `whole(call)` tells whether a call's arguments so far are a whole JSON value (asked only of a
        call another header with its own tool's name follows; without it, they are taken to be)."""
        cid = call_id if type(call_id) is str else ""
        piece = name if type(name) is str else ""
        at = index if isinstance(index, int) else None
        slot = self._at.get(at) if at is not None else self._last if self._last >= 0 else None
        if slot is None or (piece and self._starts_another(slot, cid, piece, at is not None, has_args, whole)):
            slot = self._new(at, cid, piece)
        else:
            if cid and not self._ids[slot]:
                self._ids[slot] = cid
            if piece:
                self._names[slot] = name_with(self._names[slot], piece)
        if has_args:
            self._began[slot] = True
        self._last = slot
        return slot

    def continued(self, index: object) -> tuple[int, str] | None:
        """The call a delta at `index` (not an int: a delta without one) that names no other call continues now,
        and its id ("" while none came); None before any. Nothing is taken (see `of_delta`)."""
        slot = self._at.get(index) if isinstance(index, int) else self._last if self._last >= 0 else None
        return None if slot is None else (slot, self._ids[slot])

    def _starts_another(self, slot: int, cid: str, piece: str, indexed: bool, has_args: bool,
                        whole: Callable[[int], bool] | None) -> bool:
        """Whether a delta naming `piece` is another call's header (an id alone never is: see the module)."""
        known, name = self._ids[slot], self._names[slot]
        if cid and cid == known:
            return False
        if indexed:
            if not cid:
                return False
            if not known:  # an id for a call that had none: another call's when arguments come with it after
                return has_args and self._ended(slot, whole)  # whole ones (else a late id of this one's)
            return (bool(name) and piece != name) or self._ended(slot, whole)
        if name and piece != name:
            return bool(cid) or self._began[slot]
        return (bool(cid) or has_args) and self._ended(slot, whole)

    def _ended(self, slot: int, whole: Callable[[int], bool] | None) -> bool:
        """Whether call `slot`'s arguments began and are whole (`whole` unknown: taken to be)."""
        if not self._began[slot]:
            return False
        if whole is None:
            return True
        if self._checks[slot] >= MAX_WHOLE_CHECKS:
            return False
        self._checks[slot] += 1
        return whole(slot)

    def _new(self, index: int | None, cid: str, piece: str) -> int:
        slot = len(self._ids)
        self._ids.append(cid)
        self._names.append(piece)
        self._began.append(False)
        self._checks.append(0)
        if index is not None:
            self._at[index] = slot
        return slot
