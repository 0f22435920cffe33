"""The worker's constrained-decoding service: from a chat request to the logits processor that enforces it.

Built once the model is loaded (the llguidance tokenizer takes about a second for a large vocabulary). Grammars
compile off the event loop and are cached; a grammar the library cannot compile falls back to unconstrained
decoding (repair still runs) and is reported in the `x-agentgate-constrained` header as `fallback`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from engines.worker.constrain import FORMATS, Plan, plan_chat
from engines.worker.matching import (
    GrammarCache,
    GrammarError,
    GrammarProcessor,
    MaskCache,
    closing_tokens,
    is_panic,
    make_llg_tokenizer,
)
from engines.worker.params import ChatRequest

log = logging.getLogger("agentgate.engine")

HEADER = "x-agentgate-constrained"  # response: tools | tools_lazy | json | none | off | fallback | unsupported_format
OPT_OUT_HEADER = "x-agentgate-constrain"  # request: "off" decodes this request unconstrained


@dataclass
class Guided:
    """The constraint of one request: processors for the sequence and the label reported for it."""

    label: str
    processors: list[Any] = field(default_factory=list)

    @property
    def processor(self) -> GrammarProcessor | None:
        return self.processors[0] if self.processors else None

    @property
    def constrained(self) -> bool:
        return bool(self.processors)


@dataclass
class GuideStats:
    requests: dict[str, int] = field(default_factory=dict)

    def count(self, label: str) -> None:
        self.requests[label] = self.requests.get(label, 0) + 1


class Guide:
    def __init__(self, cache: GrammarCache, n_vocab: int, family: str, think: tuple[str, str] | None) -> None:
        self.cache = cache
        self.n_vocab = n_vocab
        self.family = family
        self.think = think
        self.stats = GuideStats()
        self._triggers: dict[str, int | None] = {}
        markers = {m for f in FORMATS.values() for m in (f.opener, f.closer) if m} | set(think or ())
        self.special = frozenset(m for m in markers if cache.special_token(m) is not None)
        self.closing = closing_tokens(cache.tokenizer, n_vocab)
        self.masks = MaskCache()  # shared by every sequence's processor (they all run on the MLX thread)

    @classmethod
    def build(cls, hf_tokenizer: Any, n_vocab: int, family: str, think: tuple[str, str] | None,
              lock: threading.Lock) -> Guide:
        with lock:
            llg = make_llg_tokenizer(hf_tokenizer, n_vocab)
        return cls(GrammarCache(llg), n_vocab, family, think)

    def plan(self, req: ChatRequest, reasoning_open: bool) -> Plan:
        return plan_chat(family=self.family, tools=req.tools, tool_choice=req.tool_choice,
                         parallel_tool_calls=req.parallel_tool_calls, response_format=req.response_format,
                         reasoning_open=reasoning_open, think=self.think, special=self.special)

    def _trigger_id(self, text: str) -> int | None:
        if text not in self._triggers:
            self._triggers[text] = self.cache.token_id(text)
        return self._triggers[text]

    def guided(self, plan: Plan) -> Guided:
        """Compile (or fetch) the plan's grammar and make this sequence's processor. Blocking: run it off the loop."""
        if plan.grammar is None:
            return Guided(plan.label)
        trigger = None
        if plan.trigger is not None:
            trigger = self._trigger_id(plan.trigger)
            if trigger is None:
                return Guided("unsupported_trigger")
        try:
            matcher = self.cache.matcher(plan.grammar)
        except GrammarError as exc:
            log.warning("a %s grammar did not compile; decoding unconstrained: %s", plan.kind, str(exc)[:300])
            return Guided("fallback")
        except BaseException as exc:  # the library's own failures (a panic too) are fallbacks, never request errors
            if not isinstance(exc, Exception) and not is_panic(exc):
                raise
            log.warning("compiling a %s grammar failed; decoding unconstrained: %s", plan.kind, exc)
            return Guided("fallback")
        eos = self.cache.tokenizer.eos_token
        proc = GrammarProcessor(matcher, self.n_vocab, trigger=trigger, eos=eos, closing=self.closing,
                                masks=self.masks)
        return Guided(plan.kind, [proc])

    async def for_request(self, req: ChatRequest, reasoning_open: bool) -> Guided:
        try:
            plan = self.plan(req, reasoning_open)
        except RecursionError:  # a schema nested past what the grammar builder walks: unconstrained, as any failure
            log.warning("a grammar was not built (a schema nested too deep); decoding unconstrained")
            self.stats.count("fallback")
            return Guided("fallback")
        if plan.grammar is None:
            guided = Guided(plan.label)
        else:
            guided = await asyncio.get_running_loop().run_in_executor(None, self.guided, plan)
        self.stats.count(guided.label)
        return guided

    def snapshot(self) -> dict[str, Any]:
        s = self.cache.stats
        return {"family": self.family, "requests": dict(self.stats.requests),
                "grammars": {"cached": len(self.cache), "compiled": s.compiled, "hits": s.hits, "failed": s.failed}}
