"""Anthropic as an upstream: the internal chat body as a Messages request, and Messages responses and SSE
events back as OpenAI chat completion documents and chunks."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ..chat_types import content_text, int_or, member, obj
from ..custom_tools import custom_of, function_description, input_of, input_schema
from .common import arguments_object, check_number, data_url_parts, file_text, invalid, safe_id

DEFAULT_MAX_TOKENS = 4096  # a model not known to be a Claude model (an Anthropic-compatible server's)
CLAUDE_4_MAX_TOKENS = 32000  # a Claude 4 or later model the table does not know: the least any of them allows
# The most output each Claude model allows (Anthropic's models overview), by family and version: what a request
# setting no limit asks for, as OpenAI's APIs read an omitted limit ("up to the model's maximum").
MAX_OUTPUT_TOKENS = {
    ("opus", 3, 0): 4096, ("sonnet", 3, 0): 4096, ("haiku", 3, 0): 4096,
    ("sonnet", 3, 5): 8192, ("haiku", 3, 5): 8192, ("sonnet", 3, 7): 64000,
    ("opus", 4, 0): 32000, ("opus", 4, 1): 32000, ("opus", 4, 5): 64000, ("opus", 4, 6): 128000,
    ("sonnet", 4, 0): 64000, ("sonnet", 4, 5): 64000, ("sonnet", 4, 6): 64000,
    ("haiku", 4, 5): 64000,
}
# claude-opus-4-1-20250805, claude-sonnet-4-5, claude-3-7-sonnet-latest, anthropic/claude-sonnet-4.5, a Bedrock id
_CLAUDE = re.compile(r"claude-(?:(\d+)(?:[-.](\d)(?!\d))?-(opus|sonnet|haiku)"  # claude-3-5-haiku
                     r"|(opus|sonnet|haiku)-(\d+)(?:[-.](\d)(?!\d))?)(?!\d)")  # claude-haiku-4-5
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
_ERROR_CODES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}


def default_max_tokens(model: object) -> int:
    """The output limit a request that sets none is sent with: the model's maximum (`MAX_OUTPUT_TOKENS`), at least
    `CLAUDE_4_MAX_TOKENS` for another Claude 4 or later, else `DEFAULT_MAX_TOKENS`."""
    found = _CLAUDE.search(model.lower()) if isinstance(model, str) else None
    if found is None:
        return DEFAULT_MAX_TOKENS
    major, minor, family = (found[1], found[2], found[3]) if found[1] else (found[5], found[6], found[4])
    known = MAX_OUTPUT_TOKENS.get((family, int(major), int(minor or 0)))
    if known is not None:
        return known
    return CLAUDE_4_MAX_TOKENS if int(major) >= 4 else DEFAULT_MAX_TOKENS


def messages_request(body: dict[str, Any], max_output: int | None = None) -> dict[str, Any]:
    """The chat body as a Messages request; one that sets no output limit gets `max_output` (the model entry's
    `max_output_tokens`), else the model's maximum (`default_max_tokens`)."""
    _refuse_unanswerable(body)
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(body.get("messages") or []):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role in ("system", "developer"):
            text = content_text(m.get("content"))
            if text:
                system.append(text)
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": safe_id(m.get("tool_call_id"), ""),
                     "content": content_text(m.get("content"))}
            _append(messages, "user", [block])
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(m))
        else:
            _append(messages, "user", _user_blocks(m.get("content"), f"messages[{i}]"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or max_output or \
        default_max_tokens(body.get("model"))
    out: dict[str, Any] = {"model": body.get("model"), "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    # OpenAI's ranges hold for a chat client whatever the provider (a 400, as OpenAI answers, before Anthropic is
    # called; an integer past the float range too, never an OverflowError)
    top_p = check_number(body, "top_p", 0.0, 1.0)
    if top_p is not None:
        out["top_p"] = top_p
    if isinstance(body.get("top_k"), (int, float)) and not isinstance(body.get("top_k"), bool):
        out["top_k"] = body["top_k"]
    temperature = check_number(body, "temperature", 0.0, 2.0)
    if temperature is not None:
        out["temperature"] = min(float(temperature), 1.0)  # OpenAI's range is 0..2, Anthropic's 0..1
    tools = [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict)]
    tools = [t for t in tools if t is not None]
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
    if choice is not None:
        out["tool_choice"] = choice
    elif not tools and (named := _history_tools(messages)):
        out["tools"], out["tool_choice"] = named, {"type": "none"}
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    _thinking(body, out)
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("effort"), str):
        out["output_config"] = {"effort": config["effort"]}  # a Messages client's effort, kept for Anthropic
    _response_format(body.get("response_format"), out)
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _refuse_unanswerable(body: dict[str, Any]) -> None:
    """What Anthropic cannot give is a 400 naming it, never dropped: it answers with one choice (`n` other than
    1) and has no logprobs (`logprobs: true`, `top_logprobs`)."""
    n = body.get("n")
    if n is not None and (type(n) is not int or n != 1):
        raise invalid(f"'n' is {str(n)[:32]}; an Anthropic provider answers with one choice (n: 1).", "n",
                      "unsupported_parameter")
    if body.get("logprobs") not in (None, False):
        raise invalid("'logprobs' cannot be given by an Anthropic provider (it has no log probabilities).",
                      "logprobs", "unsupported_parameter")
    if body.get("top_logprobs") is not None:
        raise invalid("'top_logprobs' cannot be given by an Anthropic provider (it has no log probabilities).",
                      "top_logprobs", "unsupported_parameter")


JSON_OBJECT_SYSTEM = "Answer with one JSON object and nothing else."


def _response_format(fmt: Any, out: dict[str, Any]) -> None:
    """A chat `response_format` for Anthropic: a JSON schema as its structured output (`output_config.format`);
    `json_object`, which Messages has no form for, as a line of the system prompt."""
    if not isinstance(fmt, dict):
        return
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
    elif fmt.get("type") == "json_object":
        out["system"] = f"{out['system']}\n\n{JSON_OBJECT_SYSTEM}" if out.get("system") else JSON_OBJECT_SYSTEM


def _thinking(body: dict[str, Any], out: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        budget = THINKING_BUDGETS.get(str(body.get("reasoning_effort")))
        thinking = {"type": "enabled", "budget_tokens": budget} if budget else None
    if thinking is None or (thinking.get("type") != "disabled" and (_in_tool_loop(out["messages"])
                                                                    or _forces_tool_use(out))):
        return
    out["thinking"] = thinking
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and out["max_tokens"] <= budget:
            out["max_tokens"] = budget + out["max_tokens"]
        # sampling parameters other than the defaults are refused while thinking
        out.pop("temperature", None)
        out.pop("top_k", None)


def _forces_tool_use(out: dict[str, Any]) -> bool:
    """Whether the request's tool_choice forces a call (`any`, a named tool). Anthropic refuses thinking beside
    one ("Thinking may not be enabled when tool_choice forces tool use"): such a request is sent without thinking
    instead of being refused."""
    choice = out.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") in ("any", "tool")


def _in_tool_loop(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation continues an assistant turn that called tools. With thinking on, Anthropic wants
    that turn to start with its signed thinking block, which the chat form does not carry: such a request is sent
    without thinking instead of being refused."""
    return len(messages) >= 2 and messages[-2]["role"] == "assistant" and \
        any(b["type"] == "tool_use" for b in messages[-2]["content"]) and \
        any(b["type"] == "tool_result" for b in messages[-1]["content"])


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


_TEXT_EXTENSIONS = (".txt", ".md", ".json", ".csv", ".py")  # a file named so, with no media type, is read as text


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    """A chat `file` part as Anthropic reads it: a PDF as a `document` block (base64), a text file's content as
    text, anything else (other binaries, OpenAI file ids, which Anthropic cannot resolve) as a placeholder naming
    it, as the Messages and Responses routes read their files."""
    file = part.get("file")
    file = file if isinstance(file, dict) else {}
    data, file_id, name = file.get("file_data"), file.get("file_id"), file.get("filename")
    if not isinstance(data, str) and not isinstance(file_id, str):
        raise invalid(f"{where}: a 'file' part needs a 'file' object with 'file_data' or 'file_id'.", "messages",
                      "invalid_type")
    name = name if isinstance(name, str) else ""
    media, payload = data_url_parts(data) if isinstance(data, str) else ("", None)
    if isinstance(data, str) and not data.startswith("data:"):
        payload = data  # bare base64
    if not media and name.lower().endswith(".pdf"):
        media = "application/pdf"
    elif not media and name.lower().endswith(_TEXT_EXTENSIONS):
        media = "text/plain"
    if media == "application/pdf" and payload:
        block: dict[str, Any] = {"type": "document",
                                 "source": {"type": "base64", "media_type": media, "data": payload}}
        if name:
            block["title"] = name
        return block
    return {"type": "text", "text": file_text(name or str(file_id or ""), media, payload)}


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A user message's content as Messages blocks. A part Anthropic cannot take (audio, an unknown type) is a
    400 naming it, never dropped without a word."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict):
            continue
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            if isinstance(part.get("text"), str) and part["text"].strip():
                blocks.append({"type": "text", "text": part["text"]})
        elif ptype == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url:
                blocks.append(_image(url))
        elif ptype == "file":
            blocks.append(_file(part, f"{where}.content[{j}]"))
        else:
            raise invalid(f"{where}.content[{j}]: content part type {str(ptype)[:64]!r} cannot be sent to an "
                          "Anthropic provider.", "messages", "unsupported_content")
    return blocks


def _assistant_blocks(m: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _assistant_text(m)
    if text.strip():
        blocks.append({"type": "text", "text": text})
    for call in m.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        custom = call.get("custom") if isinstance(call, dict) and call.get("type") == "custom" else None
        if isinstance(custom, dict):  # a custom tool's call: its input as the one string argument it is declared with
            given = custom.get("input")
            blocks.append({"type": "tool_use", "id": safe_id(call.get("id"), ""), "name": str(custom.get("name") or ""),
                           "input": {"input": given if isinstance(given, str) else ""}})
        elif isinstance(fn, dict):
            blocks.append({"type": "tool_use", "id": safe_id(call.get("id"), ""), "name": str(fn.get("name") or ""),
                           "input": arguments_object(fn.get("arguments"))})
    return blocks


def _assistant_text(m: dict[str, Any]) -> str:
    """An assistant message's text with its refusal (a `refusal` part, or the `refusal` beside null content, as
    OpenAI answers and agents replay it): what the model said, sent to Anthropic as text."""
    content, refusal = m.get("content"), m.get("refusal")
    if isinstance(content, list):
        text = "".join(p["text"] if isinstance(p.get("text"), str) else p["refusal"] for p in content
                       if isinstance(p, dict) and (isinstance(p.get("text"), str) or
                                                   (p.get("type") == "refusal" and isinstance(p.get("refusal"), str))))
    else:
        text = content_text(content)
    if isinstance(refusal, str) and refusal.strip() and refusal not in text:
        text = f"{text}\n\n{refusal}" if text.strip() else refusal
    return text


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive turns of one role merge (tool results and the user text after them form one user turn);
    tool results come first in their turn."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        merged = messages[-1]["content"] + blocks
        if role == "user":
            merged = [b for b in merged if b["type"] == "tool_result"] + \
                     [b for b in merged if b["type"] != "tool_result"]
        messages[-1]["content"] = merged
    else:
        messages.append({"role": role, "content": blocks})


def _tool(t: dict[str, Any]) -> dict[str, Any] | None:
    custom = custom_of(t)
    if custom is not None:  # a free-form tool: a tool taking one string, `input` (its grammar noted), as Responses
        return {"name": custom["name"], "description": function_description(custom.get("description"),
                                                                            custom.get("format")),
                "input_schema": input_schema()}
    fn = t.get("function")
    if t.get("type", "function") != "function" or not isinstance(fn, dict) or not fn.get("name"):
        return None
    params = fn.get("parameters")
    schema = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    tool: dict[str, Any] = {"name": fn["name"], "input_schema": schema}
    if isinstance(fn.get("description"), str) and fn["description"]:
        tool["description"] = fn["description"]
    return tool


def _history_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools the history's tool_use blocks name (their names as sent, any input), for a request that holds
    tool_use or tool_result blocks and declares no tools: Anthropic refuses such a request ("Requests which include
    `tool_use` or `tool_result` blocks must define tools"), which is what a summary of an agent's conversation sends
    (Codex's compaction: its history, no tools). They go with `tool_choice: none`: the model cannot call a tool the
    client did not offer. Empty when the history calls no tool."""
    names = dict.fromkeys(b["name"] for m in messages for b in m["content"] if b["type"] == "tool_use" and b["name"])
    return [{"name": n, "input_schema": {"type": "object"}} for n in names]


def _tool_choice(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    elif isinstance(choice, dict) and isinstance(choice.get("custom"), dict):
        out = {"type": "tool", "name": choice["custom"].get("name")}
    elif choice == "auto" or (parallel is False and has_tools):
        out = {"type": "auto"}
    else:
        out = None
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    if out is not None and not has_tools:
        return None
    return out


# --- responses ---------------------------------------------------------------------------------------------------

def finish_reason(stop_reason: Any) -> str:
    return _FINISH.get(str(stop_reason), "stop")


def usage(value: object) -> dict[str, Any]:
    u = obj(value)

    def n(key: str) -> int:
        return int_or(u.get(key))

    cached, created = n("cache_read_input_tokens"), n("cache_creation_input_tokens")
    prompt = n("input_tokens") + cached + created
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": n("output_tokens"),
                           "total_tokens": prompt + n("output_tokens")}
    if cached or created:  # cache writes as OpenRouter reports them
        out["prompt_tokens_details"] = {"cached_tokens": cached, **({"cache_write_tokens": created} if created else {})}
    return out


def completion(msg: dict[str, Any], model: str | None = None, customs: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A Messages response as a chat completion document; a call to one of `customs` (the request's custom tools)
    as a custom call."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            args = member(block, "input")
            if block.get("name") in customs and isinstance(text := args.get("input"), str):
                calls.append({"id": str(block.get("id") or ""), "type": "custom",
                              "custom": {"name": block["name"], "input": text}})
                continue
            calls.append({"id": str(block.get("id") or ""), "type": "function",
                          "function": {"name": str(block.get("name") or ""),
                                       "arguments": json.dumps(args, ensure_ascii=False)}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason(msg.get("stop_reason"))}
    if msg.get("stop_reason") == "stop_sequence" and isinstance(msg.get("stop_sequence"), str):
        choice["stop_reason"] = msg["stop_sequence"]  # the matched stop string, as vLLM reports it
    return {"id": f"chatcmpl-{msg.get('id') or 'anthropic'}", "object": "chat.completion", "created": int(time.time()),
            "model": model or msg.get("model") or "", "choices": [choice], "usage": usage(msg.get("usage"))}


def error_body(status: int, body: bytes) -> bytes:
    """An Anthropic error body as an OpenAI-shaped one (the status stays as it was)."""
    message, etype = f"Anthropic answered {status}.", _ERROR_CODES.get(status, "api_error")
    try:
        doc = json.loads(body)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            etype = str(err.get("type") or etype)
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return json.dumps({"error": {"message": message, "type": etype, "param": None, "code": etype}}).encode()


class MessagesToChunks:
    """Messages SSE events (parsed) in, OpenAI chat chunk SSE bytes out."""

    def __init__(self, model: str | None, include_usage: bool, customs: frozenset[str] = frozenset()) -> None:
        self.model = model
        self.customs = customs  # the request's custom tools: their calls go out as custom calls, input whole
        # a custom tool's call held until its block ends: its id, name and input pieces (JSON of `{"input": ...}`)
        self._custom: dict[int, tuple[str, str, list[str]]] = {}
        self.include_usage = include_usage
        self.id = "chatcmpl-anthropic"
        self.created = int(time.time())
        self._tool_index: dict[int, int] = {}  # block index -> tool call index
        self._no_input: dict[int, str] = {}  # tool blocks no input piece has come for yet: the input their start
        # carried ("{}" from Anthropic itself; some compatible servers put the whole input there and stream none)
        self._usage: dict[str, Any] = {}
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        doc = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [choice]}
        return b"data: " + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    def event(self, doc: dict[str, Any]) -> bytes:
        kind = doc.get("type")
        if kind == "message_start":
            return self._message_start(member(doc, "message"))
        if kind == "content_block_start":
            return self._block_start(doc, member(doc, "content_block"))
        if kind == "content_block_delta":
            return self._block_delta(doc, member(doc, "delta"))
        if kind == "message_delta":
            return self._message_delta(doc)
        if kind == "message_stop":
            self.done = True
            return b"data: [DONE]\n\n"
        if kind == "error":
            self.done = True
            err = member(doc, "error")
            body = {"error": {"message": str(err.get("message") or "Anthropic stream error"),
                              "type": str(err.get("type") or "api_error"), "code": str(err.get("type") or "api_error")}}
            return b"data: " + json.dumps(body).encode() + b"\n\n"
        if kind == "content_block_stop":
            return self._block_stop(doc)
        return b""  # ping, unknown events

    def _message_start(self, msg: dict[str, Any]) -> bytes:
        self.id = f"chatcmpl-{msg.get('id') or 'anthropic'}"
        self.model = self.model or msg.get("model")
        self._usage.update(member(msg, "usage"))
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, doc: dict[str, Any], block: dict[str, Any]) -> bytes:
        if block.get("type") == "tool_use":
            index = len(self._tool_index)
            self._tool_index[int_or(doc.get("index"))] = index
            given = block.get("input")
            self._no_input[index] = json.dumps(given, ensure_ascii=False) if isinstance(given, dict) and given \
                else "{}"
            if block.get("name") in self.customs:  # held until its input is known (see `_custom_input`)
                self._custom[index] = (str(block.get("id") or ""), block["name"], [])
                return b""
            return self._chunk({"tool_calls": [{"index": index, "id": str(block.get("id") or ""), "type": "function",
                                                "function": {"name": str(block.get("name") or ""),
                                                             "arguments": ""}}]})
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            return self._chunk({"content": block["text"]})
        if block.get("type") == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            return self._chunk({"reasoning_content": block["thinking"]})
        return b""

    def _block_delta(self, doc: dict[str, Any], delta: dict[str, Any]) -> bytes:
        dtype = delta.get("type")
        if dtype == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            return self._chunk({"content": delta["text"]})
        if dtype == "thinking_delta" and isinstance(delta.get("thinking"), str) and delta["thinking"]:
            return self._chunk({"reasoning_content": delta["thinking"]})
        if dtype == "input_json_delta" and isinstance(delta.get("partial_json"), str) and delta["partial_json"]:
            index = self._tool_index.get(int_or(doc.get("index")))
            if index is not None:
                self._no_input.pop(index, None)
                if index in self._custom:
                    self._custom[index][2].append(delta["partial_json"])
                    return b""
                return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
        return b""

    def _block_stop(self, doc: dict[str, Any]) -> bytes:
        """A call no input piece came for gets the input its start carried: `{}` from Anthropic (it streams a call
        without input as one empty piece), as the whole answer has it."""
        index = self._tool_index.get(int_or(doc.get("index")))
        given = None if index is None else self._no_input.pop(index, None)
        if index is not None and index in self._custom:
            return self._custom_input(index, given)
        if given is None:
            return b""
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": given}}]})

    def _custom_input(self, index: int, given: str | None) -> bytes:
        """A call to a custom tool, whole, as its block ends (its input from its pieces, else what its start
        carried): a custom call when the input is one string `input`; else (Anthropic does not hold a model to a
        tool's input_schema; a call cut by `max_tokens`) the function call the whole answer gives, its arguments as
        they came."""
        call_id, name, pieces = self._custom.pop(index)
        args = "".join(pieces) if pieces else given or "{}"
        text = input_of(args)
        if text is not None:
            return self._chunk({"tool_calls": [{"index": index, "id": call_id, "type": "custom",
                                                "custom": {"name": name, "input": text}}]})
        return self._chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                            "function": {"name": name, "arguments": args}}]})

    def _message_delta(self, doc: dict[str, Any]) -> bytes:
        self._usage.update({k: v for k, v in member(doc, "usage").items() if v is not None})
        delta = member(doc, "delta")
        reason = delta.get("stop_reason")
        extra = {"stop_reason": delta["stop_sequence"]} if reason == "stop_sequence" and \
            isinstance(delta.get("stop_sequence"), str) else {}
        out = b"".join(self._custom_input(index, given) if index in self._custom else
                       self._chunk({"tool_calls": [{"index": index, "function": {"arguments": given}}]})
                       for index, given in self._no_input.items())  # blocks never stopped (Anthropic stops each)
        out += b"".join(self._custom_input(index, None) for index in list(self._custom))
        self._no_input.clear()
        out += self._chunk({}, finish_reason(reason), **extra)
        if self.include_usage:
            doc_usage = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model, "choices": [], "usage": usage(self._usage)}
            out += b"data: " + json.dumps(doc_usage, separators=(",", ":")).encode() + b"\n\n"
        return out
