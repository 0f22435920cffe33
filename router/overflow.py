"""A prompt too long for the model's context, as an upstream says it, and as each dialect's clients recognise it.

Upstreams word it their own way: OpenAI (`code: "context_length_exceeded"`, "maximum context length is L tokens.
However, your messages resulted in N tokens"), vLLM ("your request has N input tokens", "you requested T tokens
(N in the messages, O in the completion)", "'max_tokens' ... is too large"), llama-server (`type:
"exceed_context_size_error"` with `n_prompt_tokens` and `n_ctx`), LM Studio ("keep the first N tokens ... context
length of only L tokens"), Ollama ("input length exceeds the context length"), Anthropic ("prompt is too long: N
tokens > L maximum"), our engine worker. Clients look for one shape each: Claude Code compacts on a 400
`invalid_request_error` whose message holds "prompt is too long" (and reads "N tokens > L maximum" from it, or "input
length and `max_tokens` exceed context limit: N + O > L" to lower `max_tokens`); Codex on a Responses error whose
`code` is "context_length_exceeded"; the openai SDKs give it as `BadRequestError.code`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

CODE = "context_length_exceeded"
_STATUSES = frozenset({400, 413, 422})

_SAYS = re.compile(
    r"context_length_exceeded|exceed_context_size|maximum context length|prompt is too long"
    r"|exceeds? the (?:available )?context (?:size|length|window)|context length of only"
    r"|exceed context limit|maximum (?:prompt|input) length is", re.I)
_LIMIT = (
    re.compile(r"maximum (?:context|prompt|input) length (?:is|of) (\d+)", re.I),
    re.compile(r"tokens? > (\d+) maximum", re.I),
    re.compile(r"available context size \((\d+) tokens?\)", re.I),
    re.compile(r"context length of only (\d+)", re.I),
    re.compile(r"exceed context limit: \d+ \+ \d+ > (\d+)", re.I),
)
_PROMPT = (
    re.compile(r"prompt is too long: (\d+) tokens?", re.I),
    re.compile(r"your messages resulted in (\d+) tokens?", re.I),
    re.compile(r"your request has (\d+) (?:input |prompt )?tokens?", re.I),
    re.compile(r"\((\d+) in the messages", re.I),
    re.compile(r"requested (\d+) tokens? in the messages", re.I),
    re.compile(r"prompt (?:has|contains) (\d+) (?:input )?tokens?", re.I),
    re.compile(r"request \((\d+) tokens?\) exceeds", re.I),
    re.compile(r"keep the first (\d+) tokens?", re.I),
    re.compile(r"exceed context limit: (\d+) \+", re.I),
)
_OUTPUT = (
    re.compile(r"(\d+) in the completion", re.I),
    re.compile(r"is too large: (\d+)", re.I),
    re.compile(r"requested (\d+) output tokens?", re.I),
    re.compile(r"exceed context limit: \d+ \+ (\d+)", re.I),
)

RESPONSES_MESSAGE = "Your input exceeds the context window of this model. Please adjust your input and try again."


@dataclass(frozen=True, slots=True)
class Overflow:
    """What the upstream said of the overflow: the prompt's tokens, the context's, and the completion's limit when
    it was that limit which did not fit (the prompt itself did); None where it did not say."""

    prompt: int | None
    limit: int | None
    output: int | None

    @property
    def output_too_large(self) -> bool:
        """The prompt fits the context; it is the prompt and `max_tokens` together that do not."""
        p, lim = self.prompt, self.limit
        return p is not None and lim is not None and self.output is not None and p < lim

    def anthropic_message(self, said: str) -> str:
        """Anthropic's own words (what Claude Code reads); `said`, the upstream's, when it gave no numbers."""
        p, lim, out = self.prompt, self.limit, self.output
        if self.output_too_large:
            return (f"input length and `max_tokens` exceed context limit: {p} + {out} > {lim}, decrease input "
                    "length or `max_tokens` and try again")
        if p is not None and lim is not None:
            return f"prompt is too long: {p} tokens > {lim} maximum"
        return said if "prompt is too long" in said else f"prompt is too long: {said}"

    def chat_message(self, said: str) -> str:
        """OpenAI's Chat Completions words; `said`, the upstream's, when it gave no numbers."""
        p, lim, out = self.prompt, self.limit, self.output
        head = f"This model's maximum context length is {lim} tokens."
        if self.output_too_large:
            assert p is not None and out is not None
            return (f"{head} However, you requested {p + out} tokens ({p} in the messages, {out} in the "
                    "completion). Please reduce the length of the messages or completion.")
        if p is not None and lim is not None:
            return f"{head} However, your messages resulted in {p} tokens. Please reduce the length of the messages."
        return said


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        if (m := pattern.search(text)) is not None:
            return int(m.group(1))
    return None


def _count(err: dict[str, Any], key: str) -> int | None:
    value = err.get(key)
    return value if type(value) is int and value >= 0 else None


def overflow_of(status: int, doc: Any, message: str) -> Overflow | None:
    """The overflow an upstream's error answer (`status`, its parsed body `doc`, its readable `message`) says, or
    None when it is some other error."""
    if status not in _STATUSES:
        return None
    err = doc.get("error") if isinstance(doc, dict) else None
    err = err if isinstance(err, dict) else doc if isinstance(doc, dict) else {}
    code, etype = err.get("code"), err.get("type")
    if code != CODE and etype != "exceed_context_size_error" and _SAYS.search(message) is None:
        return None
    prompt = _count(err, "n_prompt_tokens") or _first(_PROMPT, message)
    limit = _count(err, "n_ctx") or _first(_LIMIT, message)
    return Overflow(prompt, limit, _first(_OUTPUT, message))


class ContextOverflowError(ApiError):
    """A 400 `context_length_exceeded`: the prompt does not fit the model's context. Its message and param are the
    Chat Completions route's; Messages (`anthropic_body`) and Responses (`for_responses`) word it their way."""

    def __init__(self, overflow: Overflow, said: str, provider: str | None = None) -> None:
        headers = {"x-agentgate-provider": provider} if provider else None
        super().__init__(400, overflow.chat_message(said), CODE, type="invalid_request_error", param="messages",
                         headers=headers)
        self.overflow = overflow
        self.said = said

    def anthropic_body(self) -> dict[str, object]:
        return {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": self.overflow.anthropic_message(self.said)}}

    def for_responses(self) -> ApiError:
        return ApiError(400, RESPONSES_MESSAGE, CODE, type="invalid_request_error", param="input",
                        headers=self.headers)
