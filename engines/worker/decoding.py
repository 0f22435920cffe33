"""Per-sequence output decoding: streaming detokenization, `<think>` splitting and stop strings.

The generated text continues the prompt, so a space it starts with is text: `Detokenizers` hands out mlx-lm's
streaming detokenizers set to keep it, where mlx-lm's drop it (see the class).

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
from mlx_lm.tokenizer_utils import (
    BPEStreamingDetokenizer,
    NaiveStreamingDetokenizer,
    SPMStreamingDetokenizer,
    StreamingDetokenizer,
)

Kind = Literal["content", "reasoning"]


@dataclass
class Piece:
    kind: Kind
    text: str


ANCHOR_CANDIDATES = ("a", "x", "0", ".")


class _AnchoredDecode:
    """Decodes token ids as the text that follows one fixed token: the tokenizer's decode drops the space that
    starts the ids it is given (SentencePiece, Metaspace decoders), the text after a token keeps it."""

    def __init__(self, tokenizer: Any, anchor: int, anchor_text: str) -> None:
        self._tokenizer = tokenizer
        self._anchor = anchor
        self._anchor_text = anchor_text

    @classmethod
    def find(cls, tokenizer: Any) -> _AnchoredDecode | None:
        """One built on a token that decodes to itself alone, none where the vocabulary has no such token."""
        for text in ANCHOR_CANDIDATES:
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1 and tokenizer.decode(ids) == text:
                return cls(tokenizer, ids[0], text)
        return None

    def decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode([self._anchor, *ids])
        if text.startswith(self._anchor_text):
            return text[len(self._anchor_text) :]
        return str(self._tokenizer.decode(ids))


class _BPEKeepingSpace(BPEStreamingDetokenizer):
    """mlx-lm's BPE detokenizer without its trim of the space that starts the text."""

    def _maybe_trim_space(self, current_text: str) -> str:
        return current_text


class Detokenizers:
    """Fresh streaming detokenizers for one model's tokenizer (mlx-lm's `TokenizerWrapper`) that keep every space
    the model generates, the one that starts the text included, as OpenAI and vLLM return it: the text continues
    the prompt (`"The capital of France is"` + `" Paris"`). mlx-lm's drop that space: its BPE and SPM detokenizers
    trim it, and its naive one decodes the text (again from each newline) with the tokenizer's `decode`, which
    drops it for SentencePiece and Metaspace decoders; that one decodes after an anchor token here instead."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        proto = tokenizer.detokenizer
        self.naive = isinstance(proto, NaiveStreamingDetokenizer)  # its decodes use the tokenizer (not thread-safe)
        self._anchored = _AnchoredDecode.find(proto._tokenizer) if self.naive else None

    def new(self) -> StreamingDetokenizer:
        detok: StreamingDetokenizer = self._tokenizer.detokenizer  # a copy of the wrapper's, reset
        if isinstance(detok, BPEStreamingDetokenizer):
            detok.__class__ = _BPEKeepingSpace  # this copy, not a new one: that would rebuild the token map
        elif isinstance(detok, SPMStreamingDetokenizer):
            detok.trim_space = False
        elif isinstance(detok, NaiveStreamingDetokenizer) and self._anchored is not None:
            detok._tokenizer = self._anchored
        return detok


class OutputDecoder:
    def __init__(
        self,
        detokenizer: Any,
        *,
        think: tuple[str, str] | None = None,
        reasoning: bool = False,
        stop: Sequence[str] = (),
        lock: threading.Lock | None = None,
        continued: bool = False,
    ) -> None:
        """`lock` guards detokenizers that call the tokenizer itself (HF fast tokenizers are not thread-safe).
        `continued`: the output goes on from a message of the prompt (`continue_final_message`), so reasoning it
        starts in continues the message's reasoning, the space it starts with included."""
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
        self._reasoning_started = continued and self._state[0] == "reasoning"
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
