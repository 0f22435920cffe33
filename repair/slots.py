"""Which call each streamed tool-call delta belongs to.

An upstream's `index` names the call a delta continues, except where the upstream reuses one: Ollama, Gemini's
OpenAI-compatible endpoint and gateways translating Responses or Gemini streams give every parallel call index 0,
and some send no index at all. Joined by index, their calls become one (`{"path": "a"}{"path": "b"}`, which no
tool takes: the calls the model made were lost). Here a delta at an index whose call has another id starts a new
call. A name decides nothing where there is an index (some upstreams cut a name in pieces sent along with argument
pieces, others resend it whole with every delta), so parallel calls at one index without ids stay one call. A delta
without an index continues the last call unless it starts one the same way, or brings an id or a name that call
did not have after its arguments began.

Calls are numbered in the order they first appear, from 0 (an upstream's own numbering is only a key).
"""

from __future__ import annotations

from .types import name_with


class CallSlots:
    __slots__ = ("_at", "_began", "_ids", "_last", "_names")

    def __init__(self) -> None:
        self._at: dict[int, int] = {}  # an upstream index -> the call it continues now
        self._ids: list[str] = []      # per call: its id ("" until one came)
        self._names: list[str] = []    # per call: its name so far
        self._began: list[bool] = []   # per call: whether an argument piece came
        self._last = -1                # the call the latest delta went to

    def of_arguments(self, index: int) -> int:
        """The call an argument-only delta at `index` continues (the usual delta: one look-up)."""
        slot = self._at.get(index)
        if slot is None:
            slot = self._new(index, "", "")
        self._began[slot] = True
        self._last = slot
        return slot

    def of_delta(self, index: object, call_id: object, name: object, has_args: bool) -> int:
        """The call a delta belongs to, from its `index`, `id` and `function.name`, and whether it carries
        arguments."""
        cid = call_id if type(call_id) is str else ""
        piece = name if type(name) is str else ""
        at = index if isinstance(index, int) else None
        slot = self._at.get(at) if at is not None else self._last if self._last >= 0 else None
        if slot is None or self._starts_another(slot, cid, piece, at is not None):
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

    def _starts_another(self, slot: int, cid: str, piece: str, indexed: bool) -> bool:
        known = self._ids[slot]
        if cid and known:
            return cid != known
        if indexed or not self._began[slot]:
            return False
        # no index, and the call's arguments began: a header now opens another call, unless it resends this one's
        return bool(cid) or bool(piece and piece != self._names[slot])

    def _new(self, index: int | None, cid: str, piece: str) -> int:
        slot = len(self._ids)
        self._ids.append(cid)
        self._names.append(piece)
        self._began.append(False)
        if index is not None:
            self._at[index] = slot
        return slot
