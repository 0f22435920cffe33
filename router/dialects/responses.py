"""The OpenAI Responses API in front of every backend.

`parse_request` validates a Responses request and translates its `input` items to chat messages; `build_chat`
adds the instructions and the stored history of `previous_response_id`; `output_items` and `response_object`
turn a completion document into a Response; `ResponsesStream` turns chunk documents into the Responses SSE
events, each with its `sequence_number`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engines.wire import json_type

from .. import jsoncodec
from ..chat_types import (
    CallIds,
    Completion,
    StreamChunk,
    ToolFragment,
    TranslatedMessages,
    Usage,
    content_text,
    str_or,
)
from ..custom_tools import function_description, input_schema
from ..errors import ApiError
from ..overflow import CODE as CONTEXT_CODE
from .common import (
    MAX_ID_CHARS,
    ChunkEncoder,
    Dropped,
    Memos,
    ToolsJson,
    ToolsMemo,
    Turn,
    UncodedError,
    arguments_object,
    check_int,
    check_number,
    cut_json,
    data_url_parts,
    estimate_tokens,
    file_text,
    invalid,
    new_id,
    place_system,
    shown_value,
    spaced_json,
    spliced,
    sse_event,
)

_ROLES = ("user", "assistant", "system", "developer")
MAX_OUTPUT_CHARS = 1024 * 1024  # the output one streamed Response holds for its final object (server config overrides)
LOGPROBS_PER_CHAR = 4  # the bytes of logprobs JSON a streamed Response holds for its final object, per character of
# its output bound: past them, its final object lists no more (its delta events still carry every one)
_TOOL_CHOICES = ("auto", "none", "required")
# Input items that record what a hosted tool did: the backend cannot continue them, the model loses nothing it
# needs by not seeing them (their effect, if any, is in the messages around them).
_HOSTED_CALL_ITEMS = ("web_search_call", "file_search_call", "image_generation_call", "code_interpreter_call",
                      "computer_call", "computer_call_output", "mcp_call", "mcp_list_tools", "mcp_approval_request",
                      "mcp_approval_response", "local_shell_call", "local_shell_call_output", "tool_search_call",
                      "tool_search_output", "compaction", "ghost_snapshot")
LOGPROBS_INCLUDE = "message.output_text.logprobs"
SEALED_INCLUDE = "reasoning.encrypted_content"
# A reasoning item's `encrypted_content` as this router writes it: the reasoning's own text (base64url of its UTF-8),
# behind this prefix. Not a secret (the item's `content` holds the same text): a client that keeps no state
# (`store: false`, Codex) sends back only a reasoning item's summary and encrypted_content, and an upstream that
# needs its reasoning back (DeepSeek's thinking mode in a tool loop) gets it from there.
SEALED_PREFIX = "agentgate.r1."


@dataclass(frozen=True)
class ClientTool:
    """How the client declared a tool the backend sees as a plain function: a function inside a `namespace`
    (its calls go back as `function_call` items carrying `namespace`), or a `custom` free-form tool (its one
    string argument `input` goes back as a `custom_tool_call` item)."""

    kind: str  # "function" | "custom"
    name: str
    namespace: str | None = None


TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # what OpenAI's chat API takes for a function name, and Anthropic
# (its documented rule; the API now takes 128 characters): a name outside it fails the whole request
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_DIGEST_CHARS = 8


def flat_name(namespace: str | None, name: str) -> str:
    """The backend's name for a function inside a namespace: `<namespace>__<name>` when that is a valid tool name
    (`TOOL_NAME`), else one made valid and unique: the characters outside the rule as `_`, cut to leave room for a
    digest of the namespace and name (the function's own name kept whole where it fits, the namespace cut first).
    The same pair always gives the same name, so calls map back through `client_tools` and history items sent
    again translate alike."""
    if not namespace:
        return name
    full = f"{namespace}{name}" if namespace.endswith("__") else f"{namespace}__{name}"
    if TOOL_NAME.fullmatch(full):
        return full
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:_DIGEST_CHARS]
    room = 64 - len(digest) - 1
    head, tail = _NOT_NAME.sub("_", namespace.removesuffix("__")), _NOT_NAME.sub("_", name)[:room]
    keep = room - len(tail) - 2
    readable = f"{head[:keep]}__{tail}" if keep > 0 and head else tail
    return f"{readable}_{digest}"


@dataclass
class ResponsesRequest:
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    input_messages: list[dict[str, Any]]  # this request's input as chat messages (read-only: a kept run's own)
    params: dict[str, Any]  # chat body fields other than model/messages/stream
    echo: dict[str, Any] = field(default_factory=dict)  # request fields a Response object repeats
    client_tools: dict[str, ClientTool] = field(default_factory=dict)  # backend name -> the client's tool
    dropped: Dropped = field(default_factory=Dropped)
    tools_json: ToolsJson | None = None  # the chat tools with their encoding (see `common.chat_bytes`)
    learn_tools: bool = False  # the tools list is to be learned by its bytes (`api.translated.learn_tools`)
    echo_json: bytes | None = None  # `echo["tools"]` encoded (see `response_json`)
    sealed_reasoning: bool = False  # `include` asks for reasoning items' `encrypted_content` (see SEALED_PREFIX)
    summarize: bool = False  # `reasoning.summary` asks for a summary: reasoning items carry their text as one too
    input_ids: CallIds | None = None  # the call ids `input_messages` hold, where known (see `TranslatedMessages`)
    input_system_at: tuple[int, ...] | None = None  # where `input_messages` hold a system or developer message
    # (None: not known)
    input_reply_at: int | None = None  # where its first assistant message is (None: it has none)
    input_images: bool = True  # `input_messages` may hold an image part
    input_summarized: tuple[int, ...] = ()  # where `input_messages` hold an assistant message whose reasoning the
    # client sent with a summary (see `Conversation`)

    @property
    def logprobs(self) -> bool:
        """Whether the output text's logprobs were asked for (`include`), and so of the upstream."""
        return self.params.get("logprobs") is True


def parse_request(body: dict[str, Any], memos: Translations | None = None) -> ResponsesRequest:
    """Validate a Responses request (400s name the field) and translate its input items and tools; translations
    of its history items and tools list found in and kept by `memos` (none: made for this request only)."""
    if memos is None:
        memos = Translations()
    model = _typed(body, "model", str, "a string")
    if not model:  # (an empty one too, as OpenAI's chat API takes it)
        raise missing_parameter("model")
    _no_server_state(body)
    if _typed(body, "background", bool, "a boolean"):
        raise invalid("'background' responses are not supported.", "background", "unsupported_parameter")
    stream = _typed(body, "stream", bool, "a boolean") or False
    store = _typed(body, "store", bool, "a boolean")
    previous = _typed(body, "previous_response_id", str, "a string") or None
    if previous is not None and len(previous) > MAX_ID_CHARS:
        raise invalid(f"'previous_response_id' is {len(previous)} characters long; a response id has at most "
                      f"{MAX_ID_CHARS}.", "previous_response_id", "invalid_value")
    instructions = _typed(body, "instructions", str, "a string")
    max_output = _at_least(body, "max_output_tokens", MIN_OUTPUT_TOKENS)
    max_tool_calls = _int(body, "max_tool_calls", 1)  # (hosted tools' calls: none are made here)
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    parallel = _typed(body, "parallel_tool_calls", bool, "a boolean")
    metadata = _metadata(body)
    safety_identifier = _typed(body, "safety_identifier", str, "a string")
    user = _typed(body, "user", str, "a string")

    dropped = Dropped()
    given = _input_messages(body.get("input"), previous, dropped, memos, "messages" in body)
    declared, learn = _tools(body.get("tools"), dropped, memos.tools)
    echo_tools, client_tools = declared.echo, declared.client
    params: dict[str, Any] = {}
    choice, echo_choice, tools = _tool_choice(body.get("tool_choice"), declared, dropped)
    if tools:  # tool_choice and parallel_tool_calls only beside tools: OpenAI's chat API refuses them alone
        params["tools"] = tools
        if choice is not None:
            params["tool_choice"] = choice
        if parallel is not None:
            params["parallel_tool_calls"] = parallel
    # the end user as chat's `user`, which every provider reads (an Anthropic one as `metadata.user_id`)
    for name, value in (("max_tokens", max_output), ("temperature", temperature), ("top_p", top_p),
                        ("user", safety_identifier or user)):
        if value is not None:
            params[name] = value
    top_logprobs = _int(body, "top_logprobs", 0)
    if top_logprobs is not None and top_logprobs > 20:
        raise invalid("'top_logprobs' must be an integer from 0 to 20.", "top_logprobs", "invalid_value")
    include = _include(body)
    if LOGPROBS_INCLUDE in include:  # the output text's logprobs: asked of the upstream
        params["logprobs"] = True
        if top_logprobs is not None:
            params["top_logprobs"] = top_logprobs
    reasoning = _typed(body, "reasoning", dict, "an object")
    # any string: the levels grow ("none", "xhigh", "max"); the upstream judges the value, OpenAI's a 400 of its own
    effort = _field(reasoning, "effort", "reasoning.effort")
    summary = _summary(reasoning)
    if effort is not None:
        params["reasoning_effort"] = effort
    text = _typed(body, "text", dict, "an object")
    fmt = _text_format(text)
    if fmt is not None:
        params["response_format"] = fmt
    # fields OpenAI's chat API has too, sent as the chat route sends them (an Anthropic provider has none of them)
    verbosity = _verbosity(text)
    for name, value in (("verbosity", verbosity), ("prompt_cache_key", _field(body, "prompt_cache_key")),
                        ("service_tier", _field(body, "service_tier"))):
        if value is not None:
            params[name] = value
    echo = {
        "instructions": instructions, "max_output_tokens": max_output, "temperature": temperature,
        "top_p": top_p, "parallel_tool_calls": parallel is not False, "tools": echo_tools,
        "tool_choice": echo_choice, "metadata": metadata or {}, "previous_response_id": previous,
        # ("none", no summary, echoed as null: the openai SDK's type holds the three values or null)
        "reasoning": {"effort": effort, "summary": None if summary == "none" else summary} if reasoning else None,
        "text": {"format": (text or {}).get("format") or {"type": "text"},
                 **({"verbosity": verbosity} if verbosity is not None else {})},
        "truncation": _truncation(body),
        "user": user, "safety_identifier": safety_identifier, "store": store is not False,
        "top_logprobs": top_logprobs, "max_tool_calls": max_tool_calls,
    }
    return ResponsesRequest(model=model, stream=stream, store=store is not False, previous_response_id=previous,
                            instructions=instructions, input_messages=given.messages, params=params, echo=echo,
                            client_tools=client_tools, dropped=dropped, tools_json=declared.json,
                            learn_tools=learn, echo_json=declared.echo_json,
                            sealed_reasoning=SEALED_INCLUDE in include, summarize=summary not in (None, "none"),
                            input_ids=given.ids,
                            input_system_at=given.system_at, input_reply_at=given.reply_at,
                            input_images=given.images, input_summarized=given.summarized)


MIN_OUTPUT_TOKENS = 16  # the least `max_output_tokens` OpenAI's Responses API takes


def _at_least(body: dict[str, Any], name: str, lo: int) -> int | None:
    """An integer field of at least `lo`; a lower one is OpenAI's 400 for it."""
    value: int | None = _typed(body, name, int, "an integer")
    if value is not None and value < lo:
        raise invalid(f"Invalid '{name}': integer below minimum value. Expected a value >= {lo}, but got {value} "
                      "instead.", name, "integer_below_min_value")
    return value


def _int(body: dict[str, Any], name: str, lo: int) -> int | None:
    """`check_int`, a value of another type `wrong_type`."""
    _typed(body, name, int, "an integer")
    return check_int(body, name, lo)


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    """`check_number`, a value of another type `wrong_type`."""
    _typed(body, name, (int, float), "a number")
    return check_number(body, name, lo, hi)


_USE_INSTEAD = re.compile(r"\buse\b[^.]*\bmax_(?:completion_|output_)?tokens\b[^.]*\binstead\b", re.IGNORECASE)
_LIMIT_FIELDS = re.compile(r"(['\"`]?)\bmax_(?:completion_)?tokens\b\1(?:\s+or\s+(['\"`]?)"
                           r"\bmax_(?:completion_)?tokens\b\2)?")


def limit_named(err: ApiError, req: ResponsesRequest) -> ApiError:
    """An upstream's refusal naming the output limit as it went upstream (chat's `max_tokens`, or
    `max_completion_tokens`), naming the field the client sent, `max_output_tokens`, in its message and `param`:
    OpenAI documents no bound for it but the model's, which the upstream judges. Only when the client sent it (a
    limit the router set, an entry's or an Anthropic provider's default, is not the client's to change), and not
    for a message telling one field from the other ("Use 'max_completion_tokens' instead"). Any other error as it
    was."""
    if err.status not in (400, 422) or req.echo.get("max_output_tokens") is None \
            or _LIMIT_FIELDS.search(err.message) is None or _USE_INSTEAD.search(err.message) is not None:
        return err
    return ApiError(err.status, _LIMIT_FIELDS.sub(r"\1max_output_tokens\1", err.message), err.code, type=err.type,
                    param="max_output_tokens", headers=err.headers)


def _no_server_state(body: dict[str, Any]) -> None:
    """`conversation` and `prompt` (state kept by OpenAI) are refused; `conversation` beside
    `previous_response_id` with OpenAI's answer to both (given before it would look the conversation up)."""
    if body.get("conversation") is not None and body.get("previous_response_id") is not None:
        raise invalid("Mutually exclusive parameters. Ensure you are only providing one of: 'previous_response_id' "
                      "or 'conversation'.", None, "mutually_exclusive_parameters")
    for unsupported in ("conversation", "prompt"):
        if body.get(unsupported) is not None:
            raise invalid(f"'{unsupported}' is not supported; continue a conversation with 'previous_response_id'.",
                          unsupported, "unsupported_parameter")


def _field(obj: dict[str, Any] | None, name: str, param: str | None = None) -> str | None:
    """A string field of `obj` (None when absent or null); another type is a 400 naming `param`."""
    value: str | None = _typed(obj, name, str, "a string", param)
    return value


MAX_METADATA_PAIRS = 16  # OpenAI's bounds on `metadata`
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def missing_parameter(param: str) -> ApiError:
    """OpenAI's `missing_required_parameter` 400, naming the field's full path."""
    return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def wrong_type(param: str, expected: str, value: object) -> ApiError:
    """OpenAI's `invalid_type` 400: the field's full path, the JSON type it takes (`expected`: "a string", "an
    object", ...) and the JSON type it was sent (see `json_type`)."""
    return invalid(f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.", param,
                   "invalid_type")


def _is_kind(value: object, kind: type | tuple[type, ...]) -> bool:
    """Whether `value` is of `kind` (a boolean is never a number)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def _typed(obj: dict[str, Any] | None, name: str, kind: type | tuple[type, ...], expected: str,
           param: str | None = None) -> Any:
    """`obj[name]` when it is of `kind`; None when absent or null; another type is `wrong_type` naming `param` (the
    field's full path; `name` when it is a top-level field)."""
    value = (obj or {}).get(name)
    if value is None or _is_kind(value, kind):
        return value
    raise wrong_type(param or name, expected, value)


def _metadata(body: dict[str, Any]) -> dict[str, str] | None:
    """`metadata`, as OpenAI bounds it: at most 16 pairs, keys of at most 64 characters, values strings of at
    most 512; a 400 names the field at fault (`metadata.<key>` for a value; a key too long is not echoed whole)."""
    value: dict[str, Any] | None = _typed(body, "metadata", dict, "an object")
    if not value:
        return value
    if len(value) > MAX_METADATA_PAIRS:
        raise invalid(f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
                      f"properties, but got an object with {len(value)} properties instead.", "metadata",
                      "object_above_max_properties")
    for key, item in value.items():
        _metadata_pair(key, item)
    return value


def _metadata_pair(key: str, item: object) -> None:
    if len(key) > MAX_METADATA_KEY:
        raise invalid(f"Invalid property name in 'metadata': {key[:MAX_METADATA_KEY]!r}… is too long. Expected a "
                      f"string with maximum length {MAX_METADATA_KEY}, but got a string with length {len(key)} "
                      "instead.", "metadata", "property_name_above_max_length")
    param = f"metadata.{key}"
    if not isinstance(item, str):
        raise invalid(f"Invalid type for '{param}': expected a string, but got {json_type(item)} instead.", param,
                      "invalid_type")
    if len(item) > MAX_METADATA_VALUE:
        raise invalid(f"Invalid '{param}': string too long. Expected a string with maximum length "
                      f"{MAX_METADATA_VALUE}, but got a string with length {len(item)} instead.", param,
                      "string_above_max_length")


def _one_of(obj: dict[str, Any] | None, name: str, values: tuple[str, ...], param: str | None = None) -> str | None:
    """A string field of `obj` that takes `values` only (None when absent or null); another is OpenAI's 400 naming
    `param` (the field's full path), its supported values listed."""
    value = _field(obj, name, param)
    if value is not None and value not in values:
        shown = [repr(v) for v in values]
        listed = " and ".join(shown) if len(shown) < 3 else f"{', '.join(shown[:-1])}, and {shown[-1]}"
        raise invalid(f"Invalid value: {value[:40]!r}. Supported values are: {listed}.", param or name,
                      "invalid_value")
    return value


def _summary(reasoning: dict[str, Any] | None) -> str | None:
    """`reasoning.summary`, or where it is absent its deprecated name `generate_summary`; each, when given, held to
    OpenAI's values."""
    summary = _summary_field(reasoning, "summary")
    legacy = _summary_field(reasoning, "generate_summary")
    return summary if summary is not None else legacy


def _summary_field(reasoning: dict[str, Any] | None, name: str) -> str | None:
    """One of the two summary fields: "auto", "concise" or "detailed" (the openai SDK's type takes the three), or
    "none": Codex leaves the field out for no summaries, its "none", which Codex before December 2025 sent (taken,
    as no summary)."""
    if reasoning is not None and reasoning.get(name) == "none":
        return "none"
    return _one_of(reasoning, name, ("auto", "concise", "detailed"), f"reasoning.{name}")


def _verbosity(text: dict[str, Any] | None) -> str | None:
    """`text.verbosity`: "low", "medium" or "high", as OpenAI takes it."""
    return _one_of(text, "verbosity", ("low", "medium", "high"), "text.verbosity")


def _truncation(body: dict[str, Any]) -> str:
    """`truncation`: "auto" or "disabled" (the default), as OpenAI takes it; "auto" is echoed and changes nothing
    (an input too long for the model is the upstream's 400)."""
    return _one_of(body, "truncation", ("auto", "disabled")) or "disabled"


def _include(body: dict[str, Any]) -> list[str]:
    """`include`: a list of strings (those agentgate has nothing to add for are accepted and have no effect)."""
    value: list[Any] | None = _typed(body, "include", list, "an array")
    for i, name in enumerate(value or []):
        if not isinstance(name, str):
            raise wrong_type(f"include[{i}]", "a string", name)
    return value or []


def _no_input(chat_shaped: bool) -> ApiError:
    """`input` missing; where the body has chat's `messages`, OpenAI's answer saying where they moved."""
    if chat_shaped:
        return invalid("Unsupported parameter: 'messages'. In the Responses API, this parameter has moved to "
                       "'input'. Try again with the new parameter.", None, "unsupported_parameter")
    return missing_parameter("input")


class _Input(NamedTuple):
    """`input` as chat messages, the call ids they hold (None: not known), where its system and developer
    messages are and where its first assistant message is (None: it has none), whether one may hold an image
    part, where an assistant message's reasoning came with a summary."""

    messages: list[dict[str, Any]]
    ids: CallIds | None = None
    system_at: tuple[int, ...] = ()
    reply_at: int | None = None
    images: bool = False
    summarized: tuple[int, ...] = ()


def _input_messages(raw_input: object, previous: str | None, dropped: Dropped, memos: Translations,
                    body_has_messages: bool = False) -> _Input:
    """`input` (a string or a list of items) as chat messages."""
    if raw_input is None:
        raise _no_input(body_has_messages)
    if isinstance(raw_input, str):  # ("" adds nothing: an empty user message is refused by some upstreams)
        given = _Input([{"role": "user", "content": raw_input}] if raw_input else [])
    elif isinstance(raw_input, list):
        given = _input_items(raw_input, dropped, memos, keep=previous is None)
    else:
        raise wrong_type("input", "a string or an array of input items", raw_input)
    if not given.messages and previous is None:
        if not raw_input:  # (OpenAI's answer to an empty one)
            raise invalid("One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must be "
                          "provided.", None, "missing_required_parameter")
        raise invalid("'input' holds nothing to send to the model.", "input", "invalid_value")
    return given


def build_chat(req: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat body: this request's instructions (never the stored ones), the stored history, the new input. The
    messages are a `TranslatedMessages` knowing their call ids when there is no stored history."""
    system = [{"role": "system", "content": req.instructions}] if req.instructions else []
    if history:
        messages: list[dict[str, Any]] = place_system([*system, *history, *req.input_messages])
    elif req.input_system_at is None:
        messages = TranslatedMessages(place_system([*system, *req.input_messages]), req.input_ids,
                                      req.input_images)
    else:
        messages = TranslatedMessages(_placed_input(req), req.input_ids, req.input_images)
    chat = {"model": req.model, "messages": messages, **req.params}
    if req.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _placed_input(req: ResponsesRequest) -> list[dict[str, Any]]:
    """`place_system` of the instructions and the input, made from where the input's system and developer messages
    and its first reply are (`input_system_at`, `input_reply_at`): a few slices, not a read of every message."""
    assert req.input_system_at is not None
    messages = req.input_messages
    texts = [req.instructions] if req.instructions else []
    reply = len(messages) if req.input_reply_at is None else req.input_reply_at
    rest: list[dict[str, Any]] = []
    at = 0
    for i in req.input_system_at:
        rest += messages[at:i]
        at = i + 1
        text = content_text(messages[i].get("content"))
        if text and i < reply:
            texts.append(text)
        elif text:
            rest.append({"role": "user", "content": text})
    rest += messages[at:]
    return [{"role": "system", "content": "\n\n".join(texts)}, *rest] if texts else rest


def _image_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}: input_image needs an 'image_url' (a URL or a data URL); file ids are "
                      "not supported.", f"{where}.image_url", "unsupported_content")
    image: dict[str, Any] = {"url": url}
    if part.get("detail") in ("low", "high", "auto"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    """An `input_file` as text: a text file's content, else a placeholder saying what was omitted."""
    data, name = part.get("file_data"), part.get("filename")
    if not isinstance(data, str) and not isinstance(part.get("file_url"), str) and \
            not isinstance(part.get("file_id"), str):
        raise invalid(f"{where}: input_file needs 'file_data', 'file_url' or 'file_id'.", where, "invalid_type")
    media, payload = data_url_parts(data) if isinstance(data, str) else ("", None)
    if isinstance(data, str) and not data.startswith("data:"):
        payload = data
    label = name if isinstance(name, str) and name else str(part.get("file_url") or part.get("file_id") or "")
    if not media and label.endswith((".txt", ".md", ".json", ".csv", ".py")):
        media = "text/plain"
    return {"type": "text", "text": file_text(label, media, payload)}


def _parts(content: Any, where: str, role: str, key: str = "content") -> list[dict[str, Any]]:
    """The content parts of item `where`'s `key` (its message `content`, a tool's `output`) as chat parts."""
    if content is None:
        raise missing_parameter(f"{where}.{key}")
    if not isinstance(content, list):
        raise wrong_type(f"{where}.{key}", "a string or an array of content parts", content)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        pwhere = f"{where}.{key}[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": _part_text(part, "text", pwhere)})
        elif ptype == "refusal":
            parts.append({"type": "text", "text": _part_text(part, "refusal", pwhere)})
        elif ptype == "input_image" and role != "assistant":
            parts.append(_image_part(part, pwhere))
        elif ptype == "input_file" and role != "assistant":
            parts.append(_file_part(part, pwhere))
        else:  # (a type no part has names the part's type; a part of a type not taken here, the part)
            param = pwhere if ptype in _PART_TYPES or not isinstance(part, dict) else f"{pwhere}.type"
            raise invalid(f"{pwhere}: content part type {shown_value(ptype)} is not supported here.", param,
                          "unsupported_content")
    return parts


_PART_TYPES = ("input_text", "output_text", "text", "refusal", "input_image", "input_file", "input_audio",
               "computer_screenshot", "summary_text", "reasoning_text")


def _part_text(part: dict[str, Any], name: str, where: str) -> str:
    """A text part's text (`name`: "text", a refusal's "refusal"); missing or not a string is a 400 naming it, as
    OpenAI names it (`input[0].content[0].text`)."""
    value, param = part.get(name), f"{where}.{name}"
    if value is None:
        raise missing_parameter(param)
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    return value


def _joined(parts: list[dict[str, Any]], sep: str) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" for p in parts):
        return sep.join(p["text"] for p in parts)
    return parts


def _parts_text(content: Any, where: str, role: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: text parts as one text, separate parts of a user's (or system's)
    message a paragraph apart, as the Messages route joins text blocks (joined as they were, the last word of one
    ran into the first of the next); an assistant's output text as it was generated, in one piece."""
    if isinstance(content, str):
        return content
    return _joined(_parts(content, where, role), "" if role == "assistant" else "\n\n")


def _tool_output(output: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool's output as the tool message's text, plus the images it returned (they go to a user message after
    the tool messages: chat tool messages carry text only)."""
    if isinstance(output, str):
        return output, []
    if isinstance(output, list):
        parts = _parts(output, where, "tool", key="output")
        images = [p for p in parts if p["type"] == "image_url"]
        text = "\n".join(p["text"] for p in parts if p["type"] == "text")  # as the Messages route's tool results
        if images:
            note = f"[{len(images)} image{'s' if len(images) > 1 else ''} returned; shown in the next message]"
            text = f"{text}\n{note}" if text else note
        return text, images
    raise wrong_type(f"{where}.output", "a string or an array of content parts", output)


def _append_call(out: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """The call joins the assistant message just before it (a new message: the one there may be a kept
    translation, shared and read-only) or a new one."""
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and not isinstance(last.get("content"), list):
        joined = out[-1] = {**last, "tool_calls": [*last.get("tool_calls", ()), call]}
        if joined.get("content") == "":
            joined["content"] = None
        return
    out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _append_message(out: list[dict[str, Any]], messages: tuple[dict[str, Any], ...]) -> None:
    """An input message item's messages. Assistant text right after the assistant's calls joins their message:
    a streamed answer lists its items as they came (a call, then text), agents send them back in that order, and
    text between the calls and their results is an assistant message the chat format refuses there (OpenAI and
    others answer 400: tool messages must follow the message with the calls)."""
    last = out[-1] if out else None
    if len(messages) == 1 and messages[0]["role"] == "assistant" and isinstance(messages[0].get("content"), str) \
            and last is not None and last["role"] == "assistant" and last.get("tool_calls") \
            and not isinstance(last.get("content"), list):
        before, text = last.get("content") or "", messages[0]["content"]
        out[-1] = {**last, "content": f"{before}\n\n{text}" if before and text else before or text}
        return
    out += messages


def _call_of(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A `function_call` or `custom_tool_call` input item as a chat tool call under the backend's name."""
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise _call_needs(item, where, "call_id")
    if not isinstance(name, str) or not name:
        raise _call_needs(item, where, "name")
    if item.get("type") == "custom_tool_call":
        given = item.get("input", "")
        if not isinstance(given, str):
            raise wrong_type(f"{where}.input", "a string", given)
        args = spaced_json({"input": given})
    else:
        args = item.get("arguments", "")
        if not isinstance(args, str):
            raise wrong_type(f"{where}.arguments", "a string", args)
        namespace = item.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise wrong_type(f"{where}.namespace", "a string", namespace)
        name = flat_name(namespace, name)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args or "{}"}}


def _call_needs(item: dict[str, Any], where: str, field_name: str) -> ApiError:
    """A call's `call_id` or `name` missing, empty, or not a string (`wrong_type`)."""
    value = item.get(field_name)
    if value is not None and not isinstance(value, str):
        return wrong_type(f"{where}.{field_name}", "a string", value)
    return invalid(f"{where}: a {item.get('type')} needs string 'call_id' and 'name'.", f"{where}.{field_name}",
                   "invalid_type")


@dataclass(frozen=True, slots=True)
class _Marked:
    """Positions in an input's chat messages, the last first: one more is one node, shared with the states of a
    kept run before it (a tuple grown at each would copy it, each state holding its own)."""

    at: int
    before: _Marked | None = None

    def positions(self) -> tuple[int, ...]:
        out: list[int] = []
        node: _Marked | None = self
        while node is not None:
            out.append(node.at)
            node = node.before
        return tuple(reversed(out))


@dataclass(frozen=True, slots=True)
class _Sofar:
    """What an input adds up to after some of its items, besides its messages (the state a kept run takes up,
    see `common.Conversations`)."""

    images: tuple[dict[str, Any], ...] = ()  # returned by the tool outputs just read; shown once they end
    reasoning: tuple[str, ...] = ()  # the reasoning items just read: they go with the assistant message that follows
    dropped: tuple[str, ...] = ()
    system_at: tuple[int, ...] = ()  # where the system and developer messages are
    reply_at: int | None = None  # where the first assistant message is
    pictures: bool = False  # an image part was read
    summed: bool = False  # one of `reasoning` came with a summary
    summarized: _Marked | None = None  # where an assistant message's reasoning came with a summary

    def then(self, turn: Turn, out: list[dict[str, Any]], images: tuple[dict[str, Any], ...],
             reasoning: tuple[str, ...], summed: bool = False, mark: int | None = None) -> _Sofar:
        """The state after one more item, `turn` its translation, added to `out` (`summed`: whether `reasoning`
        holds one with a summary; `mark`: the position of a message whose reasoning came with one)."""
        dropped = self.dropped + tuple(k for k in turn.dropped if k not in self.dropped) if turn.dropped \
            else self.dropped
        system_at = self.system_at
        if turn.kind == "message" and turn.messages[0]["role"] in ("system", "developer"):
            system_at = (*system_at, len(out) - 1)  # (such a message joins no other: it is the last)
        reply_at = self.reply_at
        if reply_at is None and out and out[-1]["role"] == "assistant":
            reply_at = len(out) - 1
        return _Sofar(images, reasoning, dropped, system_at, reply_at, self.pictures or turn.images > 0, summed,
                      self.summarized if mark is None else _Marked(mark, self.summarized))


_START = _Sofar()


def _input_items(items: list[Any], dropped: Dropped, memos: Translations, keep: bool = True) -> _Input:
    """The input items as chat messages, taken up where a kept run of the conversation holds the first ones
    (`memos.conversations`: an agent resends its whole conversation each turn), each later item's translation
    found in `memos.history`; kept as a run unless `keep` is false (an input after a `previous_response_id`: its
    new items only, never resent)."""
    done = memos.conversations.start(items)
    history, out = memos.history, done.messages
    sofar = done.state or _START
    for i in range(done.count, len(items)):
        item = items[i]
        turn = history.get(item, _item_turn, i) if isinstance(item, dict) else _item_turn(item, i)
        sofar = _placed(out, turn, sofar)
        done.add(sofar, turn.call_ids, history.held(item))
    ids = memos.conversations.keep(items, done) if keep else None
    for kind in sofar.dropped:
        dropped.add(kind)
    if sofar.images:  # (a new list: the kept run holds `out`)
        out = [*out, {"role": "user", "content": [{"type": "text", "text": "Images returned by the tools:"},
                                                  *sofar.images]}]
    return _Input(out, ids, sofar.system_at, sofar.reply_at, sofar.pictures,
                  sofar.summarized.positions() if sofar.summarized is not None else ())


def _placed(out: list[dict[str, Any]], turn: Turn, sofar: _Sofar) -> _Sofar:
    """One more item's translation `turn` added to `out`; the state after it."""
    if turn.kind == "reasoning":
        return sofar.then(turn, out, sofar.images, (*sofar.reasoning, turn.extra[0]["text"]),
                          sofar.summed or turn.extra[0]["summary"])
    if turn.kind == "tool":
        out += turn.messages
        return sofar.then(turn, out, (*sofar.images, *turn.extra), ())
    if sofar.images:
        out.append({"role": "user", "content": [{"type": "text", "text": "Images returned by the tools:"},
                                                *sofar.images]})
    if turn.kind == "message":
        _append_message(out, turn.messages)
    elif turn.kind == "call":
        _append_call(out, turn.extra[0])
    reasoning, summed, mark = sofar.reasoning, sofar.summed, None
    if reasoning and turn.kind in ("message", "call"):
        at = len(out) - 1
        if out[at]["role"] == "assistant":
            _with_reasoning(out, reasoning)
            if summed and (sofar.summarized is None or sofar.summarized.at != at):
                mark = at
        reasoning, summed = (), False
    return sofar.then(turn, out, (), reasoning, summed, mark)


def _reference_id(item: object, i: int) -> str | None:
    """The id an `item_reference` input item names (`type` may be left out: an item with only an `id`); None for
    any other item."""
    if not isinstance(item, dict) or not (item.get("type") == "item_reference" or (
            item.get("type") is None and "role" not in item and "id" in item)):
        return None
    ref = item.get("id")
    if ref is not None and not isinstance(ref, str):
        raise wrong_type(f"input[{i}].id", "a string", ref)
    if not isinstance(ref, str) or not ref or len(ref) > MAX_ID_CHARS:
        raise invalid(f"input[{i}]: an item_reference needs an 'id' (a string of at most {MAX_ID_CHARS} "
                      "characters).", f"input[{i}].id", "invalid_type")
    return ref


def referenced_ids(body: dict[str, Any]) -> list[str]:
    """The ids the `item_reference` items of the request's `input` name, each once, in order."""
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return list(dict.fromkeys(ref for i, item in enumerate(items) if (ref := _reference_id(item, i)) is not None))


def with_references(body: dict[str, Any], found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`body` with each `item_reference` of its `input` replaced by the stored item it names (`found`, by id); one
    naming an item not there is a 400 naming the input. A new body and list: the client's are shared."""
    items: list[Any] = body["input"]
    resolved: list[Any] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        ref = _reference_id(item, i)
        if ref is None:
            resolved.append(item)
        elif ref in seen:
            raise duplicate_item(ref)
        elif ref in found:
            seen.add(ref)
            resolved.append(found[ref])
        else:
            raise ItemNotFound(ref)
    return {**body, "input": resolved}


def duplicate_item(ref: str) -> ApiError:
    """An item the request puts before the model twice (referenced twice, or referenced while the conversation
    `previous_response_id` continues holds it), refused as OpenAI refuses it."""
    return invalid(f"Duplicate item found with id {ref[:64]!r}. Remove duplicate items from your input and try "
                   "again.", "input", "duplicate_item")


class ItemNotFound(UncodedError):
    """An `item_reference` to no item stored for the key, answered as OpenAI answers it: 404, an
    `invalid_request_error` naming the input, `code: null` (`item_not_found` is the router's name for it in its
    logs and metrics)."""

    def __init__(self, ref: str) -> None:
        super().__init__(404, f"Item with id {ref[:64]!r} not found.", "item_not_found", param="input",
                         type="invalid_request_error")
        self.ref = ref


def response_not_found(shown_id: str) -> ApiError:
    """No stored response of the key has the id (`shown_id`: as an error message shows it, quoted), answered as
    OpenAI answers it: 404, an `invalid_request_error`, `param` and `code` null (`response_not_found` is the
    router's name for it in its logs and metrics)."""
    return UncodedError(404, f"Response with id {shown_id} not found.", "response_not_found",
                        type="invalid_request_error")


def _item_turn(item: Any, i: int) -> Turn:
    """What one input item adds: a tool message (and the images its output returned), a message, a call for the
    assistant message before it, or nothing (earlier reasoning; a hosted tool's item, reported as dropped)."""
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise invalid(f"Invalid type for '{where}': expected an input item, but got {json_type(item)} instead.",
                      where, "invalid_type")
    kind = item.get("type", "message" if "role" in item else None)
    if kind in ("function_call_output", "custom_tool_call_output"):
        call_id = item.get("call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise wrong_type(f"{where}.call_id", "a string", call_id)
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"{where}: a {kind} needs a string 'call_id'.", f"{where}.call_id", "invalid_type")
        text, found = _tool_output(item.get("output"), where)
        return Turn(({"role": "tool", "tool_call_id": call_id, "content": text},), images=len(found), kind="tool",
                    extra=tuple(found), call_ids=(call_id,))
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise invalid(f"{where}.role must be one of {', '.join(_ROLES)}.", where, "invalid_value")
        content = _parts_text(item.get("content"), where, role)
        # (a developer message keeps its role, so that `input_items` lists it as sent: `place_system` makes it
        # the system message's)
        images = sum(p["type"] == "image_url" for p in content) if isinstance(content, list) else 0
        return Turn(({"role": role, "content": content},), images=images, kind="message")
    if kind in ("function_call", "custom_tool_call"):
        call = _call_of(item, where)
        return Turn((), kind="call", extra=(call,), call_ids=(call["id"],))
    if kind == "reasoning":  # goes with the assistant message that follows it (see `_input_items`)
        text = reasoning_text(item)
        return Turn((), kind="reasoning", extra=({"text": text, "summary": _has_summary(item)},)) if text \
            else Turn((), kind="skip")
    if kind in _HOSTED_CALL_ITEMS:
        return Turn((), kind="skip", dropped=(str(kind),))
    raise invalid(f"{where}: input item type {shown_value(kind)} is not supported.", where, "unsupported_input_item")


def reasoning_text(item: dict[str, Any]) -> str:
    """The text of a reasoning item as this router makes them (`content` of `reasoning_text` parts, else its
    `summary`), sent back as the next assistant message's `reasoning_content`, as the upstream that wrote it wants it
    (DeepSeek's thinking mode refuses a tool loop without it; chat templates render it, so an engine's prompt is
    the one it generated). An `encrypted_content` this router wrote is read (`unsealed`: what a client keeping no
    state sends back); "" for another's (OpenAI's own: its text is not what its model reads back, and OpenAI's chat
    API refuses fields it does not know); a conversation with a model that gives no
    reasoning never has any. An Anthropic upstream gets none of it (the chat form's `reasoning_content` is not
    read there)."""
    sealed = item.get("encrypted_content")
    if sealed:
        return unsealed(sealed)
    for key, part_type in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(key)
        if isinstance(parts, list):
            text = "".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == part_type
                           and isinstance(p.get("text"), str))
            if text:
                return text
    return ""


def _has_summary(item: dict[str, Any]) -> bool:
    """Whether a reasoning item has a summary with text (as the client had it: listed with it again)."""
    parts = item.get("summary")
    return isinstance(parts, list) and any(isinstance(p, dict) and p.get("type") == "summary_text"
                                           and isinstance(p.get("text"), str) and p["text"] for p in parts)


def sealed(text: str) -> str:
    """A reasoning item's `encrypted_content` holding `text` (see SEALED_PREFIX)."""
    return SEALED_PREFIX + base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


def _sealed_chars(size: int) -> int:
    """The length of `sealed` of a text of `size` UTF-8 bytes: its prefix and their base64 (padded)."""
    return len(SEALED_PREFIX) + 4 * ((size + 2) // 3)


def unsealed(value: object) -> str:
    """The text `sealed` wrote into an `encrypted_content`; "" for any other (OpenAI's own, or not readable)."""
    if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
        return ""
    try:
        return base64.urlsafe_b64decode(value[len(SEALED_PREFIX):]).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""


def _with_reasoning(out: list[dict[str, Any]], reasoning: tuple[str, ...]) -> None:
    """The reasoning items read just before the assistant message last in `out` as its `reasoning_content` (a new
    message: the one there may be a kept translation, shared and read-only)."""
    last = out[-1]
    before = last.get("reasoning_content")
    text = "".join(reasoning)
    out[-1] = {**last, "reasoning_content": before + text if isinstance(before, str) else text}


def _tool_name(t: dict[str, Any], where: str, key: str = "name") -> str:
    """A tool's (or namespace's) non-empty string `name`; a 400 naming it otherwise."""
    name = t.get(key)
    if name is None:
        raise missing_parameter(f"{where}.{key}")
    if not isinstance(name, str):
        raise wrong_type(f"{where}.{key}", "a string", name)
    if not name:
        raise invalid(f"{where} needs a non-empty string '{key}'.", f"{where}.{key}", "invalid_type")
    return name


def _description(t: dict[str, Any], where: str) -> str | None:
    desc: str | None = _typed(t, "description", str, "a string", f"{where}.description")
    return desc


def _function(t: dict[str, Any], where: str) -> tuple[str, dict[str, Any], str | None]:
    name, params = _tool_name(t, where), t.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise wrong_type(f"{where}.parameters", "an object", params)
    return name, params, _description(t, where)


def _custom(t: dict[str, Any], where: str) -> tuple[str, dict[str, Any], str | None]:
    """A free-form `custom` tool as a function taking one string, `input`; a grammar goes into the description."""
    name, desc = _tool_name(t, where), _description(t, where)
    return name, input_schema(), function_description(desc, t.get("format"))  # (as the chat route declares one)


@dataclass(frozen=True)
class _Tools:
    """A tools list translated (see `_translate_tools`), with the hosted tool types it dropped and the chat
    tools' encoding."""

    chat: list[dict[str, Any]]
    echo: list[dict[str, Any]]
    client: dict[str, ClientTool]
    dropped: tuple[str, ...]
    json: ToolsJson | None
    echo_json: bytes | None = None  # `echo` encoded: every Response of the request repeats it

    def size(self) -> int:
        return (len(self.json.data) if self.json is not None else 0) + len(self.echo_json or b"")


Translations = Memos[_Tools, _Sofar]  # what one app keeps of this dialect's translations


def _tools(value: Any, dropped: Dropped, memo: ToolsMemo[_Tools]) -> tuple[_Tools, bool]:
    """Chat function tools, the tools a Response echoes, and the client's view of each backend name (shared by
    the requests that send the same list: read-only); whether the list is to be learned by its bytes."""
    if value is None:
        return _Tools([], [], {}, (), None), False
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    done, new = memo.get(value, _made_tools, _Tools.size)
    for kind in done.dropped:
        dropped.add(kind)
    return done, new


def _made_tools(value: list[Any]) -> _Tools:
    own = Dropped()
    chat, echo, client = _translate_tools(value, own)
    echoed = ToolsJson.of(echo)
    return _Tools(chat, echo, client, tuple(own.kinds), ToolsJson.of(chat), echoed.data if echoed else None)


def _translate_tools(value: list[Any], dropped: Dropped) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                  dict[str, ClientTool]]:
    """Function tools pass; a `namespace` contributes its functions; a `custom` tool becomes a function of one
    string; hosted tools (web search, file search, code interpreter, MCP, ...) are dropped and reported."""
    chat: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    client: dict[str, ClientTool] = {}

    def add(name: str, params: dict[str, Any], desc: str | None, view: ClientTool, where: str,
            strict: object = None) -> None:
        if name in client:
            raise invalid(f"{where}: the tool name {name!r} is declared twice.", f"{where}.name", "invalid_value")
        client[name] = view
        fn: dict[str, Any] = {"name": name, "parameters": params}
        if desc:
            fn["description"] = desc
        if isinstance(strict, bool):  # as the client said it (chat's default differs from Responses')
            fn["strict"] = strict
        chat.append({"type": "function", "function": fn})

    for i, t in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise wrong_type(where, "an object", t)
        kind = t.get("type")
        if kind == "function":
            name, params, desc = _function(t, where)
            add(name, params, desc, ClientTool("function", name), where, t.get("strict"))
            echo.append({"type": "function", "name": name, "description": desc, "parameters": params,
                         "strict": t.get("strict") if isinstance(t.get("strict"), bool) else None})
        elif kind == "custom":
            name, params, desc = _custom(t, where)
            add(name, params, desc, ClientTool("custom", name), where)
            echo.append({k: v for k, v in t.items() if k in ("type", "name", "description", "format")})
        elif kind == "namespace":
            ns, inner = _tool_name(t, where), t.get("tools")
            if not isinstance(inner, list):
                raise _namespace_tools(where, inner)
            ns_desc = str_or(t.get("description"))
            for j, sub in enumerate(inner):
                swhere = f"{where}.tools[{j}]"
                if not isinstance(sub, dict):
                    raise wrong_type(swhere, "an object", sub)
                if sub.get("type", "function") != "function":
                    dropped.add(str(sub.get("type")))
                    continue
                name, params, desc = _function(sub, swhere)
                full_desc = f"{ns_desc}\n\n{desc}" if ns_desc and desc else (desc or ns_desc or None)
                add(flat_name(ns, name), params, full_desc, ClientTool("function", name, ns), swhere)
            echo.append(t)
        elif isinstance(kind, str) and kind:
            dropped.add(kind)  # hosted: the backend cannot run it
        elif kind is None:
            raise missing_parameter(f"{where}.type")
        elif isinstance(kind, str):
            raise invalid(f"{where} needs a non-empty string 'type'.", f"{where}.type", "invalid_value")
        else:
            raise wrong_type(f"{where}.type", "a string", kind)
    return chat, echo, client


def _namespace_tools(where: str, inner: object) -> ApiError:
    """A namespace's `tools` missing, or not a list."""
    if inner is None:
        return missing_parameter(f"{where}.tools")
    return wrong_type(f"{where}.tools", "an array", inner)


def _backend_name(ref: dict[str, Any], client: dict[str, ClientTool]) -> str | None:
    """The backend name of a tool a tool_choice names, or None when it names a tool the backend does not have."""
    name = ref.get("name")
    if not isinstance(name, str):
        return None
    namespace = ref.get("namespace")
    full = flat_name(namespace if isinstance(namespace, str) else None, name)
    return full if full in client else None


def _tool_choice(value: Any, declared: _Tools, dropped: Dropped) -> tuple[Any, Any, list[dict[str, Any]]]:
    """(chat tool_choice, the echoed tool_choice, the tools to send). One forcing a hosted tool (naming it;
    `required` when every tool declared is one, or allowed_tools `required` allowing only such) goes with the tools
    it forces, reported as a dropped `tool_choice`: the model chooses among the tools left (`auto`)."""
    tools, client = declared.chat, declared.client
    if value is None:
        return None, "auto", tools
    if value in _TOOL_CHOICES:
        if value == "required" and not tools:
            if declared.dropped:
                dropped.add("tool_choice")
                return None, value, tools
            raise invalid("tool_choice 'required' needs 'tools'.", "tool_choice", "invalid_value")
        return value, value, tools
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("function", "custom"):
        if value.get("name") is None:
            raise missing_parameter("tool_choice.name")
        name = _backend_name(value, client)
        if name is None:
            raise invalid(f"A {kind} tool_choice needs the 'name' of a declared {kind} tool.", "tool_choice",
                          "invalid_value")
        return {"type": "function", "function": {"name": name}}, value, tools
    if kind == "allowed_tools":
        mode, allowed = value.get("mode", "auto"), value.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise invalid("An allowed_tools tool_choice needs 'mode' ('auto' or 'required') and a list 'tools'.",
                          "tool_choice", "invalid_value")
        names = {n for ref in allowed if isinstance(ref, dict) for n in [_backend_name(ref, client)] if n}
        kept = [t for t in tools if t["function"]["name"] in names]
        if mode == "required" and not kept and any(isinstance(ref, dict) and ref.get("type") not in (
                "function", "custom") for ref in allowed):
            dropped.add("tool_choice")  # it allows hosted tools only
            return None, value, kept
        if mode == "required" and not kept:
            raise invalid("tool_choice allowed_tools 'required' allows none of the declared tools.", "tool_choice",
                          "invalid_value")
        return (mode if kept else None), value, kept
    if isinstance(kind, str) and kind:
        dropped.add("tool_choice")
        return "auto", value, tools  # a hosted tool, dropped with the tools: the model chooses among the rest
    raise invalid("'tool_choice' must be 'auto', 'none', 'required' or an object naming a tool.", "tool_choice",
                  "invalid_value")


def _text_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format` (None: plain text); a 400 names the field at fault, as OpenAI
    names it (`text.format.name`, not `text`)."""
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise wrong_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind is None:
        raise missing_parameter("text.format.type")
    if not isinstance(kind, str):
        raise wrong_type("text.format.type", "a string", kind)
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid(f"Invalid value: {kind[:40]!r}. Supported values are: 'text', 'json_object' and "
                      "'json_schema'.", "text.format.type", "invalid_value")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    _format_field(fmt, "name", str, "a string")
    if not TOOL_NAME.fullmatch(fmt["name"]):  # (OpenAI's rule for it; an upstream of its own would name
        # `response_format.json_schema.name`, a field the client never sent)
        raise invalid(f"Invalid 'text.format.name': {fmt['name'][:70]!r}. It must be 1 to 64 characters a-z, A-Z, "
                      "0-9, underscores and dashes.", "text.format.name", "invalid_value")
    _format_field(fmt, "schema", dict, "an object")
    _typed(fmt, "strict", bool, "a boolean", "text.format.strict")
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
    return {"type": "json_schema", "json_schema": schema}


def _format_field(fmt: dict[str, Any], name: str, kind: type, what: str) -> None:
    """A field a json_schema `text.format` requires: missing, or of another type, is a 400 naming it."""
    param = f"text.format.{name}"
    if fmt.get(name) is None:
        raise missing_parameter(param)
    _typed(fmt, name, kind, what, param)


# --- output ------------------------------------------------------------------------------------------------------

def object_json(arguments: object) -> str:
    """Arguments as a JSON object string: unchanged when they already are one."""
    if isinstance(arguments, str) and _is_object(arguments):
        return arguments
    return spaced_json(arguments_object(arguments))


def _message_item(text: str, status: str = "completed",
                  logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "message", "id": new_id("msg_"), "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [],
                         "logprobs": [] if logprobs is None else logprobs}]}


def _logprob(entry: object) -> dict[str, Any] | None:
    """A chat logprob entry (or one of its alternatives) as the Responses API has it: `token`, `bytes` (the
    token's UTF-8 when the upstream gave none), `logprob`; None when it is not one."""
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    value = entry.get("logprob")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    raw = entry.get("bytes")
    token: str = entry["token"]
    data = raw if isinstance(raw, list) and all(type(b) is int and 0 <= b <= 255 for b in raw) else \
        list(token.encode("utf-8", "surrogatepass"))
    return {"token": token, "bytes": data, "logprob": float(value)}


def logprobs_of(choice: object) -> list[dict[str, Any]]:
    """A chat choice's content logprobs (`choice.logprobs.content`) as Responses output_text logprobs, each with
    its `top_logprobs`."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    out: list[dict[str, Any]] = []
    for entry in content if isinstance(content, list) else []:
        made = _logprob(entry)
        if made is not None:
            tops = entry.get("top_logprobs")
            made["top_logprobs"] = [t for t in map(_logprob, tops if isinstance(tops, list) else []) if t]
            out.append(made)
    return out


def _choice0(doc: dict[str, Any]) -> object:
    choices = doc.get("choices")
    return choices[0] if isinstance(choices, list) and choices else None


def _refusal_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": new_id("msg_"), "status": status, "role": "assistant",
            "content": [{"type": "refusal", "refusal": text}]}


def _call_item(call_id: object, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    cid = call_id if isinstance(call_id, str) and call_id else new_id("call_")
    return {"type": "function_call", "id": new_id("fc_"), "call_id": cid, "name": name, "arguments": arguments,
            "status": status}


def client_item(item: dict[str, Any], tools: dict[str, ClientTool]) -> dict[str, Any]:
    """A backend `function_call` item as the client declared the tool: a namespaced function's call carries
    `namespace` and the function's own name; a custom tool's call is a `custom_tool_call` with its `input`."""
    if item.get("type") != "function_call":
        return item
    tool = tools.get(item["name"])
    if tool is None or (tool.kind == "function" and tool.namespace is None):
        return item
    if tool.kind == "function":
        return {**item, "name": tool.name, "namespace": tool.namespace}
    args = arguments_object(item["arguments"])
    given = args.get("input") if "input" in args or len(args) != 1 else next(iter(args.values()))
    text = given if isinstance(given, str) else spaced_json(given) if given is not None else ""
    return {"type": "custom_tool_call", "id": item["id"].replace("fc_", "ctc_", 1), "call_id": item["call_id"],
            "name": tool.name, "input": text, "status": item.get("status", "completed")}


def _reasoning_item(text: str, seal: bool = False, summary: bool = False) -> dict[str, Any]:
    """A reasoning item of `text`: its `content`; with `summary`, its `summary` too (what the request's
    `reasoning.summary` asks for: a local model writes none of its own, its reasoning is the best there is, and
    clients that show summaries alone, the AI SDK and Codex among them, read nothing else); with `seal`, its
    `encrypted_content`."""
    item: dict[str, Any] = {"type": "reasoning", "id": new_id("rs_"),
                            "summary": [_summary_part(text)] if summary else [],
                            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}
    if seal:
        item["encrypted_content"] = sealed(text)
    return item


def _summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def output_items(doc: dict[str, Any], tools: dict[str, ClientTool] | None = None, *, logprobs: bool = False,
                 seal: bool = False, summary: bool = False) -> tuple[list[dict[str, Any]], object]:
    """The output items of a completion document (calls as the client declared the tools; with `logprobs`, the
    text's logprobs as the upstream gave them; with `seal`, reasoning with its `encrypted_content`; with `summary`,
    reasoning with its text as its `summary` too), and its finish_reason."""
    done = Completion.parse(doc)
    items: list[dict[str, Any]] = []
    if done.reasoning:
        items.append(_reasoning_item(done.reasoning, seal, summary))
    if done.text.strip():
        items.append(_message_item(done.text, logprobs=logprobs_of(_choice0(doc)) if logprobs else None))
    if done.refusal:
        items.append(_refusal_item(done.refusal))
    for call in done.tool_calls:
        items.append(client_item(_output_call(call.id, call.name, call.arguments), tools or {}))
    return items, done.finish_reason


def _output_call(call_id: object, name: str, arguments: object) -> dict[str, Any]:
    """A completion's call as an output item: arguments that are a JSON object as they are; cut off, as the model
    left them (an upstream's, nothing repaired), `incomplete`; anything else made an object (`object_json`)."""
    if isinstance(arguments, str):
        try:
            whole = _is_object(arguments)
        except RecursionError:  # (nested too deep to tell here: looked at as before)
            whole = False
        if whole:  # never cut off, and `object_json` gives them back as they are: read once
            return _call_item(call_id, name, arguments)
        if cut_json(arguments):
            return _call_item(call_id, name, arguments, "incomplete")
    return _call_item(call_id, name, object_json(arguments))


def _is_object(text: str) -> bool:
    """Whether `text` is one JSON object (blanks around it allowed)."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def assistant_message(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The output as one chat assistant message (what a later `previous_response_id` continues from)."""
    text = "".join(p["text"] if p.get("type") == "output_text" else p["refusal"] for it in items
                   if it["type"] == "message" for p in it["content"] if p.get("type") in ("output_text", "refusal"))
    calls = [_call_of(it, "output") for it in items if it["type"] in ("function_call", "custom_tool_call")]
    if not text and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    reasoning = "".join(reasoning_text(it) for it in items if it["type"] == "reasoning")
    if reasoning:  # (as the same items sent back as input give it: see `reasoning_text`)
        msg["reasoning_content"] = reasoning
    return msg


def summarized_reply(items: list[dict[str, Any]]) -> bool:
    """Whether output `items` give their reasoning with a summary (see `Conversation`)."""
    return any(it["type"] == "reasoning" and _has_summary(it) for it in items)


@dataclass(frozen=True)
class Conversation:
    """A conversation in chat form, and where in it an assistant message's reasoning was the client's with a
    summary (as a reply asked for one gave it, or as the client sent it): the chat form keeps the reasoning's text
    alone, and its input items are listed as the client had them (`input_items`), the summary made again from
    the text rather than stored twice."""

    messages: list[dict[str, Any]]
    summarized: tuple[int, ...] = ()

    def then(self, messages: list[dict[str, Any]], summarized: tuple[int, ...] = ()) -> Conversation:
        """This conversation, `messages` after it (`summarized`: where in them)."""
        if not messages:
            return self
        at = len(self.messages)
        return Conversation([*self.messages, *messages], (*self.summarized, *(at + i for i in summarized)))

    def replied(self, items: list[dict[str, Any]]) -> Conversation:
        """This conversation with the reply of output `items` after it, if they make one (`assistant_message`)."""
        reply = assistant_message(items)
        if reply is None:
            return self
        return self.then([reply], (0,) if "reasoning_content" in reply and summarized_reply(items) else ())

    def input_items(self, resp_id: str) -> list[dict[str, Any]]:
        """`input_items_of` its messages, the reasoning with a summary where it had one."""
        return input_items_of(self.messages, resp_id, self.summarized)


def input_items_of(messages: list[dict[str, Any]], resp_id: str,
                   summarized: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Chat messages as Responses input items (what `GET /v1/responses/{id}/input_items` lists), each with the
    same id every time the list is read (a client pages through it by the ids: `after`, `before`); the reasoning
    of the messages at `summarized` with its text as its summary too (as the client had it)."""
    items: list[dict[str, Any]] = []
    reasoning = 0  # the reasoning items listed: the others' ids are those they had before reasoning was listed

    def stable_id(prefix: str) -> str:
        digest = hashlib.blake2b(f"{resp_id}:{len(items) - reasoning}".encode(), digest_size=12).hexdigest()
        return prefix + digest

    summed = set(summarized)
    for at, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        thought = m.get("reasoning_content") if role == "assistant" else None
        if isinstance(thought, str) and thought:  # the reasoning items that came before the message, as one
            digest = hashlib.blake2b(f"{resp_id}:{len(items) - reasoning}:reasoning".encode(), digest_size=12)
            items.append({**_reasoning_item(thought, summary=at in summed), "id": "rs_" + digest.hexdigest()})
            reasoning += 1
        if role == "tool":
            items.append({"type": "function_call_output", "id": stable_id("fco_"), "call_id": m.get("tool_call_id"),
                          "output": content if isinstance(content, str) else "", "status": "completed"})
            continue
        if content:
            parts = [_text_part(role, content)] if isinstance(content, str) else [
                _text_part(role, p["text"]) if p.get("type") == "text" else
                {"type": "input_image", "image_url": p.get("image_url", {}).get("url"), "detail": "auto"}
                for p in content if isinstance(p, dict)]
            items.append({"type": "message", "id": stable_id("msg_"), "role": role, "content": parts,
                          "status": "completed"})
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            item = _call_item(call.get("id"), str(fn.get("name") or ""), str(fn.get("arguments") or "{}"))
            items.append({**item, "id": stable_id("fc_")})
    return items


def _text_part(role: object, text: str) -> dict[str, Any]:
    """A listed message's text: the assistant's an `output_text` part as a Response has it (`annotations`, which
    the type requires, and `logprobs`), anyone else's an `input_text` part."""
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def usage_of(usage: object, output: list[dict[str, Any]]) -> dict[str, Any]:
    """A finished Response's `usage`: the upstream's; where it reported none (no `usage` member, a stream without
    the usage chunk), no input tokens and the output's estimated from its bytes as the Messages stream estimates
    them (`estimate_tokens`). Never null: OpenAI always sends one, and clients require it (the AI SDK refuses a
    Response without one)."""
    u = Usage.parse(usage) or Usage(completion_tokens=estimate_tokens(output_bytes(output)))
    return {"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": u.cached_tokens,
                                                                     "cache_write_tokens": u.cache_write_tokens},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def output_bytes(items: list[dict[str, Any]]) -> int:
    """The UTF-8 bytes of what the model wrote in `items`: text, refusals, reasoning, calls' arguments and input."""
    texts: list[object] = []
    for it in items:
        if it["type"] in ("message", "reasoning"):
            texts += [p.get("refusal" if p.get("type") == "refusal" else "text") for p in it.get("content") or ()]
        else:
            texts.append(it.get("input") if it["type"] == "custom_tool_call" else it.get("arguments"))
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts if isinstance(t, str))


def status_of(finish: Any) -> tuple[str, dict[str, str] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(req: ResponsesRequest, resp_id: str, created_at: int, *, status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None,
                    incomplete: dict[str, str] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": resp_id, "object": "response", "created_at": created_at, "status": status,
                           "error": error, "incomplete_details": incomplete, "model": req.model, "output": output,
                           **req.echo, "usage": usage}
    if status in ("completed", "incomplete", "failed"):
        doc["completed_at"] = int(time.time())
    return doc


def response_json(req: ResponsesRequest, doc: dict[str, Any]) -> bytes:
    """`jsoncodec.dumps(doc)` for a Response of `req`, its echoed tools (a coding agent's ~24 KB list) put in from
    their encoding kept with the list."""
    if req.echo_json is not None and doc.get("tools") is req.echo.get("tools"):
        data = spliced(doc, {"tools": req.echo_json})
        if data:
            return data
    return jsoncodec.dumps(doc)


# --- stream ------------------------------------------------------------------------------------------------------

def _delta_prefix(name: str) -> bytes:
    return f'event: {name}\ndata: {{"type":"{name}","sequence_number":'.encode()


_TEXT_DELTA = _delta_prefix("response.output_text.delta")
_REASONING_DELTA = _delta_prefix("response.reasoning_text.delta")
_SUMMARY_DELTA = _delta_prefix("response.reasoning_summary_text.delta")
_REFUSAL_DELTA = _delta_prefix("response.refusal.delta")
_ARGS_DELTA = _delta_prefix("response.function_call_arguments.delta")


class _Logprobs:
    """The output text's logprobs in a stream: those waiting for the next text delta (the logprobs of a chunk
    without text, or of whitespace held back), encoded once; and the bytes of those kept for the final object.
    Both are bounded by `max_bytes` of JSON: past it, the final object keeps no more (the kept are the text's
    first), and logprobs waiting that pass it alone (no text ever came for them) are dropped with every later
    one."""

    __slots__ = ("_encoded", "_kept", "_size", "max_bytes", "waiting")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.waiting: list[dict[str, Any]] | None = []  # None: past the bound, none are carried
        self._encoded: list[bytes] = []  # `waiting`'s JSON arrays, one per chunk
        self._size = 0  # their bytes
        self._kept = 0  # bytes kept for the final object (past `max_bytes`: full)

    def add(self, entries: list[dict[str, Any]]) -> None:
        if not entries or self.waiting is None:
            return
        data = jsoncodec.dumps(entries)
        self._size += len(data)
        if self._size > self.max_bytes:
            self.waiting, self._encoded, self._size = None, [], 0
            return
        self.waiting += entries
        self._encoded.append(data)

    def take(self) -> tuple[list[dict[str, Any]], bytes]:
        """The waiting entries (some: `waiting` is not empty), and their JSON array, for a delta; none wait after."""
        entries, pieces = self.waiting or [], self._encoded
        self.waiting, self._encoded, self._size = [], [], 0
        data = pieces[0] if len(pieces) == 1 else b"[" + b",".join(p[1:-1] for p in pieces) + b"]"
        return entries, data

    def keep(self, into: list[dict[str, Any]], entries: list[dict[str, Any]], data: bytes) -> None:
        """`entries` (encoded: `data`) added to the final object's part `into`, while the kept fit the bound."""
        if self._kept + len(data) > self.max_bytes:
            self._kept = self.max_bytes + 1  # full: none after either
            return
        self._kept += len(data)
        into += entries


class ResponsesStream(ChunkEncoder):
    """Chunk documents in, Responses SSE events out. One output item is open at a time; a new kind of delta
    closes it with its `.done` events. `response` holds the final Response after `finish()`/`error()`."""

    def __init__(self, req: ResponsesRequest, resp_id: str, max_chars: int = MAX_OUTPUT_CHARS) -> None:
        super().__init__()
        self.req = req
        self.max_chars = max_chars
        self.id = resp_id
        self.created_at = int(time.time())
        self.items: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None
        self._seq = 0
        self._unsent: list[bytes] = []  # the events numbered since the last call returned (see `_numbered`)
        self._started = False
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._tools: dict[int, dict[str, Any]] = {}
        self._args_mids: dict[int, bytes] = {}  # a call's argument delta event from its item id (b"": custom)
        self._open_mid: bytes | None = None  # the open item's text delta event from its item id
        self._summary_mid = b""  # the open reasoning item's summary delta event from its item id (when summarized)
        self._acc: list[str] = []  # the open item's text (joined when it closes: no quadratic appends)
        self._chars = 0
        self._sealed_bytes = 0  # the UTF-8 bytes of the open reasoning item's text (its sealed copy's base64)
        self._logprobs = _Logprobs(LOGPROBS_PER_CHAR * max_chars) if req.logprobs else None
        self._text_logprobs: list[dict[str, Any]] = []  # the open output_text part's (its `logprobs`)

    def feed(self, doc: dict[str, Any] | StreamChunk) -> list[bytes]:
        """`ChunkEncoder.feed`; the logprobs an upstream's chunk carries, when they were asked for, go with the
        next text delta (a chunk of logprobs alone, or with whitespace held back, waits for it)."""
        if self._logprobs is not None and type(doc) is not StreamChunk:
            assert isinstance(doc, dict)
            choices = doc.get("choices")
            for choice in choices if isinstance(choices, list) else []:
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._logprobs.add(logprobs_of(choice))
        out = super().feed(doc)
        self._unsent = []
        return out

    def _numbered(self, event: bytes) -> bytes:
        """`event`, one just given its sequence number, kept until the call that made it returns: a call that
        raises (a Response past its bound) has numbered events it never returned, and `error` sends them first
        (the client would see a hole in the numbers, an item opened and never closed, or no `response.created`)."""
        self._unsent.append(event)
        return event

    def _grow(self, text: str, copies: int = 1, more: int = 0) -> None:
        """The open item gets `text`; the output a stream holds for its final Response is bounded (`copies`: how
        many times the final Response holds it: twice for summarized reasoning, its content and its summary;
        `more`: what else it adds there, to a reasoning item's sealed copy)."""
        self._chars += copies * len(text) + more
        if self._chars > self.max_chars:
            raise self._too_large()
        self._acc.append(text)

    def _room(self, text: str, copies: int = 1, more: int = 0) -> None:
        """Raises `response_too_large` when a new item whose first piece is `text` (held `copies` times, and `more`)
        would pass the bound (with what closing the open call still writes of its arguments): checked before the
        open item's `.done` events and the new one's `output_item.added` are numbered, so that the error event
        follows the last event sent."""
        if self._chars + len(self._high) + copies * len(text) + more > self.max_chars:
            raise self._too_large()

    def _sealing(self, text: str, opening: bool) -> int:
        """What `text` adds to the open reasoning item's `encrypted_content` when the request asks for it (else 0):
        `sealed` writes its prefix and the base64 of all the item's text as UTF-8, 4 characters for each 3 bytes
        begun (the item's bytes so far are noted here)."""
        if not self.req.sealed_reasoning:
            return 0
        before = 0 if opening else self._sealed_bytes
        after = before + (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")))
        self._sealed_bytes = after
        return _sealed_chars(after) - (_sealed_chars(before) if not opening else 0)

    def _too_large(self) -> ApiError:
        return ApiError(502, f"The response passed {self.max_chars} characters, the most one streamed Response "
                        "holds for its final object.", "response_too_large")

    def _sync(self) -> None:
        """The open item's accumulated text written into it."""
        item = self._open
        if item is None or not self._acc:
            return
        text = "".join(self._acc)
        self._acc = [text]
        if item["type"] == "function_call":
            item["arguments"] = text
        else:
            part = item["content"][0]
            part["refusal" if part["type"] == "refusal" else "text"] = text

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        doc = {"type": name, "sequence_number": self._seq, **data}
        self._seq += 1
        return self._numbered(sse_event(name, doc))

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        return response_object(self.req, self.id, self.created_at, status=status, output=kw.pop("output", []),
                               usage=kw.pop("usage", None), **kw)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        snap = response_json(self.req, self._snapshot("in_progress"))  # once for both events
        return [self._response_event("response.created", snap), self._response_event("response.in_progress", snap)]

    def _response_event(self, name: str, snap: bytes) -> bytes:
        """`_event(name, {"response": the Response snap encodes})`, joined in one copy of the snapshot (a coding
        agent's is ~26 KB, its tools echoed; a chain of `+` copied it twice)."""
        head = jsoncodec.dumps({"type": name, "sequence_number": self._seq})[:-1]
        self._seq += 1
        return self._numbered(b"".join((b"event: ", name.encode(), b"\ndata: ", head, b',"response":', snap,
                                        b"}\n\n")))

    def _index(self) -> int:
        return len(self.items) - 1

    def _add(self, item: dict[str, Any], shown: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._open_mid = None
        self.items.append(item)
        self._open = item
        return [*out, self._event("response.output_item.added", {"output_index": self._index(), "item": shown})]

    def _close(self, status: str = "completed") -> list[bytes]:
        """The open item's closing events; `status`: its own ("incomplete": the last one of a cut answer)."""
        rest = self._args_rest()
        self._sync()
        self._acc = []
        item, self._open, self._open_call = self._open, None, None
        if item is None:
            return []
        idx = self.items.index(item)
        out = rest
        if item["type"] == "message":
            part = item["content"][0]
            if part["type"] == "refusal":
                out.append(self._event("response.refusal.done", {"item_id": item["id"], "output_index": idx,
                                                                 "content_index": 0, "refusal": part["refusal"]}))
            else:
                if self._logprobs is not None and self._logprobs.waiting:  # came after the last text: the part's
                    self._logprobs.keep(part["logprobs"], *self._logprobs.take())
                out.append(self._event("response.output_text.done", {"item_id": item["id"], "output_index": idx,
                                                                     "content_index": 0, "text": part["text"],
                                                                     "logprobs": part["logprobs"]}))
            out.append(self._event("response.content_part.done", {"item_id": item["id"], "output_index": idx,
                                                                  "content_index": 0, "part": part}))
        elif item["type"] == "reasoning":
            part = item["content"][0]
            if self.req.sealed_reasoning:
                item["encrypted_content"] = sealed(part["text"])
            out.append(self._event("response.reasoning_text.done", {"item_id": item["id"], "output_index": idx,
                                                                    "content_index": 0, "text": part["text"]}))
            out.append(self._event("response.content_part.done", {"item_id": item["id"], "output_index": idx,
                                                                  "content_index": 0, "part": part}))
            if self.req.summarize:
                out += self._summary_done(item, idx, part["text"], status)
        else:
            sent = item["arguments"]
            final = sent + "{}" if not sent.strip() else object_json(sent)  # (no arguments: an empty object)
            if final != sent and cut_json(sent):  # cut off: kept as the model left them (never completed: the
                final, status = sent, "incomplete"  # end of a command or a file it did not write), as OpenAI
                # answers a call cut by max_output_tokens
            if final != sent and final.startswith(sent) and not self._custom(item):
                # (arguments sent as "", null or blanks are "{}": the deltas add up to what `.done` says; others
                # the stream already sent, e.g. "null", are made an object there and cannot be)
                out.append(self._event("response.function_call_arguments.delta", {
                    "item_id": item["id"], "output_index": idx, "delta": final[len(sent):]}))
            item["arguments"] = final
            item["status"] = status
            item = self.items[idx] = client_item(item, self.req.client_tools)
            out.append(self._call_done(item, idx))
        item["status"] = status
        out.append(self._event("response.output_item.done", {"output_index": idx, "item": item}))
        return out

    def _summary_done(self, item: dict[str, Any], idx: int, text: str, status: str) -> list[bytes]:
        """A summarized reasoning item's summary, its text whole, and the events closing its one part (`status`
        on the part's `.done` when the item ends `incomplete`, as OpenAI marks a part generation stopped in)."""
        summary = _summary_part(text)
        item["summary"] = [summary]
        where = {"item_id": item["id"], "output_index": idx, "summary_index": 0}
        return [self._event("response.reasoning_summary_text.done", {**where, "text": text}),
                self._event("response.reasoning_summary_part.done", {
                    **where, "part": summary, **({"status": status} if status == "incomplete" else {})})]

    def _call_done(self, item: dict[str, Any], idx: int) -> bytes:
        if item["type"] == "custom_tool_call":
            return self._event("response.custom_tool_call_input.done", {
                "item_id": item["id"], "output_index": idx, "input": item["input"]})
        return self._event("response.function_call_arguments.done", {
            "item_id": item["id"], "output_index": idx, "name": item["name"], "arguments": item["arguments"]})

    def _shown_call(self, item: dict[str, Any]) -> dict[str, Any]:
        """The `output_item.added` view of a call: as the client declared the tool."""
        shown = client_item(dict(item), self.req.client_tools)
        return {**shown, "input": ""} if shown["type"] == "custom_tool_call" else shown

    def _reasoning(self, text: str) -> list[bytes]:
        self._pending_ws = ""
        out: list[bytes] = []
        summarize = self.req.summarize
        copies = 2 if summarize else 1  # (summarized, the final Response holds the text as content and summary)
        opening = self._open is None or self._open["type"] != "reasoning"
        sealing = self._sealing(text, opening)  # (sealed, the final Response holds the text once more, in base64)
        if opening:
            item = _reasoning_item("")
            out += self._opened(item, {"type": "reasoning_text", "text": ""}, text, copies, sealing)
            if summarize:  # its one summary part, beside the content's (its text set when it closes)
                where = {"item_id": item["id"], "output_index": self._index(), "summary_index": 0}
                out.append(self._event("response.reasoning_summary_part.added", {**where, "part": _summary_part("")}))
                self._summary_mid = (b',"item_id":' + jsoncodec.dumps(item["id"]) + b',"output_index":'
                                     + str(self._index()).encode() + b',"summary_index":0,"delta":')
        self._grow(text, copies, sealing)
        out.append(self._open_delta(_REASONING_DELTA, text, b"}\n\n"))
        if summarize:  # the same text as the summary's delta
            out.append(self._delta(_SUMMARY_DELTA, self._summary_mid, text, b"}\n\n"))
        return out

    def _held(self, text: str) -> str | None:
        """`ChunkEncoder._held`, the whitespace held counted toward the bound: it goes out with the text after it."""
        if self._chars + len(self._pending_ws) + len(text) > self.max_chars:
            raise self._too_large()
        return super()._held(text)

    def _open_part(self) -> str | None:
        """The type of the open message's part ("output_text" or "refusal"); None when no message is open."""
        item = self._open
        return item["content"][0]["type"] if item is not None and item["type"] == "message" else None

    def _opened(self, new: dict[str, Any], part: dict[str, Any], first: str, copies: int = 1,
                more: int = 0) -> list[bytes]:
        """A new item in progress (shown without its content), and its one part added, when `first`, the text
        it opens with, fits (`_room`)."""
        self._room(first, copies, more)
        new["status"] = "in_progress"
        return [*self._add(new, {**new, "content": []}), self._event("response.content_part.added", {
            "item_id": new["id"], "output_index": self._index(), "content_index": 0, "part": part})]

    def _refusal(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open_part() != "refusal":
            out += self._opened(_refusal_item(""), {"type": "refusal", "refusal": ""}, text)
        self._grow(text)
        out.append(self._open_delta(_REFUSAL_DELTA, text, b"}\n\n"))
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open_part() != "output_text":
            held = self._held(text)
            if held is None:
                return out
            text = held
            self._text_logprobs = []
            out += self._opened(_message_item("", logprobs=self._text_logprobs),
                                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}, text)
        self._grow(text)
        if self._logprobs is None or not self._logprobs.waiting:
            out.append(self._open_delta(_TEXT_DELTA, text, b',"logprobs":[]}\n\n'))
            return out
        sent, data = self._logprobs.take()
        self._logprobs.keep(self._text_logprobs, sent, data)
        out.append(self._open_delta(_TEXT_DELTA, text, b',"logprobs":' + data + b"}\n\n"))
        return out

    def _open_delta(self, prefix: bytes, text: str, tail: bytes) -> bytes:
        """The open item's delta event (`prefix`: its name up to the sequence number; `tail`: what follows the
        delta), as `_event` writes it, with the item's part encoded once per item."""
        item = self._open
        assert item is not None
        if self._open_mid is None:
            self._open_mid = (b',"item_id":' + jsoncodec.dumps(item["id"]) + b',"output_index":'
                              + str(self.items.index(item)).encode() + b',"content_index":0,"delta":')
        return self._delta(prefix, self._open_mid, text, tail)

    def _delta(self, prefix: bytes, mid: bytes, text: str, tail: bytes) -> bytes:
        """A delta event written as `_event` writes it: `prefix` (its name up to the sequence number), the next
        sequence number, `mid` (the item's fields up to `"delta":`, encoded once per item), `text`, `tail`."""
        seq = self._seq
        self._seq += 1
        return self._numbered(prefix + str(seq).encode() + mid + jsoncodec.dumps(text) + tail)

    def _call_start(self, call: ToolFragment) -> list[bytes]:
        self._room(call.arguments)  # the arguments its fragment carries follow its `output_item.added`
        item = self._tools[call.index] = _call_item(call.id, call.name, "", status="in_progress")
        return self._add(item, self._shown_call(item))

    def _call_args(self, index: int, text: str) -> list[bytes]:
        """`_event("response.function_call_arguments.delta", {"item_id": ..., "output_index": ..., "delta": text})`
        with the parts after the sequence number encoded once per call."""
        item = self._tools[index]
        self._grow(text)
        mid = self._args_mids.get(index)
        if mid is None:
            mid = self._args_mids[index] = b"" if self._custom(item) else (
                b',"item_id":' + jsoncodec.dumps(item["id"]) + b',"output_index":'
                + str(self.items.index(item)).encode() + b',"delta":')
        if not mid:
            return []  # a custom tool's input is sent whole when the call closes
        return [self._delta(_ARGS_DELTA, mid, text, b"}\n\n")]

    def _custom(self, item: dict[str, Any]) -> bool:
        tool = self.req.client_tools.get(item["name"])
        return tool is not None and tool.kind == "custom"

    def finish(self) -> list[bytes]:
        status, incomplete = status_of(self._finish)
        out = self._start() + self._nameless_calls() + self._close(status)
        self.response = self._snapshot(status, output=self.items, usage=usage_of(self._usage, self.items),
                                       incomplete=incomplete)
        name = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._response_event(name, response_json(self.req, self.response)))
        self._unsent = []
        return out

    def interrupted(self) -> dict[str, Any] | None:
        """The Response as far as it went, for a stream whose client left before it ended: `incomplete`, its open
        item closed `incomplete` (what waited to be written, and the events closing it, never reached the
        client and are dropped), a call cut off mid-arguments left out (the client never had it whole, and no
        result can follow it in a conversation continued from here); None when it never began (the client was
        never told its id) or already ended. Its usage, estimated where the upstream reported none, is of the
        output kept; one the upstream reported stays as it is (what the model generated, and was paid for)."""
        if not self._started or self.response is not None:
            return None
        self._high = ""
        self._close("incomplete")
        self._unsent = []
        output = [it for it in self.items if it["type"] in ("message", "reasoning") or it["status"] != "incomplete"]
        return self._snapshot("incomplete", output=output, usage=usage_of(self._usage, output))

    def error(self, err: ApiError) -> list[bytes]:
        """The events numbered by the call that failed (if one did), what waited, the open item closed
        (`incomplete`), then `error` and `response.failed`: every event from `_unsent`, in the order numbered."""
        self._start()
        self._released_before_error()  # (what it numbered before failing too is in `_unsent`)
        self._high = ""  # half of a pair never completed: not written past the bound
        self._close("incomplete")
        self._event("error", {"code": err.code, "message": err.message, "param": err.param})
        # a Response's error code is one of the API's own (the SDK's `ResponseError.code`); ours is the error
        # event's and the message's
        code = "rate_limit_exceeded" if err.status == 429 else err.code if err.code == CONTEXT_CODE else "server_error"
        self.response = self._snapshot("failed", output=self.items, usage=usage_of(self._usage, self.items),
                                       error={"code": code, "message": err.message})
        self._response_event("response.failed", response_json(self.req, self.response))
        out, self._unsent = self._unsent, []
        return out
