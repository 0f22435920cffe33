"""Per-sequence output decoding: streaming detokenization, `<think>` splitting and stop strings.

Text is matched with mlx-lm's `TextStateMachine`, which holds back text that may be the start of a marker or a
stop string until it is known not to be one. A matched stop string ends the sequence; it and anything after it
are dropped, and `OutputDecoder.stop_word` tells which one it was (the worker reports it, as vLLM does).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlx_lm.generate import TextStateMachine

Kind = Literal["content", "reasoning"]


@dataclass
class Piece:
    kind: Kind
    text: str


class OutputDecoder:
    def __init__(
        self,
        detokenizer: Any,
        *,
        think: tuple[str, str] | None = None,
        reasoning: bool = False,
        stop: Sequence[str] = (),
        lock: threading.Lock | None = None,
    ) -> None:
        """`lock` guards detokenizers that call the tokenizer itself (HF fast tokenizers are not thread-safe)."""
        self._lock: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        transitions: dict[str, list[tuple[str, str | None]]] = {"normal": []}
        if think is not None:
            transitions["normal"].append((think[0], "reasoning"))
            transitions["reasoning"] = [(think[1], "normal")]
        for word in stop:
            for edges in transitions.values():
                edges.append((word, None))
        self._stops = [word for word in stop if word]
        self._sm = TextStateMachine({k: v for k, v in transitions.items() if v} or None)
        # No marker and no stop string: the machine would pass every text through whole, so it is not run.
        self._plain = think is None and not stop
        self._state = self._sm.make_state("reasoning" if reasoning and think is not None else "normal")
        self._detok = detokenizer
        self.stopped = False  # a stop string matched
        self.stop_word: str | None = None  # which one
        self._pending_ws = ""
        self._reasoning_started = False
        self._seen_reasoning = False
        self._content_started = False
        self.reasoning_tokens = 0  # tokens that opened, were in or closed a <think> block (usage's reasoning_tokens)

    def add_token(self, token: int) -> list[Piece]:
        if self.stopped:
            return []
        with self._lock:
            self._detok.add_token(token)
            text = self._detok.last_segment
        if self._plain:
            return self._feed(text)
        before = self._state[0]
        out = self._feed(text)
        if before == "reasoning" or self._state[0] == "reasoning":
            self.reasoning_tokens += 1
        return out

    def finish(self) -> list[Piece]:
        """Flush everything held back (call once, when the sequence ends)."""
        if self.stopped:
            return []
        with self._lock:
            self._detok.finalize()
            text = self._detok.last_segment
        out = self._feed(text)
        if not self.stopped:
            self._state, text, state = TextStateMachine.flush(self._state)
            out += self._emit([(state, text)])
        return out

    def _feed(self, text: str) -> list[Piece]:
        if not text:
            return []
        if self._plain:
            self._content_started = True
            return [Piece("content", text)]
        held = self._state[3]  # the state is (name, trie node, states, text held back)
        self._state, segments = TextStateMachine.split(self._state, text)
        out = self._emit(segments)
        if self.stopped:
            self.stop_word = self._matched(held + text, self._state[3])
        return out

    def _matched(self, seen: str, after: str) -> str | None:
        """The stop string that ended `seen` before `after` (the text that followed it): the longest of those
        that end there, as the machine matches."""
        head = seen[: len(seen) - len(after)]
        ending = [word for word in self._stops if head.endswith(word)]
        return max(ending, key=len) if ending else None

    def _emit(self, segments: list[tuple[str | None, str]]) -> list[Piece]:
        out: list[Piece] = []
        for state, text in segments:
            if state is None:
                self.stopped = True
                break
            if state == "reasoning":
                self._seen_reasoning = True
                if not self._reasoning_started:
                    text = text.lstrip()
                    if not text:
                        continue
                    self._reasoning_started = True
                text = self._pending_ws + text
                kept = text.rstrip()
                self._pending_ws = text[len(kept) :]
                if kept:
                    out.append(Piece("reasoning", kept))
            else:
                self._pending_ws = ""
                if not text:
                    continue
                if not self._content_started and self._seen_reasoning:
                    text = text.lstrip()
                    if not text:
                        continue
                self._content_started = True
                out.append(Piece("content", text))
        return _merge(out)


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for p in pieces:
        if merged and merged[-1].kind == p.kind:
            merged[-1] = Piece(p.kind, merged[-1].text + p.text)
        else:
            merged.append(p)
    return merged
