"""The Anthropic Messages API in front of every backend.

`parse_request` validates a Messages request and builds the internal chat body; `to_message` turns a completion
document into a Messages response; `MessagesStream` turns chunk documents into the Messages SSE event sequence
(`message_start`, `ping`, `content_block_start` / `_delta` / `_stop`, `message_delta`, `message_stop`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from repair.incremental import ArgsEmitter, JsonBroken, JsonEvents, string_run

from .. import jsoncodec
from ..chat_types import Completion, ToolFragment, TranslatedMessages, Usage, ids_of, str_or
from ..errors import ApiError
from .anthropic_tools import client_function
from .common import (
    RAW_ARGS_MAX,
    ChunkEncoder,
    Dropped,
    HistoryMemo,
    Memos,
    Progress,
    ToolsJson,
    ToolsMemo,
    Turn,
    arguments_object,
    check_int,
    check_number,
    estimate_tokens,
    file_text,
    invalid,
    new_id,
    place_system,
    shown_value,
    spaced_json,
    sse_event,
)

IMAGE_TOKENS = 1600  # the estimate for one image: Anthropic's cost of a ~1.15 megapixel image
_USER_BLOCKS = ("text", "image", "tool_result", "document", "search_result", "thinking", "redacted_thinking")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")
# What a server tool did, in an earlier assistant turn: no backend behind the chat form can continue it
_SERVER_BLOCKS = ("server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
                  "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "mcp_tool_use",
                  "mcp_tool_result", "container_upload", "tool_search_tool_result")
_TOOL_CHOICES = ("auto", "any", "tool", "none")


@dataclass
class MessagesRequest:
    model: str
    stream: bool
    chat: dict[str, Any]  # the internal chat body
    thinking: dict[str, Any] | None = None
    effort: str | None = None  # `output_config.effort`
    stop_sequences: list[str] = field(default_factory=list)
    images: int = 0
    text_bytes: int = 0  # UTF-8 bytes of every text the model reads (for the token estimate)
    dropped: Dropped = field(default_factory=Dropped)
    tools_json: ToolsJson | None = None  # `chat["tools"]` with its encoding (see `common.chat_bytes`)
    learn_tools: bool = False  # the tools list is to be learned by its bytes (`api.translated.learn_tools`)
    loads: list[str] = field(default_factory=list)  # the deferred tools the history loads (`tool_reference`)
    prefill: bool = False  # the last message is the assistant's, with content: the answer is to continue it

    def estimate_input_tokens(self) -> int:
        return estimate_tokens(self.text_bytes) + self.images * IMAGE_TOKENS


# --- request -----------------------------------------------------------------------------------------------------

def parse_request(body: dict[str, Any], memos: Translations | None = None, *,
                  count_only: bool = False, interleaved: bool = False) -> MessagesRequest:
    """Validate a Messages request (400s name the field) and translate it to the chat form; translations of its
    history messages and tools list found in and kept by `memos` (none: made for this request only). `interleaved`:
    the client sent the interleaved-thinking beta, under which a thinking budget may pass `max_tokens`."""
    if memos is None:
        memos = Translations()
    _present(body, ("model", "messages") if count_only else ("model", "messages", "max_tokens"))
    model = _typed(body, "model", str, required=True)
    if not model:
        raise invalid("'model' must be a non-empty string.", "model", "missing_field")
    max_tokens = _at_least(body, "max_tokens", 1, required=not count_only)
    messages = _typed(body, "messages", list, required=True)
    if not messages:
        raise invalid("'messages' must hold at least one message.", "messages", "invalid_value")
    stream = _typed(body, "stream", bool) or False
    temperature = _between(body, "temperature", 0.0, 1.0)
    top_p = _between(body, "top_p", 0.0, 1.0)
    top_k = _at_least(body, "top_k", 0)
    stops = _stop_sequences(body)
    metadata = _typed(body, "metadata", dict)
    thinking = _thinking(body, None if interleaved or count_only else max_tokens)
    config = _typed(body, "output_config", dict)
    effort = _effort(config)

    req = MessagesRequest(model=model, stream=stream, chat={}, thinking=thinking, effort=effort,
                          stop_sequences=list(stops or []))
    system = _system(body.get("system"), req)
    done = _history(messages, req, memos)
    sofar = done.state or _Sofar()
    out = TranslatedMessages([{"role": "system", "content": system}] if system else (),
                             memos.conversations.keep(messages, done), images=sofar.images > 0)
    out += done.messages
    req.prefill = _prefill(messages[-1], out)
    chat: dict[str, Any] = {"model": model, "messages": _placed(out, sofar.system)}
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    tools, server = _tools(body.get("tools"), req, memos.tools)
    if tools:
        chat["tools"] = tools
    choice, parallel = _tool_choice(body.get("tool_choice"), tools, server, req.dropped)
    if choice is not None and tools:  # only beside tools: OpenAI's chat API refuses them alone
        chat["tool_choice"] = choice
    if parallel is False and tools:
        chat["parallel_tool_calls"] = False
    for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
        if value is not None:
            chat[name] = value
    if req.stop_sequences:
        chat["stop"] = req.stop_sequences
    if metadata is not None:
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise wrong_type("metadata.user_id", str)
        # not forwarded: clients put device and session ids there, which are not a third party's to see
    fmt = _output_format(config, body.get("output_format"))
    if fmt is not None:
        chat["response_format"] = fmt
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    req.chat = chat
    return req


def _stop_sequences(body: dict[str, Any]) -> list[str] | None:
    """`stop_sequences`, each a string with some text that is not whitespace, as Anthropic takes them."""
    stops: list[str] | None = _typed(body, "stop_sequences", list)
    for i, s in enumerate(stops or ()):
        if not isinstance(s, str):
            raise wrong_type(f"stop_sequences.{i}", str)
        if s.isspace() or not s:
            must = "contain non-whitespace" if s else "be non-empty"
            raise invalid(f"stop_sequences: each stop sequence must {must}", "stop_sequences", "invalid_value")
    return stops


def _present(body: dict[str, Any], names: tuple[str, ...]) -> None:
    """The required fields given (null counts as absent); a missing one is Anthropic's 400 worded as it words it."""
    for name in names:
        if body.get(name) is None:
            raise invalid(f"{name}: Field required", name, "missing_field")


# How Anthropic's API words a value of the wrong type ("<path>: Input should be a valid boolean")
_TYPE_WORDS: dict[type, str] = {str: "Input should be a valid string", list: "Input should be a valid array",
                                bool: "Input should be a valid boolean", int: "Input should be a valid integer",
                                float: "Input should be a valid number", dict: "Input should be an object"}
_SHAPED = re.compile(r"metadata|output_config|system\.\d+")  # "Input does not match the expected shape." there


def wrong_type(path: str, kind: type) -> ApiError:
    """Anthropic's 400 for a value at `path` (dotted, indexes included, a content block's type too:
    `messages.0.content.1.tool_use.input`) that is not a `kind` (`float`: any number), worded as its API words it;
    `param` names the top-level field."""
    words = "Input does not match the expected shape." if _SHAPED.fullmatch(path) else _TYPE_WORDS[kind]
    return invalid(f"{path}: {words}", path.split(".", 1)[0], "invalid_type")


def _member(obj: dict[str, Any], name: str, kind: type, path: str) -> Any:
    """`obj[name]`, the value at `path`, when it is a `kind`; Anthropic's 400 naming `path` when it is absent or is
    not."""
    value = obj.get(name)
    if _is(value, kind):
        return value
    if name not in obj:
        raise invalid(f"{path}: Field required", path.split(".", 1)[0], "missing_field")
    raise wrong_type(path, kind)


def _is(value: Any, kind: type) -> bool:
    """Whether a JSON value is a `kind` (`float`: any number); a boolean is never a number."""
    if kind is float:
        return type(value) is int or type(value) is float
    return type(value) is kind


def _typed(body: dict[str, Any], name: str, kind: type, required: bool = False) -> Any:
    """`body[name]` when it is a `kind`, None when absent and not required; Anthropic's 400 otherwise."""
    value = body.get(name)
    if type(value) is kind or (value is None and not required):
        return value
    if value is None:
        raise invalid(f"{name}: Field required", name, "missing_field")
    raise wrong_type(name, kind)


def _between(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    """`check_number`, a number in range (or an absent one) taken without its call; one of another type is
    Anthropic's 400."""
    value = body.get(name)
    if value is None or (_is(value, float) and lo <= value <= hi):
        return value  # (NaN is in no range: refused below)
    if not _is(value, float):
        raise wrong_type(name, float)
    return check_number(body, name, lo, hi)


def _at_least(body: dict[str, Any], name: str, lo: int, required: bool = False) -> int | None:
    """`check_int`, an integer of at least `lo` (or an absent one that is not required) taken without its call;
    one of another type is Anthropic's 400."""
    value: int | None = _typed(body, name, int, required)
    if value is None or value >= lo:
        return value
    return check_int(body, name, lo, required)


def thinking_fields(thinking: dict[str, Any] | None, kinds: set[str], effort: str | None = None) -> dict[str, Any]:
    """What the chat body carries for `thinking` and `output_config.effort`, given the upstream kinds on the route.

    Anthropic upstreams get both settings as they are (`thinking`, `output_config.effort`); our engines and other
    supervised servers get `chat_template_kwargs.enable_thinking` (they have no effort setting, so it is ignored).
    Generic OpenAI-compatible providers reject fields they do not know, and their non-reasoning models reject
    `reasoning_effort`, so when one is on the route nothing is added (reasoning models there reason at their
    default effort)."""
    if "openai" in kinds:
        return {}
    out: dict[str, Any] = {}
    if "anthropic" in kinds:
        if thinking is not None:
            out["thinking"] = thinking
        if effort is not None:
            out["output_config"] = {"effort": effort}
    if "engine" in kinds and thinking is not None:
        out["chat_template_kwargs"] = {"enable_thinking": thinking.get("type") != "disabled"}
    return out


def _effort(config: dict[str, Any] | None) -> str | None:
    """`output_config.effort` (`config`: the checked `output_config`)."""
    effort = (config or {}).get("effort")
    if effort is not None and (not isinstance(effort, str) or not effort):
        raise invalid("'output_config.effort' must be a string such as 'low', 'medium' or 'high'.",
                      "output_config", "invalid_value")
    return effort


MIN_THINKING_BUDGET = 1024  # Anthropic's least `thinking.budget_tokens` (it refuses a smaller one)
THINKING_TYPES = ("enabled", "disabled", "adaptive")  # what Anthropic's `thinking.type` takes


def _thinking(body: dict[str, Any], max_tokens: int | None) -> dict[str, Any] | None:
    """`thinking` checked as Anthropic checks it: a budget of at least `MIN_THINKING_BUDGET` and, where
    `max_tokens` is given (none when the interleaved-thinking beta lets the budget span the whole turn, or for a
    count), below it."""
    thinking = _typed(body, "thinking", dict)
    if thinking is None:
        return None
    kind = thinking.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid("'thinking.type' must be a string such as 'enabled', 'adaptive' or 'disabled'.", "thinking",
                      "invalid_value")
    if kind not in THINKING_TYPES:
        raise invalid(f"thinking.type: {kind[:64]!r} is not one of the expected types: "
                      f"{', '.join(repr(t) for t in THINKING_TYPES)}.", "thinking", "invalid_value")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
            raise invalid(f"'thinking.budget_tokens' must be an integer of at least {MIN_THINKING_BUDGET}.",
                          "thinking", "invalid_value")
        if max_tokens is not None and budget >= max_tokens:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`.", "thinking", "invalid_value")
    return dict(thinking)


def _output_format(config: dict[str, Any] | None, deprecated: Any = None) -> dict[str, Any] | None:
    """`output_config.format` (structured output; `config`: the checked `output_config`), or the structured-outputs
    beta's top-level `output_format` (`deprecated`: its first form, which clients written for the beta send), as a
    chat `response_format`. Both at once is refused, as the anthropic SDK refuses it."""
    fmt = (config or {}).get("format")
    where = "output_config"
    if deprecated is not None:
        if fmt is not None:
            raise invalid("Both output_format and output_config.format were provided. Please use only "
                          "output_config.format (output_format is deprecated).", "output_format", "invalid_value")
        fmt, where = deprecated, "output_format"
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        name = "output_config.format" if where == "output_config" else where
        raise invalid(f"'{name}' must be {{'type': 'json_schema', 'schema': {{...}}}}.", where, "invalid_value")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def _utf8_len(text: str) -> int:
    """`len(text.encode())`, without encoding an ASCII text (`isascii` reads a flag the string keeps)."""
    return len(text) if text.isascii() else len(text.encode())


def _text_of(blocks: Any, where: str, req: MessagesRequest, tag: str = "") -> str:
    """The text of a `system` value or a list of text blocks (`tag`: ".text" where a block's path holds its type,
    as in a message's content)."""
    if isinstance(blocks, str):
        req.text_bytes += _utf8_len(blocks)
        return blocks
    if not isinstance(blocks, list):
        raise wrong_type(where, list)
    parts: list[str] = []
    for j, b in enumerate(blocks):
        if not isinstance(b, dict):
            raise wrong_type(f"{where}.{j}", dict)
        if b.get("type") != "text":
            raise invalid(f"'{where}.{j}' must be a text block with a string 'text'.", where.split(".", 1)[0],
                          "invalid_type")
        text: str = _member(b, "text", str, f"{where}.{j}{tag}.text")
        parts.append(text)
        req.text_bytes += _utf8_len(text)
    return "\n\n".join(parts)


def _system(value: Any, req: MessagesRequest) -> str:
    if value is None:
        return ""
    return _text_of(value, "system", req)


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}: an image block needs a 'source' object.", "messages", "invalid_type")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str) or not data:
            raise invalid(f"{where}: a base64 image needs string 'media_type' and 'data'.", "messages",
                          "invalid_type")
        return f"data:{media};base64,{data}"
    if kind == "url" and isinstance(source.get("url"), str) and source["url"]:
        return str(source["url"])
    raise invalid(f"{where}: image source type {shown_value(kind)} is not supported (use 'base64' or 'url').",
                  "messages", "unsupported_content")


def _document_text(block: dict[str, Any], where: str, req: MessagesRequest) -> str:
    """A document block as text: plain-text sources as they are, other files (base64 PDFs, URLs, file ids) as a
    placeholder saying what was omitted."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}: a document block needs a 'source' object.", "messages", "invalid_type")
    title = str_or(block.get("title"))
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        text = f"{title}\n\n{source['data']}" if title else str(source["data"])
    elif kind == "content" and isinstance(source.get("content"), list):
        body = "\n".join(str(b.get("text")) for b in source["content"] if isinstance(b, dict)
                         and isinstance(b.get("text"), str))
        text = f"{title}\n\n{body}" if title else body
    elif kind in ("base64", "url", "file"):
        data = source.get("data") if kind == "base64" and isinstance(source.get("data"), str) else None
        media = str_or(source.get("media_type"), "application/pdf" if kind == "base64" else "")
        label = title or str(source.get("url") or source.get("file_id") or "document")
        text = file_text(label, media, data)
    else:
        raise invalid(f"{where}: document source type {shown_value(kind)} is not supported.", "messages",
                      "unsupported_content")
    req.text_bytes += len(text.encode())
    return text


def _search_text(block: dict[str, Any], where: str, req: MessagesRequest) -> str:
    """A search_result block as text: its title, its source, then its text blocks."""
    content = block.get("content")
    if not isinstance(content, list) or not all(isinstance(b, dict) and b.get("type") == "text"
                                                and isinstance(b.get("text"), str) for b in content):
        raise invalid(f"{where}: a search_result block needs 'content', a list of text blocks.", "messages",
                      "invalid_type")
    head = [v for v in (str_or(block.get("title")), str_or(block.get("source"))) if v]
    text = "\n".join(head) + ("\n\n" if head else "") + "\n".join(b["text"] for b in content)
    req.text_bytes += len(text.encode())
    return text


def _tool_reference(block: dict[str, Any], where: str, req: MessagesRequest) -> str:
    """A tool_reference block (a tool search's answer, Claude Code's ToolSearch): the deferred tool it names is
    declared from now on (see `_tools`); the model reads that it was."""
    name = block.get("tool_name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}: a tool_reference block needs a string 'tool_name'.", "messages", "invalid_type")
    if name not in req.loads:
        req.loads.append(name)
    text = f"Tool {name} loaded: it can be called now."
    req.text_bytes += len(text.encode())
    return text


def _search_loads(block: dict[str, Any], req: MessagesRequest) -> None:
    """The tools a tool_search_tool_result block (Anthropic's own tool search, in an earlier turn) loaded."""
    content = block.get("content")
    refs = content.get("tool_references") if isinstance(content, dict) else None
    for ref in refs if isinstance(refs, list) else ():
        name = ref.get("tool_name") if isinstance(ref, dict) else None
        if isinstance(name, str) and name and name not in req.loads:
            req.loads.append(name)


def _tool_result(block: dict[str, Any], where: str,
                 req: MessagesRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool message, plus the images the result carried (they go to the user message that follows)."""
    call_id = _member(block, "tool_use_id", str, f"{where}.tool_result.tool_use_id")
    if not call_id:
        raise invalid(f"{where}: a tool_result block needs a string 'tool_use_id'.", "messages", "invalid_type")
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
        req.text_bytes += len(text.encode())
    elif isinstance(content, list):
        texts: list[str] = []
        for k, part in enumerate(content):
            pwhere = f"{where}.tool_result.content.{k}"
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
                req.text_bytes += len(part["text"].encode())
            elif ptype == "image":
                images.append({"type": "image_url", "image_url": {"url": _image_url(part, pwhere)}})
                req.images += 1
            elif ptype == "document":
                texts.append(_document_text(part, pwhere, req))
            elif ptype == "search_result":
                texts.append(_search_text(part, pwhere, req))
            elif ptype == "tool_reference":
                texts.append(_tool_reference(part, pwhere, req))
            else:
                raise invalid(f"{pwhere}: tool_result content must be text, image, document, search_result or "
                              "tool_reference blocks.", "messages", "unsupported_content")
        text = "\n".join(texts)
    else:
        raise wrong_type(f"{where}.tool_result.content", list)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise wrong_type(f"{where}.tool_result.is_error", bool)
    if is_error:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _prefill(last: dict[str, Any], out: list[dict[str, Any]]) -> bool:
    """Whether the last message is an assistant's prefill, the start of the answer; an empty one, which asks for
    nothing, is taken out of `out` (the chat messages)."""
    if last.get("role") != "assistant":
        return False
    if last.get("content"):  # (ending in whitespace too, which Anthropic refuses: a local model goes on from it)
        return True
    out.pop()
    return False


def _placed(out: TranslatedMessages, system: bool) -> TranslatedMessages:
    """`place_system(out)` (the chat messages of a history that passed `_message`'s checks; `system`: one of its
    messages is a system one): `out` as it is without one, as it then already stands (the request's `system`
    alone, first, when not empty)."""
    if system:
        return TranslatedMessages(place_system(out), out.ids, out.images)
    return out


def _repeated(i: int, blocks: list[dict[str, Any]]) -> None:
    """Anthropic's 400 for an assistant turn (`messages[i]`, its content `blocks`) that gives two of its
    `tool_use` blocks one id, naming the second. (An id an earlier turn used is taken: through a route without
    tool-call repair, a server numbering its calls per reply gives every turn a `call_0`.)"""
    seen: set[str] = set()
    for j, b in enumerate(blocks):
        if b["type"] == "tool_use":
            if b["id"] in seen:
                raise invalid(f"messages.{i}.content.{j}: `tool_use` ids must be unique", "messages",
                              "invalid_request")
            seen.add(b["id"])


def block_ids(m: dict[str, Any]) -> tuple[str, ...]:
    """The ids of an assistant message's `tool_use` blocks, or of a user message's `tool_result` blocks, in
    order."""
    content = m.get("content")
    if type(content) is not list:
        return ()
    kind, key = ("tool_use", "id") if m.get("role") == "assistant" else ("tool_result", "tool_use_id")
    return tuple(b[key] for b in content if b["type"] == kind)


def _mismatch(at: int, calls: tuple[str, ...], i: int, blocks: Any) -> None:
    """The 400 for `messages[i]` (its content `blocks`) after the turn `messages[at]` that made `calls`: a result
    for no call of it, or a call left without a result; nothing when the results only came in another order."""
    answered: set[str] = set()
    for j, b in enumerate(blocks if type(blocks) is list else ()):
        if b["type"] != "tool_result":
            continue
        if b["tool_use_id"] not in calls:
            raise invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                          f"{b['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` "
                          "block in the previous message.", "messages", "invalid_request")
        answered.add(b["tool_use_id"])
    if missing := [c for c in calls if c not in answered]:
        raise invalid(f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                      f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                      "in the next message.", "messages", "invalid_request")


@dataclass(frozen=True, slots=True)
class _Sofar:
    """What a history adds up to after some of its messages (the state a kept run takes up, see
    `common.Conversations`)."""

    text_bytes: int = 0
    images: int = 0
    dropped: tuple[str, ...] = ()
    loads: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()  # the last assistant turn's calls, still to be answered (see `_pair_check`)
    at: int = 0  # that turn's place
    system: bool = False  # a message is a system one

    def then(self, turn: Turn, calls: tuple[str, ...], at: int, system: bool) -> _Sofar:
        """The state after one more message, `turn` its translation."""
        if not (turn.dropped or turn.loads):
            return _Sofar(self.text_bytes + turn.text_bytes, self.images + turn.images, self.dropped, self.loads,
                          calls, at, self.system or system)
        return _Sofar(self.text_bytes + turn.text_bytes, self.images + turn.images,
                      self.dropped + tuple(k for k in dict.fromkeys(turn.dropped) if k not in self.dropped),
                      self.loads + tuple(n for n in dict.fromkeys(turn.loads) if n not in self.loads),
                      calls, at, self.system or system)


def _history(messages: list[Any], req: MessagesRequest, memos: Translations) -> Progress[_Sofar]:
    """The chat messages of `messages` (in the progress returned: its messages, its state), taken up where a kept
    run of the conversation holds their first ones (`memos.conversations`), each later message's `_message`
    found in `memos.history` for one of content blocks (a string is cheaper to translate than to look up);
    what they add up to noted in `req`. Every message translated before Anthropic's pairing rule is checked
    (`_pair_check`), from where the kept run left it."""
    done = memos.conversations.start(messages)
    start = done.count
    turns = [_translated(messages[i], i, memos.history) for i in range(start, len(messages))]
    sofar = done.state or _Sofar()
    calls, at = sofar.calls, sofar.at
    for i, (turn, weight) in enumerate(turns, start):
        m = messages[i]
        calls, at = _pair_check(m, i, turn.ids, calls, at)
        done.messages += turn.messages
        sofar = sofar.then(turn, calls, at, m["role"] == "system")
        done.add(sofar, turn.call_ids, weight)
    req.text_bytes += sofar.text_bytes
    req.images += sofar.images
    for kind in sofar.dropped:
        req.dropped.add(kind)
    req.loads.extend(name for name in sofar.loads if name not in req.loads)
    return done


def _translated(m: Any, i: int, history: HistoryMemo) -> tuple[Turn, int | None]:
    """`messages[i]`'s translation, and the bytes a kept run holds for it (None: too many, see `Progress.add`)."""
    if isinstance(m, dict) and isinstance(m.get("content"), list):
        return history.get(m, _turn, i), history.held(m)
    own = MessagesRequest(model="", stream=False, chat={})
    made = _message(m, i, own)
    weight = _STRING_WEIGHT + 4 * own.text_bytes  # (past the memo's bound for one entry: not held, as a list's)
    return Turn(tuple(made), own.text_bytes, own.images), weight if weight <= history.max_entry_bytes else None


_STRING_WEIGHT = 512  # about the bytes a message with a string content holds besides its text


def _pair_check(m: dict[str, Any], i: int, ids: tuple[str, ...], calls: tuple[str, ...],
                at: int) -> tuple[tuple[str, ...], int]:
    """Anthropic's rule for a tool loop, with its 400s, for one more message, `messages[i]`, after the calls
    `calls` of the turn at `at` (still to be answered): every `tool_use` of an assistant turn is answered by a
    `tool_result` in the message right after it, and every `tool_result` names a `tool_use` of the message right
    before it (mid-conversation `system` messages, which Anthropic does not have, are not counted between them).
    The calls of a final assistant message have no answer to wait for. `m` passed `_message`'s checks; `ids` are
    its call ids, or its result ids (`block_ids`, kept with its translation); the usual turn answers its calls in
    their order, found equal at once. Returns the calls still to be answered after it, and where they were made."""
    role = m["role"]
    if role == "system":
        return calls, at
    if role == "user":
        if ids != calls:
            _mismatch(at, calls, i, m.get("content"))
        return (), i
    if calls:
        _mismatch(at, calls, i, [])
    if len(ids) > 1 and len(set(ids)) < len(ids):
        _repeated(i, m["content"])
    return ids, i


def _turn(m: dict[str, Any], i: int) -> Turn:
    own = MessagesRequest(model="", stream=False, chat={})
    made = _message(m, i, own)
    return Turn(tuple(made), own.text_bytes, own.images, tuple(own.dropped.kinds), loads=tuple(own.loads),
                ids=block_ids(m), call_ids=tuple(ids_of(made)))


def _message(m: Any, i: int, req: MessagesRequest) -> list[dict[str, Any]]:
    where = f"messages.{i}"
    if not isinstance(m, dict):
        raise wrong_type(where, dict)
    if "content" not in m:
        raise invalid(f"{where}.content: Field required", "messages", "missing_field")
    role = m.get("role")
    if role == "system":  # some clients send these mid-conversation; placed where templates accept them
        return [{"role": "system", "content": _text_of(m["content"], f"{where}.content", req, ".text")}]
    if role not in ("user", "assistant"):
        raise invalid(f"{where}.role must be 'user', 'assistant' or 'system'.", "messages", "invalid_value")
    content = m.get("content")
    if not content and role == "user" and isinstance(content, (str, list)):  # as Anthropic refuses it
        raise invalid(f"{where}.content must not be empty: every message needs content but a final assistant "
                      "message.", "messages", "invalid_value")
    if isinstance(content, str):
        req.text_bytes += _utf8_len(content)
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise wrong_type(f"{where}.content", list)
    blocks = _Blocks()
    for j, block in enumerate(content):
        blocks.add(block, f"{where}.content.{j}", role, req)
    if role == "assistant":
        return [blocks.assistant()]
    return blocks.user()


@dataclass
class _Blocks:
    """A message's content blocks sorted into chat shapes."""

    tool_msgs: list[dict[str, Any]] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # an assistant's thinking, as this router gave it

    def add(self, block: Any, where: str, role: str, req: MessagesRequest) -> None:
        if not isinstance(block, dict):
            raise wrong_type(where, dict)
        btype = _member(block, "type", str, f"{where}.type")
        if btype in _SERVER_BLOCKS:
            req.dropped.add(btype)
            if btype == "tool_search_tool_result":
                _search_loads(block, req)
            return
        if btype not in (_USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS):
            raise invalid(f"{where}: block type {shown_value(btype)} is not supported in a {role} message.", "messages",
                          "unsupported_content")
        if btype == "text":
            # an empty one: Anthropic refuses it, yet Claude Code's histories hold them (it says nothing)
            if not _member(block, "text", str, f"{where}.text.text"):
                return
            self.parts.append({"type": "text", "text": block["text"]})
            req.text_bytes += len(block["text"].encode())
        elif btype == "image":
            self.parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
            req.images += 1
        elif btype == "document":
            self.parts.append({"type": "text", "text": _document_text(block, where, req)})
        elif btype == "search_result":
            self.parts.append({"type": "text", "text": _search_text(block, where, req)})
        elif btype == "tool_result":
            tool_msg, images = _tool_result(block, where, req)
            self.tool_msgs.append(tool_msg)
            self.parts.extend(images)
        elif btype == "tool_use":
            self.calls.append(_tool_use(block, where, req))
        elif btype == "thinking" and role == "assistant" and not block.get("signature") \
                and isinstance(block.get("thinking"), str) and block["thinking"]:
            # The reasoning this router gave the client (unsigned: no model of Anthropic's made it) goes back as the
            # message's `reasoning_content`, as the upstream that wrote it wants it (DeepSeek's thinking mode refuses
            # a tool loop without it; chat templates render it, so an engine's prompt is the one it generated). Only
            # such reasoning is sent: a conversation with a model that gives none (OpenAI's, whose API refuses
            # fields it does not know) never has any. Signed thinking (Anthropic's own) and redacted_thinking
            # (encrypted) are not sent as text; an Anthropic upstream gets none of it (the chat form's
            # `reasoning_content` is not read there).
            self.reasoning.append(block["thinking"])
            req.text_bytes += len(block["thinking"].encode())
        # other thinking / redacted_thinking: not sent back to the model

    def assistant(self) -> dict[str, Any]:
        text = "".join(p["text"] for p in self.parts if p["type"] == "text")
        msg: dict[str, Any] = {"role": "assistant", "content": text or (None if self.calls else "")}
        if self.calls:
            msg["tool_calls"] = self.calls
        if self.reasoning:
            msg["reasoning_content"] = "".join(self.reasoning)
        return msg

    def user(self) -> list[dict[str, Any]]:
        out = list(self.tool_msgs)
        if self.parts:
            if all(p["type"] == "text" for p in self.parts):
                out.append({"role": "user", "content": "\n\n".join(p["text"] for p in self.parts)})
            else:
                out.append({"role": "user", "content": self.parts})
        elif not self.tool_msgs:
            out.append({"role": "user", "content": ""})
        return out


def _tool_use(block: dict[str, Any], where: str, req: MessagesRequest) -> dict[str, Any]:
    call_id = _member(block, "id", str, f"{where}.tool_use.id")
    name = _member(block, "name", str, f"{where}.tool_use.name")
    if not call_id or not name:
        raise invalid(f"{where}: a tool_use block needs string 'id' and 'name'.", "messages", "invalid_type")
    args = block.get("input", {})
    if not isinstance(args, dict):
        raise wrong_type(f"{where}.tool_use.input", dict)
    arguments = spaced_json(args)
    req.text_bytes += len(arguments.encode()) + len(name)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@dataclass(frozen=True)
class _Tools:
    """A tools list as the chat form has it (with its encoding), and what the request reports for it."""

    chat: list[dict[str, Any]]
    text_bytes: int
    dropped: tuple[str, ...]
    json: ToolsJson | None
    server: tuple[str, ...] = ()  # the names of the server tools dropped (a tool_choice may name one)
    deferred: frozenset[str] = frozenset()  # the tools declared with `defer_loading` (see `_tools`)
    search: bool = False  # a tool search server tool was declared (and dropped)

    def size(self) -> int:
        return len(self.json.data) if self.json is not None else 0


Translations = Memos[_Tools, _Sofar]  # what one app keeps of this dialect's translations


def _tools(value: Any, req: MessagesRequest,
           memo: ToolsMemo[_Tools]) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The chat tools, and the names of the server tools dropped. A tool declared with `defer_loading` is left out
    until the history loads it (a `tool_reference` naming it, as Anthropic's API shows it to the model only then):
    the model never sees one the client would not run yet. When a tool search server tool was declared, which no
    backend behind the chat form can run, every deferred tool is declared: nothing could load it otherwise."""
    if value is None:
        return [], ()
    if not isinstance(value, list):
        raise wrong_type("tools", list)
    done, req.learn_tools = memo.get(value, _translate_tools, _Tools.size)
    req.tools_json = done.json
    req.text_bytes += done.text_bytes
    for kind in done.dropped:
        req.dropped.add(kind)
    if done.deferred and not done.search and not done.deferred.issubset(req.loads):
        hidden = done.deferred.difference(req.loads)
        chat = [t for t in done.chat if t["function"]["name"] not in hidden]
        req.tools_json = ToolsJson.of(chat)
        return chat, done.server
    return done.chat, done.server


def _translate_tools(value: list[Any]) -> _Tools:
    out: list[dict[str, Any]] = []
    dropped = Dropped()
    server: list[str] = []
    deferred: set[str] = set()
    search = False
    size = 0
    names: set[str] = set()
    for i, t in enumerate(value):
        if not isinstance(t, dict):
            raise wrong_type(f"tools.{i}", dict)
        kind = t.get("type")
        if kind not in (None, "custom"):
            if not isinstance(kind, str) or not kind:
                raise invalid(f"tools[{i}].type must be a string.", "tools", "invalid_type")
            tool = client_function(t)
            if tool is None:
                dropped.add(kind)  # a server tool (web search, code execution, ...): the backend cannot run it
                name = t.get("name")
                server.append(name if isinstance(name, str) else "")
                _declare(server[-1], names)
                search = search or kind.startswith("tool_search_tool_")
            else:
                _declare(tool["function"]["name"], names)
                out.append(tool)
                size += len(spaced_json(tool).encode())
                if t.get("defer_loading") is True:
                    deferred.add(tool["function"]["name"])
            continue
        name, schema, desc = t.get("name"), t.get("input_schema"), t.get("description")
        if not isinstance(name, str) or not name:
            raise invalid(f"tools[{i}] needs a non-empty string 'name'.", "tools", "invalid_type")
        if not _TOOL_NAME.fullmatch(name):  # as Anthropic refuses it
            raise invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'", "tools",
                          "invalid_value")
        if not isinstance(schema, dict):
            raise invalid(f"tools[{i}] needs an 'input_schema' object.", "tools", "invalid_type")
        if desc is not None and not isinstance(desc, str):
            raise invalid(f"tools[{i}].description must be a string.", "tools", "invalid_type")
        _declare(name, names)
        fn: dict[str, Any] = {"name": name, "parameters": schema}
        if desc:
            fn["description"] = desc
        out.append({"type": "function", "function": fn})
        size += len(spaced_json(fn).encode())
        if t.get("defer_loading") is True:
            deferred.add(name)
    return _Tools(out, size, tuple(dropped.kinds), ToolsJson.of(out), tuple(server), frozenset(deferred), search)


_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")  # what Anthropic takes as a custom tool's name


def _declare(name: str, names: set[str]) -> None:
    """`name` joins the tool names declared; one declared before is Anthropic's 400 (a nameless server tool,
    `""`, is not counted)."""
    if name in names:
        raise invalid(f"tools: Tool names must be unique ({name[:64]!r} is declared twice).", "tools",
                      "invalid_value")
    if name:
        names.add(name)


def _tool_choice(value: Any, tools: list[dict[str, Any]], server: tuple[str, ...],
                 dropped: Dropped) -> tuple[Any, bool | None]:
    """The chat tool_choice and parallel_tool_calls. One forcing a server tool (`tool` naming it; `any` when every
    tool declared is one) goes with the tools it forces, reported as a dropped `tool_choice`: `auto` among the
    tools left (Claude Code's WebSearch forces its `web_search` server tool)."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise wrong_type("tool_choice", dict)
    if value.get("type") not in _TOOL_CHOICES:
        raise invalid("'tool_choice' must be an object with type 'auto', 'any', 'tool' or 'none'.", "tool_choice",
                      "invalid_value")
    kind = value["type"]
    disable = value.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise wrong_type(f"tool_choice.{kind}.disable_parallel_tool_use", bool)
    parallel = False if disable else None
    if kind == "none":
        return "none", parallel
    if kind == "any" and not tools and server:
        dropped.add("tool_choice")
        return "auto", parallel
    if kind in ("any", "tool") and not tools and not server:
        raise invalid(f"tool_choice type {kind!r} needs 'tools'.", "tool_choice", "invalid_value")
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        name = value.get("name")
        if isinstance(name, str) and any(t["function"]["name"] == name for t in tools):
            return {"type": "function", "function": {"name": name}}, parallel
        if isinstance(name, str) and name and name in server:
            dropped.add("tool_choice")
            return "auto", parallel
        raise invalid("tool_choice type 'tool' needs the 'name' of a declared tool.", "tool_choice",
                      "invalid_value")
    return "auto", parallel


# --- response ----------------------------------------------------------------------------------------------------

_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_-]+")


def tool_use_id(call_id: object, used: set[str] | None = None) -> str:
    """A tool_use block's id: the upstream's call id when Anthropic takes it (`^[a-zA-Z0-9_-]+$`) and the answer
    has not used it yet (`used`, which it joins), else a fresh `toolu_…`. The upstream's own id is kept because the
    client sends it back with the call in its history: an upstream that checks its ids (Mistral's: 9 letters and
    digits) refuses one it did not make."""
    if type(call_id) is not str or not _TOOL_USE_ID.fullmatch(call_id) or (used is not None and call_id in used):
        call_id = new_id("toolu_")
    if used is not None:
        used.add(call_id)
    return call_id


def stop_reason(finish: Any, hint: Any, stop_sequences: list[str], has_tools: bool,
                refused: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for an OpenAI finish_reason. `hint` is the matched stop string some
    servers report in `choices[].stop_reason`; `has_tools`: the answer holds a tool_use block; `refused`: the answer
    carried a refusal. "tool_use" follows the blocks, not the finish reason: an upstream may say "tool_calls" with
    no call in its answer (no tools declared, or a call its parser lost), and a client answers "tool_use" with the
    results of calls it cannot find."""
    if finish == "length":  # first: a call cut by the limit is incomplete (Anthropic says max_tokens then too)
        return "max_tokens", None
    if has_tools:
        return "tool_use", None
    if finish == "content_filter" or refused:
        return "refusal", None
    if isinstance(hint, str) and hint in stop_sequences:
        return "stop_sequence", hint
    return "end_turn", None


def usage_of(usage: object) -> dict[str, int]:
    u = Usage.parse(usage) or Usage()
    cached = u.cached_tokens if 0 <= u.cached_tokens <= u.prompt_tokens else 0
    written = u.cache_write_tokens if 0 <= u.cache_write_tokens <= u.prompt_tokens - cached else 0
    return {"input_tokens": u.prompt_tokens - cached - written, "output_tokens": u.completion_tokens,
            "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}


def input_object(arguments: object) -> dict[str, Any]:
    """`arguments_object(arguments)`, an object in strict JSON read by orjson where it reads what the standard
    library reads (no integer past 64 bits: see `jsoncodec`); anything else, by `arguments_object`."""
    if type(arguments) is str:
        try:
            raw = arguments.encode()
        except UnicodeEncodeError:  # a lone surrogate
            return arguments_object(arguments)
        if not jsoncodec.has_long_int(raw):
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return arguments_object(arguments)
            if type(value) is dict:
                return value
    return arguments_object(arguments)


def to_message(doc: dict[str, Any], model: str, stop_sequences: list[str], input_estimate: int = 0) -> dict[str, Any]:
    """A whole completion document as a Messages response. Without the upstream's usage, the counts are the
    estimates the same answer streamed reports (`MessagesStream`): `input_estimate` (the request's, as
    `count_tokens` estimates it) and the output's from its bytes."""
    done = Completion.parse(doc)
    blocks: list[dict[str, Any]] = []
    if done.reasoning:
        blocks.append({"type": "thinking", "thinking": done.reasoning, "signature": ""})
    if done.refusal:  # a refusal is what it says
        text = "\n\n".join(t for t in (done.text, done.refusal) if t.strip())
    else:
        text = "" if done.text.isspace() else done.text
    if text:
        blocks.append({"type": "text", "text": text})
    ids: set[str] = set()
    for call in done.tool_calls:
        blocks.append({"type": "tool_use", "id": tool_use_id(call.id, ids), "name": call.name,
                       "input": input_object(call.arguments)})
    reason, sequence = stop_reason(done.finish_reason, done.stop_reason, stop_sequences, bool(done.tool_calls),
                                   bool(done.refusal))
    usage = usage_of(done.usage) if Usage.parse(done.usage) is not None else \
        _estimated_usage(done, input_estimate)
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage}


def _estimated_usage(done: Completion, input_estimate: int) -> dict[str, int]:
    """The usage of an answer the upstream reported none for: the output's estimated from the bytes of its
    reasoning, text, refusal and call arguments, as the stream counts what it sends."""
    out = sum(len(t.encode("utf-8", "surrogatepass")) for t in (done.reasoning, done.text, done.refusal))
    out += sum(len(c.arguments) for c in done.tool_calls if isinstance(c.arguments, str))
    return {"input_tokens": input_estimate, "output_tokens": estimate_tokens(out), "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}


def error_body(err: ApiError, request_id: str) -> dict[str, object]:
    """An error as Anthropic writes it, in a body or a stream's error event: with the request's id at the top
    level (`{"type": "error", "error": {...}, "request_id": ...}`) when there is one."""
    body = err.anthropic_body()
    if request_id:
        body["request_id"] = request_id
    return body


# --- stream ------------------------------------------------------------------------------------------------------

MAX_HELD_CHARS = 1024 * 1024  # whitespace a stream holds back before text (server config overrides)

# The events whose JSON is the same but for an index or one value, encoded as `sse_event` writes them
_MESSAGE_START = b'event: message_start\ndata: {"type":"message_start","message":'  # + the message + b"}\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_BLOCK_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'  # + the index + b"}\n\n"
_TEXT_BLOCK = b'{"type":"text","text":""}'
_THINKING_BLOCK = b'{"type":"thinking","thinking":"","signature":""}'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_BLOCK_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_PIECE_KEYS = {"text": b',"delta":{"type":"text_delta","text":',  # an open block's delta, + its text + b"}}\n\n"
               "thinking": b',"delta":{"type":"thinking_delta","thinking":',
               "tool_use": b',"delta":{"type":"input_json_delta","partial_json":'}
_SIGNED = b',"delta":{"type":"signature_delta","signature":""}}\n\n'  # a thinking block's end (see `_close`)

class MessagesStream(ChunkEncoder):
    """Chunk documents in, Messages SSE events out. Blocks never interleave: a new kind of delta closes the open
    block. Leading whitespace of a text block is held back until real text arrives (a whitespace-only text block
    is not valid input for a later turn), up to `max_chars` characters: past them the stream ends with an error."""

    # Its own attributes in slots: with the encoder's in the instance dict they were past the most an instance's
    # attributes share their keys with the class's other instances (30), and each one was found by a dict lookup
    __slots__ = ("_ids", "_index", "_input", "_open", "_out_bytes", "_piece_head", "_refused", "_saw_tool",
                 "_started", "_texted", "id", "input_estimate", "max_chars", "model", "request_id", "stop_sequences")

    def __init__(self, model: str, stop_sequences: list[str], input_estimate: int = 0,
                 max_chars: int = MAX_HELD_CHARS, request_id: str = "") -> None:
        super().__init__()
        self.model = model
        self.request_id = request_id  # what the error event names (see `error_body`)
        self.max_chars = max_chars
        self.stop_sequences = stop_sequences
        self.input_estimate = input_estimate
        self.id = new_id("msg_")
        self._started = False
        self._index = -1
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._saw_tool = False
        self._ids: set[str] = set()  # the tool_use ids given so far
        self._refused = False
        self._texted = False  # some text went out
        self._out_bytes = 0
        self._piece_head: bytes | None = None  # the open block's delta event up to its text (see `_piece`)
        self._input: _InputJson | None = None  # the open block's arguments made JSON (an unrepaired call's)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0}}
        return [_MESSAGE_START + jsoncodec.dumps(message) + b"}\n\n", _PING]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        out = self._args_rest()
        if self._input is not None:
            if rest := self._input.end():
                out.append(self._partial_json(rest))
            self._input = None
        if self._open == "thinking":  # as Anthropic ends every thinking block; empty: no model of Anthropic's
            out.append(_BLOCK_DELTA + str(self._index).encode() + _SIGNED)  # signed it (see `to_message`)
        self._open, self._open_call = None, None
        out.append(_BLOCK_STOP + str(self._index).encode() + b"}\n\n")
        return out

    def _open_block(self, kind: str, block: bytes) -> list[bytes]:
        """`sse_event("content_block_start", {..., "content_block": ...})` for the block encoded as `block`, the
        open block closed before it."""
        out = self._close()
        self._index += 1
        self._piece_head = None
        self._open = kind
        out.append(_BLOCK_START + str(self._index).encode() + b',"content_block":' + block + b"}\n\n")
        return out

    def _piece(self, text: str) -> bytes:
        """`sse_event("content_block_delta", {"type": "content_block_delta", "index": ..., "delta": {"type": ...,
        ...: text}})`, the open block's delta (`text_delta`, `thinking_delta` or `input_json_delta`), its envelope
        encoded once per block."""
        head = self._piece_head
        if head is None:
            head = self._piece_head = _BLOCK_DELTA + str(self._index).encode() + _PIECE_KEYS[self._open or ""]
        return head + jsoncodec.dumps(text) + b"}}\n\n"

    def _reasoning(self, text: str) -> list[bytes]:
        self._out_bytes += len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: its 3 bytes
        self._pending_ws = ""
        out = [] if self._open == "thinking" else self._open_block("thinking", _THINKING_BLOCK)
        out.append(self._piece(text))
        return out

    def _text(self, text: str) -> list[bytes]:
        self._out_bytes += len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: its 3 bytes
        out: list[bytes] = []
        if self._open != "text":
            held = self._held(text)
            if held is None:
                return out
            text = held
            out += self._open_block("text", _TEXT_BLOCK)
        self._texted = True
        out.append(self._piece(text))
        return out

    def _held(self, text: str) -> str | None:
        """`ChunkEncoder._held`, the whitespace held bounded by `max_chars`."""
        if len(self._pending_ws) + len(text) > self.max_chars:
            raise ApiError(502, f"The response sent more than {self.max_chars} characters of whitespace with no "
                           "text after them, the most a stream holds back.", "response_too_large")
        return super()._held(text)

    def _refusal(self, text: str) -> list[bytes]:
        """A refusal is text (apart from text before it, as `to_message` writes it; whitespace held with no text
        after it is left out, as there), and the stop reason says "refusal"."""
        if not self._refused and self._texted:
            text = "\n\n" + text
        elif not self._refused:
            self._pending_ws = ""
        self._refused = True
        return self._text(text)

    def _call_start(self, call: ToolFragment) -> list[bytes]:
        self._saw_tool = True
        out = self._open_block("tool_use", jsoncodec.dumps({"type": "tool_use", "id": tool_use_id(call.id, self._ids),
                                                            "name": call.name, "input": {}}))
        if self._unrepaired:  # (a repaired call's arguments are JSON already)
            self._input = _InputJson()
        return out

    def _call_args(self, index: int, text: str) -> list[bytes]:
        if self._input is not None:
            text = self._input.feed(text)
            if not text:
                return []
        return [self._partial_json(text)]

    def _partial_json(self, text: str) -> bytes:
        """`_piece(text)` for the open tool_use block."""
        self._out_bytes += len(text)  # what the estimate of output tokens counts, when the upstream sends no usage
        return self._piece(text)

    def finish(self) -> list[bytes]:
        out = self._start() + self._nameless_calls() + self._close()
        reason, sequence = stop_reason(self._finish, self._hint, self.stop_sequences, self._saw_tool, self._refused)
        if self._usage is not None:
            usage: dict[str, Any] = usage_of(self._usage)
        else:
            usage = {"output_tokens": estimate_tokens(self._out_bytes)}
        out.append(sse_event("message_delta", {"type": "message_delta",
                                               "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                               "usage": usage}))
        out.append(_MESSAGE_STOP)
        return out

    def error(self, err: ApiError) -> list[bytes]:
        """The terminal event for a stream that failed after it began (what waited goes out first)."""
        return [*self._start(), *self._released_before_error(),
                sse_event("error", error_body(err, self.request_id))]


class _InputJson:
    """An unrepaired call's argument pieces as `partial_json` pieces that add up to the JSON of the input object
    the same arguments get non-stream (`arguments_object`): the Messages protocol (and the anthropic SDK, which
    parses them) requires it, and an upstream's arguments need not be JSON (`{'city': 'Oslo',}`). Strict JSON goes
    out as it comes, re-encoded piece by piece (`ArgsEmitter`: a comma waits for the member after it); from where
    the text stops being strict JSON the rest is held, and the block's end completes what went out from the lenient
    reading of the whole arguments (or, where that reading differs in what already went out, closes it)."""

    __slots__ = ("broken", "emitter", "events", "pieces", "sent", "size")

    def __init__(self) -> None:
        self.events = JsonEvents()
        self.emitter = ArgsEmitter(None)
        self.pieces: list[str] | None = []  # the whole arguments (None past RAW_ARGS_MAX: no longer kept)
        self.size = 0
        self.sent: list[str] = []  # what went out, to compare with the whole arguments (not kept past RAW_ARGS_MAX)
        self.broken = False

    def feed(self, text: str) -> str:
        if self.pieces is not None:
            self.size += len(text)
            if self.size <= RAW_ARGS_MAX:
                self.pieces.append(text)
            else:
                self.pieces, self.sent = None, _NOT_KEPT
        if self.broken:
            return ""
        if string_run(self.events, self.emitter, text):  # the usual piece, inside a string: out as it came
            self.sent.append(text)
            return text
        try:
            piece = self.emitter.feed(self.events.feed(text))
        except JsonBroken:
            piece, self.broken = "", True
        self.broken = self.broken or self.emitter.broken
        if piece:
            self.sent.append(piece)
        return piece

    def end(self) -> str:
        """What completes the pieces sent into the input's JSON; nothing for strict JSON cut off (the stream ended
        inside the arguments: completing them would invent the end of a call the model did not finish)."""
        if (not self.broken and (self.emitter.closed or self.emitter.depth > 0)) or \
                (self.pieces is not None and not self.pieces):
            return ""  # strict JSON, whole or cut; or no arguments at all (the block's input stays `{}`)
        if self.pieces is not None:
            sent = _paired("".join(self.sent))
            try:
                final = _paired(json.dumps(arguments_object("".join(self.pieces)), ensure_ascii=False,
                                           allow_nan=False))
            except (TypeError, ValueError, RecursionError):  # (as the emitter writes it: `canonical_arguments`)
                final = ""
            if final.startswith(sent):
                return final[len(sent):]
        return self.emitter.closer()


class _NotKept(list[str]):
    """A list that keeps nothing appended to it (`_InputJson.sent` past the bound: no test on the usual path)."""

    def append(self, item: str, /) -> None:
        pass


_NOT_KEPT = _NotKept()


def _paired(text: str) -> str:
    """`text` with each UTF-16 surrogate pair as the one character it stands for (the emitter joins a pair written
    as two escapes, the lenient reading keeps two code points: compared, they must agree), lone halves kept."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
