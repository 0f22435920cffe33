"""Validation of OpenAI request bodies into typed requests. Every problem is a 400 `WireError`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from engines.wire import WireError, check_type, invalid_type_message, json_type
from engines.worker.errors import bad_request
from engines.worker.sampling import SamplingParams
from repair import data_answer

MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024  # each: the stop matcher is built per request on the engine's one thread
GREEDY_BELOW = 1e-5  # a temperature under this samples as 0 does (1/T overflows float32 near 1e-38)
ONE_TOKEN_TOP_P = 1e-6  # a top_p under this keeps the most probable token only (0 in float32 past ~1e-45)
ROLES = ("system", "developer", "user", "assistant", "tool")
# OpenAI's ^[a-zA-Z0-9_-]{1,64}$ with Anthropic's length and the dots and slashes of MCP's tool-name rules (vLLM
# takes any name; MCP clients send such names to local servers): no space, bracket or quote a call format must carry
TOKEN_ID = re.compile(r"0|[1-9][0-9]*")  # a `logit_bias` key: a token id's decimal digits, no leading zero
TOOL_NAME = re.compile(r"[a-zA-Z0-9_./-]{1,128}")
FORMAT_NAME = re.compile(r"[a-zA-Z0-9_-]+")  # response_format.json_schema.name (OpenAI's rule)
FORMAT_NAME_MAX = 64
COMPLETION_MAX_TOKENS = 16  # /v1/completions without `max_tokens` (OpenAI's and vLLM's default; chat has none)
# OpenAI's levels (vLLM takes low, medium and high; clients send the newer ones to any server). Not acted on here:
# a model that reasons does so as its template and `chat_template_kwargs` say.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# vLLM's own sampling fields that this engine does not act on: asking for one (any value but null, false, 0 or an
# empty list, the defaults clients send unasked) is refused rather than answered as if it had been granted
VLLM_UNHONOURED = ("ignore_eos", "min_tokens", "stop_token_ids", "bad_words", "allowed_token_ids",
                   "include_stop_str_in_output", "use_beam_search", "prompt_logprobs")
VLLM_GUIDED = ("guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs")


@dataclass
class GenerationParams:
    max_tokens: int | None
    sampling: SamplingParams
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


@dataclass
class ChatRequest:
    model: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    parallel_tool_calls: bool
    template_kwargs: dict[str, Any]
    gen: GenerationParams
    response_format: dict[str, Any] | None = None  # a json_object / json_schema format (text: None)
    generation_prompt: bool = True  # `add_generation_prompt`: the template opens a new assistant turn
    continue_final: bool = False  # `continue_final_message`: the last (assistant) message is continued instead

    @property
    def data_answer(self) -> bool:
        """Whether the answer may be the JSON data asked for, not a call (`repair.data_answer`)."""
        return data_answer(self.response_format, self.tool_choice)


@dataclass
class CompletionRequest:
    model: str | None
    prompt: str | list[int]
    gen: GenerationParams


def _unsupported(message: str, param: str) -> WireError:
    return bad_request(message, param=param, code="unsupported_parameter")


def _is_number(v: Any) -> bool:
    """A JSON number that is finite. An integer always is, even one too big for a float (math.isfinite would
    raise OverflowError on it): the range checks compare it as an integer, exactly."""
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _number(body: dict[str, Any], name: str, default: float | None, lo: float, hi: float) -> float | None:
    v = body.get(name)
    if v is None:
        return default
    if not _is_number(v):
        raise bad_request(f"'{name}' must be a number", param=name, code="invalid_type")
    if not lo <= v <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}, got {v}", param=name)
    return float(v)


def _integer(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad_request(f"'{name}' must be an integer", param=name, code="invalid_type")
    if v < lo or (hi is not None and v > hi):
        bound = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise bad_request(f"'{name}' must be {bound}, got {v}", param=name)
    return v


def _boolean(body: dict[str, Any], name: str, default: bool) -> bool:
    v: bool | None = check_type(body, name, bool, "a boolean")
    return default if v is None else v


def _model(body: dict[str, Any]) -> str | None:
    model: str | None = check_type(body, "model", str, "a string")
    return model


def _stop(body: dict[str, Any]) -> list[str]:
    v = body.get("stop")
    if v is None:
        return []
    words = [v] if isinstance(v, str) else v
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise bad_request("'stop' must be a string or a list of strings", param="stop", code="invalid_type")
    if len(words) > MAX_STOP_STRINGS:
        raise bad_request(f"'stop' may hold at most {MAX_STOP_STRINGS} strings", param="stop")
    if any(w == "" for w in words):
        raise bad_request("'stop' strings must not be empty", param="stop")
    if any(len(w) > MAX_STOP_CHARS for w in words):
        raise bad_request(f"'stop' strings may be at most {MAX_STOP_CHARS} characters long", param="stop")
    return list(dict.fromkeys(words))


def _logit_bias(body: dict[str, Any], vocab_size: int) -> dict[int, float]:
    """Token id -> bias, as OpenAI takes them (decimal ids, biases from -100 to 100). Each key names a distinct token
    of the vocabulary, so an object with more keys than the vocabulary has tokens is refused before a key is read:
    no request makes the worker check, or bias, more than `vocab_size` entries."""
    v = body.get("logit_bias")
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise bad_request("'logit_bias' must be an object of token id -> bias", param="logit_bias",
                          code="invalid_type")
    if len(v) > vocab_size:
        raise bad_request(f"'logit_bias' may hold at most {vocab_size} token ids (the model's vocabulary size); it "
                          f"holds {len(v)}", param="logit_bias")
    out: dict[int, float] = {}
    for key, bias in v.items():
        tok = _token_id(key, vocab_size)
        if not _is_number(bias) or not -100 <= bias <= 100:
            raise bad_request("'logit_bias' values must be numbers between -100 and 100", param="logit_bias")
        out[tok] = float(bias)
    return out


def _token_id(key: str, vocab_size: int) -> int:
    """A `logit_bias` key as the token id it names: decimal digits without a leading zero (so that no two keys name
    the same token), in the vocabulary."""
    if not TOKEN_ID.fullmatch(key):  # int() would take "1_0", " 10", "+10", "010" and non-ASCII digits
        raise bad_request(f"'logit_bias' key {_shown(key)} is not a token id", param="logit_bias")
    # a longer key is past the vocabulary without reading it (int() of over 4300 digits is a ValueError)
    if len(key) > len(str(vocab_size)) or int(key) >= vocab_size:
        raise bad_request(f"'logit_bias' token id {_shown(key)} is outside the vocabulary (0..{vocab_size - 1})",
                          param="logit_bias")
    return int(key)


def _shown(key: str, limit: int = 24) -> str:
    """A key as an error message quotes it: its first `limit` characters."""
    return repr(key) if len(key) <= limit else repr(key[:limit]) + "…"


def _common(body: dict[str, Any], vocab_size: int, *, chat: bool) -> GenerationParams:
    if _integer(body, "n", 1) not in (None, 1):
        raise _unsupported("only n=1 is supported", "n")
    _logprobs(body, chat=chat)
    _vllm_extras(body)
    _response_format(body, chat=chat)
    check_type(body, "user", str, "a string")  # not used, but checked as OpenAI and vLLM check it
    max_tokens = _max_tokens(body, chat=chat)
    seed = _integer(body, "seed", -(2**63), 2**64 - 1)
    top_k = _integer(body, "top_k", -1)
    rep_ctx = _integer(body, "repetition_context_size", 1, 4096)
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0) or 0.0
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0) or 0.0
    if 0.0 < top_p < ONE_TOKEN_TOP_P:
        top_p, top_k = 1.0, 1
    sampling = SamplingParams(
        temperature=0.0 if temperature < GREEDY_BELOW else temperature,
        top_p=top_p,
        top_k=max(0, top_k or 0),
        min_p=_number(body, "min_p", 0.0, 0.0, 1.0) or 0.0,
        repetition_penalty=_number(body, "repetition_penalty", None, 0.01, 10.0),
        repetition_context_size=rep_ctx or 20,
        presence_penalty=_number(body, "presence_penalty", None, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", None, -2.0, 2.0),
        logit_bias=_logit_bias(body, vocab_size),
        seed=None if seed is None else seed % (2**63),
    )
    if sampling.top_p == 0.0 and sampling.temperature > 0:
        raise bad_request("'top_p' must be greater than 0", param="top_p")
    stream = _boolean(body, "stream", False)
    return GenerationParams(max_tokens, sampling, _stop(body), stream, _include_usage(body, stream))


def _vllm_extras(body: dict[str, Any]) -> None:
    """A 400 unsupported_parameter for a vLLM sampling field this engine does not act on, when it asks for
    something (see VLLM_UNHONOURED)."""
    for name in VLLM_UNHONOURED + VLLM_GUIDED:
        value = body.get(name)
        if value is None or value is False or value == [] or (type(value) is int and value == 0):
            continue
        hint = "; constrained output is asked with 'response_format' (chat)" if name in VLLM_GUIDED else ""
        raise _unsupported(f"'{name}' is not supported by this engine{hint}", name)


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    """`stream_options.include_usage`. The options belong to a stream: without one they are a 400, as OpenAI and
    vLLM answer. Their members are booleans (vLLM's `continuous_usage_stats`, OpenAI's `include_obfuscation` too)."""
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options", code="invalid_type")
    if not stream:
        raise bad_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                          param="stream_options")
    for member in ("include_usage", "continuous_usage_stats", "include_obfuscation"):
        value = opts.get(member)
        if value is not None and not isinstance(value, bool):
            raise bad_request(invalid_type_message(f"stream_options.{member}", "a boolean", value),
                              param=f"stream_options.{member}", code="invalid_type")
    if opts.get("continuous_usage_stats") is True:  # vLLM's usage on every chunk: this engine sends it at the end
        raise _unsupported("'stream_options.continuous_usage_stats' is not supported by this engine; usage comes in "
                           "the last chunk ('include_usage')", "stream_options.continuous_usage_stats")
    return opts.get("include_usage") is True


def _logprobs(body: dict[str, Any], *, chat: bool) -> None:
    """The logprob fields, checked as OpenAI bounds them (chat: `logprobs` a boolean, `top_logprobs` 0..20;
    completions: `logprobs` 0..5), then refused when they ask for any: this engine gives none."""
    if chat:
        wanted = _boolean(body, "logprobs", False)
        top = _integer(body, "top_logprobs", 0, 20)
        if wanted or top:
            raise _unsupported("logprobs are not supported by this engine", "logprobs" if wanted else "top_logprobs")
    elif body.get("logprobs") is not False and _integer(body, "logprobs", 0, 5):
        raise _unsupported("logprobs are not supported by this engine", "logprobs")


def _max_tokens(body: dict[str, Any], *, chat: bool) -> int | None:
    """The output limit (chat's `max_completion_tokens` first, as OpenAI reads it; both are checked)."""
    names = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
    limits = [_integer(body, name, 1) for name in names]
    return next((value for value in limits if value is not None), None)


def _response_format(body: dict[str, Any], *, chat: bool) -> dict[str, Any] | None:
    """None for text; a json_object or json_schema format (chat only) as given."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        raise bad_request("'response_format' must be an object with a 'type'", param="response_format",
                          code="invalid_type")
    kind = fmt["type"]
    if kind == "text":
        return None
    if not chat or kind not in ("json_object", "json_schema"):
        raise _unsupported(f"response_format type {kind!r} is not supported by this engine", "response_format")
    if kind == "json_schema":
        _check_json_schema(fmt.get("json_schema"))
    return fmt


def _check_json_schema(spec: Any) -> None:
    """A json_schema format's `json_schema`: an object with a `name` (OpenAI and vLLM require one) and, when given,
    a `schema` object, a boolean `strict` and a string `description`."""
    if not isinstance(spec, dict):
        raise bad_request("response_format json_schema needs a 'json_schema' object", param="response_format",
                          code="invalid_type")
    _check_format_name(spec)
    if "schema" in spec and not isinstance(spec["schema"], (dict, bool)):
        raise bad_request("'response_format.json_schema.schema' must be an object", param="response_format",
                          code="invalid_type")
    for key, kind, what in (("strict", bool, "a boolean"), ("description", str, "a string")):
        value = spec.get(key)
        if value is not None and not isinstance(value, kind):
            raise bad_request(f"Invalid type for 'response_format.json_schema.{key}': expected {what}, but got "
                              f"{json_type(value)} instead.", param="response_format", code="invalid_type")


def _check_format_name(spec: dict[str, Any]) -> None:
    """`response_format.json_schema.name` as OpenAI holds it (vLLM takes any string): a-z, A-Z, 0-9, `_` and `-`,
    at most 64 characters; each error names the field, as OpenAI's do."""
    where = "response_format.json_schema.name"
    if "name" not in spec:
        raise bad_request(f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
    name = spec["name"]
    if not isinstance(name, str):
        raise bad_request(f"Invalid type for '{where}': expected a string, but got {json_type(name)} instead.",
                          param=where, code="invalid_type")
    if len(name) > FORMAT_NAME_MAX:
        raise bad_request(f"Invalid '{where}': string too long. Expected a string with maximum length "
                          f"{FORMAT_NAME_MAX}, but got a string with length {len(name)} instead.", param=where,
                          code="string_above_max_length")
    if not FORMAT_NAME.fullmatch(name):
        raise bad_request(f"Invalid '{where}': string does not match pattern. Expected a string that matches the "
                          f"pattern '^{FORMAT_NAME.pattern}$'.", param=where)


def _content(value: Any, where: str, assistant: bool = False) -> str | None:
    """A message's content as text. An assistant's `refusal` parts (OpenAI's Chat API: an assistant's parts are
    text or refusal) are its text too: what the model said, as a Responses refusal part is read."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
                continue
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise bad_request(f"{where}: content parts must be objects with a 'type'", param="messages")
            if part["type"] in ("text", "input_text"):
                parts.append(_part_string(part, "text", f"{where}.content[{j}]"))
            elif assistant and part["type"] == "refusal":
                parts.append(_part_string(part, "refusal", f"{where}.content[{j}]"))
            else:
                raise _unsupported(f"{where}: content part type {part['type']!r} is not supported by this engine",
                                   "messages")
        return "".join(parts)
    allowed = "a string, null or a list of parts" if assistant else "a string or a list of parts"
    raise bad_request(f"{where}: 'content' must be {allowed}", param="messages", code="invalid_type")


def _part_string(part: dict[str, Any], key: str, where: str) -> str:
    """A content part's `text` (a text part) or `refusal` (a refusal part): a string, OpenAI's 400 naming it
    otherwise."""
    if key not in part:
        raise bad_request(f"Missing required parameter: '{where}.{key}'.", param="messages",
                          code="missing_required_parameter")
    value: str | None = _optional_string(part, key, where)
    if value is None:
        raise bad_request(f"Invalid type for '{where}.{key}': expected a string, but got null instead.",
                          param="messages", code="invalid_type")
    return value


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request(f"{where}: 'tool_calls' must be a list", param="messages", code="invalid_type")
    calls = []
    for j, call in enumerate(value):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"{where}.tool_calls[{j}]: needs a function with a string name", param="messages")
        args = fn.get("arguments", "{}")
        if args is None:
            args = "{}"
        if not isinstance(args, (str, dict)):
            raise bad_request(f"{where}.tool_calls[{j}]: 'arguments' must be a JSON string", param="messages")
        call_id = _optional_string(call, "id", f"{where}.tool_calls[{j}]")  # one left out is given one
        calls.append({"id": call_id or f"call_{j}", "type": "function",
                      "function": {"name": fn["name"], "arguments": args}})
    return calls


def _tool_call_id(message: dict[str, Any], where: str) -> str:
    """A tool message's `tool_call_id`, the call it answers: required, a non-empty string (OpenAI's 400s).

    It need not name a call of an earlier assistant turn. OpenAI refuses such a result; vLLM serves it, and so does
    the worker: agents that compact or trim a long conversation send them whenever the cut falls between a call and
    its result (the assistant turn summarised away, the result kept), and a local engine, often the fallback of such
    a client, answers from the text it is given rather than end the session with a 400 the client cannot fix."""
    value = message.get("tool_call_id")
    if value is None or value == "":
        raise bad_request(f"Missing required parameter: '{where}.tool_call_id'.", param="messages",
                          code="missing_required_parameter")
    if not isinstance(value, str):
        raise bad_request(f"Invalid type for '{where}.tool_call_id': expected a string, but got {json_type(value)} "
                          "instead.", param="messages", code="invalid_type")
    return value


def _optional_string(message: dict[str, Any], key: str, where: str) -> str | None:
    """`message[key]` when a string, None when absent or null; OpenAI's 400 for any other type."""
    value = message.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"Invalid type for '{where}.{key}': expected a string, but got {json_type(value)} instead.",
                          param="messages", code="invalid_type")
    return value


def _require_content(message: dict[str, Any], where: str) -> None:
    """A 400 for a user, system, developer or tool message without content, or with a null one, as OpenAI's."""
    if "content" not in message:
        raise bad_request(f"Missing required parameter: '{where}.content'.", param="messages",
                          code="missing_required_parameter")
    if message["content"] is None:
        raise bad_request(f"Invalid type for '{where}.content': expected one of a string or array of objects, but "
                          "got null instead.", param="messages", code="invalid_type")


def _require_assistant_content(message: dict[str, Any], where: str) -> None:
    """A 400 for an assistant message with no content and no calls: OpenAI requires its content unless it makes calls
    (it would be rendered as an empty turn). A refusal or the reasoning a model replied with (replayed in history)
    is what the model said, and is rendered: such a turn is not empty."""
    if message.get("content") is not None or message.get("tool_calls"):
        return
    if any(isinstance(message.get(key), str) and message[key] for key in ("refusal", "reasoning_content", "reasoning")):
        return
    raise bad_request(f"Invalid value for '{where}.content': expected a string, got null. An assistant message needs "
                      "'content' unless it has 'tool_calls'.", param="messages")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs: list[Any] = check_type(body, "messages", list, "an array", required=True)
    if not msgs:
        raise bad_request("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                          "array instead.", param="messages", code="empty_array")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(invalid_type_message(where, "an object", m), param="messages", code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}: 'role' must be one of {', '.join(ROLES)}", param="messages")
        if role != "assistant":
            _require_content(m, where)
        else:  # an assistant turn may hold only tool calls
            if m.get("function_call") is not None:
                raise _unsupported(f"{where}: 'function_call' is not supported; use 'tool_calls'", "messages")
            _require_assistant_content(m, where)
        msg: dict[str, Any] = {"role": "system" if role == "developer" else role,
                               "content": _content(m.get("content"), where, role == "assistant")}
        if role == "assistant":
            refusal = m.get("refusal")  # the refusal an answer carried instead of content, replayed in history
            if isinstance(refusal, str) and refusal and refusal not in (msg["content"] or ""):
                msg["content"] = f"{msg['content']}\n\n{refusal}" if msg["content"] else refusal
            if m.get("tool_calls"):
                msg["tool_calls"] = _tool_calls(m["tool_calls"], where)
            for key in ("reasoning_content", "reasoning"):
                if isinstance(m.get(key), str) and m[key]:
                    msg["reasoning_content"] = m[key]
                    break
        if role == "tool":
            msg["tool_call_id"] = _tool_call_id(m, where)
        name = _optional_string(m, "name", where)
        if name is not None:
            msg["name"] = name
        out.append(msg)
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list", param="tools", code="invalid_type")
    for i, t in enumerate(tools):
        _tool(i, t)
    _unique_names(tools)
    return tools or None


def _unique_names(tools: list[dict[str, Any]]) -> None:
    """A 400 for two tools of one name and different definitions (Anthropic's "Tool names must be unique"): the
    template would show the model both while the constraint and repair follow the first. The same tool listed twice
    is served, as OpenAI and vLLM serve it."""
    first: dict[str, int] = {}
    for i, t in enumerate(tools):
        name = t["function"]["name"]
        j = first.setdefault(name, i)
        if j != i and not _same(tools[j], t):
            raise bad_request(f"Tool names must be unique: tools[{j}] and tools[{i}] are both {name!r}, with different "
                              "definitions.", param="tools")


def _same(a: Any, b: Any) -> bool:
    """Whether two JSON values are equal; ones nested past Python's recursion limit are taken as different."""
    try:
        return bool(a == b)
    except RecursionError:
        return False


def _tool(i: int, t: Any) -> None:
    fn = t.get("function") if isinstance(t, dict) else None
    if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(fn, dict):
        raise bad_request(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}", param="tools")
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        raise bad_request(f"tools[{i}].function needs a non-empty string 'name'", param="tools")
    if not TOOL_NAME.fullmatch(fn["name"]):
        raise bad_request(f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that "
                          f"matches the pattern '^{TOOL_NAME.pattern}$'.", param="tools")
    if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):  # null: none, as in vLLM
        raise bad_request(f"tools[{i}].function.parameters must be an object", param="tools")
    for key, kind, what in (("description", str, "a string"), ("strict", bool, "a boolean")):
        value = fn.get(key)  # null is served as absent, as vLLM serves it
        if value is not None and not isinstance(value, kind):
            raise bad_request(f"Invalid type for 'tools[{i}].function.{key}': expected {what}, but got "
                              f"{json_type(value)} instead.", param="tools", code="invalid_type")


def _tool_choice(body: dict[str, Any], tools: list[dict[str, Any]] | None) -> Any:
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        if choice == "required" and not tools:
            raise bad_request("tool_choice 'required' needs 'tools'", param="tool_choice")
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if isinstance(name, str):
            if not any(t["function"]["name"] == name for t in tools or []):
                raise bad_request(f"tool_choice names {name!r}, which is not in 'tools'", param="tool_choice")
            return choice
    raise bad_request("'tool_choice' must be 'none', 'auto', 'required' or a function choice",
                      param="tool_choice")


def parse_chat(body: Any, vocab_size: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_type")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise _unsupported(f"'{legacy}' is not supported; use 'tools' and 'tool_choice'", legacy)
    messages = _messages(body)
    tools = _tools(body)
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise bad_request("'chat_template_kwargs' must be an object", param="chat_template_kwargs",
                          code="invalid_type")
    if "chat_template" in kwargs:  # the client's own Jinja: unbounded work while holding the tokenizer's lock
        raise _unsupported("'chat_template_kwargs' may not carry a 'chat_template'; the engine renders with the "
                           "model's own", "chat_template_kwargs")
    _modalities(body)
    _audio(body)
    _unread(body)
    generation, continued = _generation_flags(body, messages)
    return ChatRequest(
        model=_model(body),
        messages=messages,
        tools=tools,
        tool_choice=_tool_choice(body, tools),
        parallel_tool_calls=_boolean(body, "parallel_tool_calls", True),
        template_kwargs=dict(kwargs),
        gen=_common(body, vocab_size, chat=True),
        response_format=_response_format(body, chat=True),
        generation_prompt=generation,
        continue_final=continued,
    )


def _unread(body: dict[str, Any]) -> None:
    """The chat fields this engine does not act on, checked as OpenAI and vLLM check their types: `metadata` (an
    object; its contents are not read, and it needs no `store`, as in vLLM), `store` (nothing is stored), the string
    fields OpenAI's API has besides, and `reasoning_effort`."""
    check_type(body, "metadata", dict, "an object")
    check_type(body, "store", bool, "a boolean")
    for name in ("verbosity", "service_tier", "prompt_cache_key", "safety_identifier"):
        check_type(body, name, str, "a string")  # any string: their values grow, and vLLM ignores them
    _reasoning_effort(body)


def _reasoning_effort(body: dict[str, Any]) -> None:
    """`reasoning_effort`: null or one of OpenAI's levels, refused otherwise in OpenAI's words."""
    effort = check_type(body, "reasoning_effort", str, "a string")
    if effort is not None and effort not in REASONING_EFFORTS:
        supported = ", ".join(f"'{e}'" for e in REASONING_EFFORTS[:-1]) + f", and '{REASONING_EFFORTS[-1]}'"
        raise bad_request(f"Invalid value: {effort!r}. Supported values are: {supported}.", param="reasoning_effort")


MODALITIES = ("text", "audio")  # OpenAI's output modalities; this engine makes text


def _modalities(body: dict[str, Any]) -> None:
    """`modalities`: a list of OpenAI's output modalities; any but text is refused (the engine makes text only)."""
    value = body.get("modalities")
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise bad_request("'modalities' must be a list of strings", param="modalities", code="invalid_type")
    for m in value:
        if m not in MODALITIES:
            raise bad_request(f"'modalities' holds {m!r}; the modalities are {', '.join(MODALITIES)}",
                              param="modalities")
        if m != "text":
            raise _unsupported(f"this engine generates text only; 'modalities' may not hold {m!r}", "modalities")


def _audio(body: dict[str, Any]) -> None:
    """`audio`, OpenAI's settings of the audio output: refused when given, as audio in `modalities` is."""
    if check_type(body, "audio", dict, "an object") is not None:
        raise _unsupported("this engine generates text only; 'audio' output settings are not supported", "audio")


def _generation_flags(body: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[bool, bool]:
    """vLLM's `add_generation_prompt` (default true) and `continue_final_message` (default false), checked as vLLM
    checks them: both true is a 400, and `continue_final_message` alone leaves the generation prompt out. The
    message continued is the last one, the assistant's; its text is continued, so one with tool calls (which the
    template renders after the text) cannot be."""
    continued = _boolean(body, "continue_final_message", False)
    if not continued:
        return _boolean(body, "add_generation_prompt", True), False
    if _boolean(body, "add_generation_prompt", False):
        raise bad_request("Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                          param="continue_final_message")
    last = messages[-1]
    if last["role"] != "assistant":
        raise bad_request("'continue_final_message' continues the last message, which must be the assistant's; it "
                          f"is the {last['role']}'s", param="messages")
    if last.get("tool_calls"):
        raise bad_request("'continue_final_message' cannot continue an assistant message with 'tool_calls'; its text "
                          "is what is continued", param="messages")
    return False, True


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def _batch(prompt: Any) -> bool:
    """Whether `prompt` is OpenAI's batch of prompts: a list of several strings or of several token-id lists."""
    if not isinstance(prompt, list) or len(prompt) < 2:
        return False
    return all(isinstance(p, str) for p in prompt) or all(_token_ids(p) for p in prompt)


def parse_completion(body: Any, vocab_size: int) -> CompletionRequest:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_type")
    prompt: Any = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if _batch(prompt):
        raise _unsupported(f"'prompt' holds {len(prompt)} prompts; this engine completes one prompt a request",
                           "prompt")
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise bad_request("'prompt' must be a string, a list of token ids, or a one-element list of either",
                              param="prompt", code="invalid_type")
        if any(not 0 <= t < vocab_size for t in prompt):
            raise bad_request("'prompt' holds token ids outside the vocabulary", param="prompt")
    elif not isinstance(prompt, str) or not prompt:
        raise bad_request("'prompt' must be a non-empty string or a list of token ids", param="prompt",
                          code="invalid_type" if not isinstance(prompt, str) else "invalid_value")
    if body.get("echo"):
        raise _unsupported("'echo' is not supported by this engine", "echo")
    if body.get("suffix"):
        raise _unsupported("'suffix' is not supported by this engine", "suffix")
    if _integer(body, "best_of", 1) not in (None, 1):
        raise _unsupported("only best_of=1 is supported", "best_of")
    gen = _common(body, vocab_size, chat=False)
    if "max_tokens" not in body:  # an explicit null leaves it unlimited (to the end of the context), as in vLLM
        gen.max_tokens = COMPLETION_MAX_TOKENS
    return CompletionRequest(model=_model(body), prompt=prompt, gen=gen)
