"""Chat templates: messages (with tools and tool results) to prompt tokens, and the model's tool-call format.

The tool-call family is, in order: the `--tool-format` option, the tokenizer's `tool_parser_type` (from
tokenizer_config.json, or what mlx-lm inferred from the template), or a family sniffed from the chat template.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engines.wire import WireError
from engines.worker.errors import bad_request
from repair import FAMILIES, family_for_parser_type, sniff_template


@dataclass
class RenderedPrompt:
    tokens: list[int]
    reasoning: bool  # the prompt leaves a `<think>` block open, so output starts as reasoning


def resolve_tool_format(option: str | None, tokenizer: Any) -> str:
    """The tool-call family for `repair` ("auto" when nothing identifies one)."""
    if option and option != "auto":
        if option not in FAMILIES:
            raise ValueError(f"unknown tool format {option!r}; choose auto or one of {', '.join(FAMILIES)}")
        return option
    init_kwargs = getattr(tokenizer, "init_kwargs", None) or {}
    parser_type = init_kwargs.get("tool_parser_type")
    if isinstance(parser_type, str):
        family = family_for_parser_type(parser_type)
        if family:
            return family
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):  # named templates: prefer the tool-use one
        template = template.get("tool_use") or template.get("default")
    if isinstance(template, str):
        family = sniff_template(template)
        if family:
            return family
    return "auto"


def _template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy shaped the way HF chat templates expect (tool-call arguments as objects)."""
    out = dict(message)
    calls = out.get("tool_calls")
    if calls:
        fixed = []
        for call in calls:
            call = dict(call)
            fn = dict(call.get("function") or {})
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    parsed = json.loads(args) if args.strip() else {}
                except (json.JSONDecodeError, RecursionError):  # kept as the text it came as
                    parsed = None
                if isinstance(parsed, dict):
                    fn["arguments"] = parsed
            call["function"] = fn
            fixed.append(call)
        out["tool_calls"] = fixed
    return out


def _generation_prompt(text: str, without: str) -> str:
    """What rendering with the generation prompt added to the rendering without it (past their common start)."""
    if text.startswith(without):
        return text[len(without):]
    same = next((i for i, (a, b) in enumerate(zip(text, without, strict=False)) if a != b), len(without))
    return text[same:]


def _opens(text: str, think: tuple[str, str]) -> bool:
    """Whether `text` leaves a reasoning block open."""
    return text.rfind(think[0]) > text.rfind(think[1])


def _rust_tokenizer(tokenizer: Any) -> Any:
    """The `tokenizers.Tokenizer` under mlx-lm's and transformers' wrappers; None when there is none."""
    for obj in (tokenizer, getattr(tokenizer, "_tokenizer", None)):
        backend = getattr(obj, "backend_tokenizer", None) or getattr(obj, "_tokenizer", None)
        if backend is not None and hasattr(backend, "normalizer") and hasattr(backend, "get_vocab"):
            return backend
    return None


class PromptBound:
    """Refuses a text whose length alone shows it has more tokens than the context holds, before it is tokenized.

    Every token stands for at most as many bytes of the normalized text as its vocabulary entry spells (`longest`
    is the most any entry does), so a text of B bytes has at least B / longest tokens. A SentencePiece entry spells
    a space as "▁" (3 bytes in UTF-8 for 1 of text): its UTF-8 length is an upper bound. A byte-level entry spells
    each byte of text as one character, which is 1 or 2 bytes in UTF-8: counted as one byte each, so that the bound
    is not loose by up to 2x. An added token is matched in the text as it is written: its UTF-8 length."""

    def __init__(self, tokenizer: Any, max_context: int) -> None:
        self.max_context = max_context
        self._backend = _rust_tokenizer(tokenizer)
        self.longest = _longest_entry(self._backend) if self._backend is not None else 0

    def check_messages(self, count: int) -> None:
        """A 400 for more messages than the context has tokens: each renders to one token at least."""
        if count > self.max_context:
            raise self._exceeded(count, "messages")

    def _exceeded(self, least: int, param: str) -> WireError:
        return WireError(400, f"This model's maximum context length is {self.max_context} tokens, but the prompt "
                              f"has at least {least} tokens.", "context_length_exceeded", param=param)

    def check(self, text: str, param: str) -> None:
        """A 400 `context_length_exceeded` when `text` cannot fit (call it holding the tokenizer's lock)."""
        limit = self.max_context * self.longest
        if not self.longest or len(text) * 4 <= limit:  # at most 4 UTF-8 bytes a character: it may fit
            return
        try:
            normalizer = self._backend.normalizer
            size = len((normalizer.normalize_str(text) if normalizer else text).encode("utf-8", "surrogatepass"))
        except Exception:  # text the tokenizer refuses (lone surrogates): its own error says why
            return
        if size > limit:
            raise self._exceeded(-(-size // self.longest), param)


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _byte_level(backend: Any) -> bool:
    """Whether the pre-tokenizer maps text to GPT-2's byte-level characters ("é" is bytes C3 A9, spelled "Ã©")."""
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return False
    try:
        spelled = "".join(piece for piece, _ in pre.pre_tokenize_str("\u00e9"))
        return spelled.removeprefix("\u0120") == "\u00c3\u00a9"  # ("Ġ": a space added before the text)
    except Exception:
        return False


def _longest_entry(backend: Any) -> int:
    """The most bytes of text any one token stands for (see `PromptBound`)."""
    vocab = backend.get_vocab(with_added_tokens=False)
    if _byte_level(backend):
        from tokenizers.pre_tokenizers import ByteLevel

        one_byte = str.maketrans(dict.fromkeys(ByteLevel.alphabet(), "b"))
        entries = [_utf8_length(t.translate(one_byte)) for t in vocab]
    else:
        entries = [_utf8_length(t) for t in vocab]
    return max(entries + [_utf8_length(t) for t in _added_tokens(backend, vocab)], default=0)


def _added_tokens(backend: Any, vocab: dict[str, int]) -> list[str]:
    """The added tokens' texts, those the model's vocabulary holds too (its special tokens, often) included."""
    decoder = getattr(backend, "get_added_tokens_decoder", None)
    if decoder is not None:
        return [token.content for token in decoder().values()]
    return list(backend.get_vocab(with_added_tokens=True).keys() - vocab.keys())


class ChatFormatter:
    """Renders chat requests with the tokenizer's chat template (no MLX work).

    Calls are serialised with `lock`: a Hugging Face fast tokenizer must not encode on two threads at once.
    """

    def __init__(self, tokenizer: Any, *, tool_format: str | None = "auto", lock: threading.Lock | None = None,
                 max_context: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.bound = PromptBound(tokenizer, max_context) if max_context else None
        self.lock = lock or threading.Lock()
        self.tool_format = resolve_tool_format(tool_format, tokenizer)
        self.think: tuple[str, str] | None = (
            (tokenizer.think_start, tokenizer.think_end) if getattr(tokenizer, "has_thinking", False) else None
        )
        self.has_chat_template = bool(getattr(tokenizer, "has_chat_template", False))

    def render_chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        template_kwargs: Mapping[str, Any] | None = None,
        *,
        generation: bool = True,
        continue_final: bool = False,
    ) -> RenderedPrompt:
        """The prompt: the chat with a new assistant turn opened (`generation`, `add_generation_prompt`), or with
        the last message, the assistant's, left open (`continue_final`: transformers' `continue_final_message`, the
        prompt ends with its text and no end of turn), or neither."""
        if not self.has_chat_template:
            return RenderedPrompt(self._encode(_plain_chat(messages, generation, continue_final), "messages"), False)
        if self.bound is not None:
            self.bound.check_messages(len(messages))
        kwargs = dict(template_kwargs or {})
        for reserved in ("tokenize", "add_generation_prompt", "tools", "messages", "conversation"):
            kwargs.pop(reserved, None)
        if continue_final:
            kwargs["continue_final_message"] = True
        shown = [_template_message(m) for m in messages]
        text = self._render(shown, tools, kwargs, generation)
        reasoning = False
        if self.think is not None and (generation or continue_final) and _opens(text, self.think):
            # a `<think>` left open somewhere: output starts as reasoning only when what the model goes on from
            # (the generation prompt, or the turn continued) opens it, not when a message quotes the tag (code,
            # logs, HTML)
            reasoning = _opens(self._opened_by(text, shown, tools, kwargs, continue_final), self.think)
        return RenderedPrompt(self._encode_chat(text, messages, tools), reasoning)

    def _opened_by(self, text: str, shown: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   kwargs: dict[str, Any], continue_final: bool) -> str:
        """What the model goes on from, at the end of the rendered `text`: the generation prompt (what
        `add_generation_prompt` adds), or the turn continued (what the last message adds to the ones before it)."""
        if not continue_final:
            return _generation_prompt(text, self._render(shown, tools, kwargs, False))
        before = {k: v for k, v in kwargs.items() if k != "continue_final_message"}
        return _generation_prompt(text, self._render(shown[:-1], tools, before, False)) if len(shown) > 1 else text

    def _encode_chat(self, text: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        """The rendered chat's tokens; a lone surrogate that only the tools hold is named as theirs."""
        try:
            return self._encode(text, "messages", add_special_tokens=False)
        except WireError as exc:
            if exc.code != "invalid_text" or not _holds_surrogate(tools) or _holds_surrogate(messages):
                raise
            raise _untokenizable(text, "tools", exc) from exc

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, kwargs: dict[str, Any],
                generation: bool) -> str:
        try:
            text = self._apply(messages, tools, kwargs, generation)
        except Exception as exc:  # template errors are caused by the request's messages, or by its tools
            if tools and self._renders(messages, kwargs, generation):
                raise bad_request(f"the chat template rejected the tools: {exc}", param="tools",
                                  code="invalid_tools") from exc
            raise bad_request(f"the chat template rejected the messages: {exc}", param="messages",
                              code="invalid_messages") from exc
        if not isinstance(text, str):
            raise bad_request("the chat template did not produce text", param="messages", code="invalid_messages")
        return text

    def _apply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, kwargs: dict[str, Any],
               generation: bool) -> Any:
        with self.lock:
            return self.tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=generation,
                                                      tokenize=False, **kwargs)

    def _renders(self, messages: list[dict[str, Any]], kwargs: dict[str, Any], generation: bool) -> bool:
        """Whether the messages render without the tools: when they do, the tools are what the template refused."""
        try:
            self._apply(messages, None, kwargs, generation)
        except Exception:
            return False
        return True

    def encode_text(self, text: str) -> list[int]:
        return self._encode(text, "prompt")

    def _encode(self, text: str, param: str, **kwargs: Any) -> list[int]:
        try:
            with self.lock:
                if self.bound is not None:
                    self.bound.check(text, param)
                return list(self.tokenizer.encode(text, **kwargs))
        except WireError:
            raise
        except Exception as exc:
            raise _untokenizable(text, param, exc) from exc


def _plain_chat(messages: list[dict[str, Any]], generation: bool, continue_final: bool) -> str:
    """A chat as text for a tokenizer without a chat template: a line a message, then the assistant's prompt (or
    the last message's text, continued)."""
    lines = [f"{m['role']}: {m.get('content') or ''}" for m in messages]
    if continue_final:
        return "\n".join(lines)
    return "".join(f"{line}\n" for line in lines) + ("assistant:" if generation else "")


def _holds_surrogate(value: Any) -> bool:
    """Whether a request field (from JSON) holds a lone surrogate anywhere, in a key or a string."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _untokenizable(text: str, param: str, exc: Exception) -> WireError:
    """The 400 for text the tokenizer refused: a lone surrogate (a JSON `\\ud800` escape without its pair, which
    no tokenizer can encode) is named as such, not in the tokenizer's own words."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as bad:
        point = ord(text[bad.start])
        return bad_request(f"'{param}' holds a lone surrogate (\\u{point:04x}), which is not a Unicode character: "
                           "a surrogate escape must be one half of a pair", param=param, code="invalid_text")
    return bad_request(f"the text cannot be tokenized: {exc}", param=param, code="invalid_text")
