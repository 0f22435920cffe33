"""The OpenAI Responses API in front of every backend.

`parse_request` validates a Responses request and translates its `input` items to chat messages; `build_chat`
adds the instructions and the stored history of `previous_response_id`; `output_items` and `response_object`
turn a completion document into a Response; `ResponsesStream` turns chunk documents into the Responses SSE
events, each with its `sequence_number`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError
from .common import (
    MAX_ID_CHARS,
    ToolFragment,
    arguments_object,
    check_int,
    check_number,
    check_type,
    chunk_parts,
    invalid,
    new_id,
    sse_event,
)

_ROLES = ("user", "assistant", "system", "developer")
_TOOL_CHOICES = ("auto", "none", "required")


@dataclass
class ResponsesRequest:
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    input_messages: list[dict[str, Any]]  # this request's input as chat messages
    params: dict[str, Any]  # chat body fields other than model/messages/stream
    echo: dict[str, Any] = field(default_factory=dict)  # request fields a Response object repeats


def parse_request(body: dict[str, Any]) -> ResponsesRequest:
    model = check_type(body, "model", str, "a string", required=True)
    if not model:
        raise invalid("'model' must be a non-empty string.", "model", "missing_field")
    for unsupported in ("conversation", "prompt"):
        if body.get(unsupported) is not None:
            raise invalid(f"'{unsupported}' is not supported; continue a conversation with 'previous_response_id'.",
                          unsupported, "unsupported_parameter")
    if check_type(body, "background", bool, "a boolean"):
        raise invalid("'background' responses are not supported.", "background", "unsupported_parameter")
    stream = check_type(body, "stream", bool, "a boolean") or False
    store = check_type(body, "store", bool, "a boolean")
    previous = check_type(body, "previous_response_id", str, "a string") or None
    if previous is not None and len(previous) > MAX_ID_CHARS:
        raise invalid(f"'previous_response_id' is {len(previous)} characters long; a response id has at most "
                      f"{MAX_ID_CHARS}.", "previous_response_id", "invalid_value")
    instructions = check_type(body, "instructions", str, "a string")
    max_output = check_int(body, "max_output_tokens", 1)
    temperature = check_number(body, "temperature", 0.0, 2.0)
    top_p = check_number(body, "top_p", 0.0, 1.0)
    parallel = check_type(body, "parallel_tool_calls", bool, "a boolean")
    metadata = check_type(body, "metadata", dict, "an object")
    user = check_type(body, "safety_identifier", str, "a string") or check_type(body, "user", str, "a string")

    raw_input = body.get("input")
    if raw_input is None:
        raise invalid("'input' is required.", "input", "missing_field")
    if isinstance(raw_input, str):
        messages: list[dict[str, Any]] = [{"role": "user", "content": raw_input}]
    elif isinstance(raw_input, list):
        messages = _input_items(raw_input)
    else:
        raise invalid("'input' must be a string or a list of input items.", "input", "invalid_type")
    if not messages and previous is None:
        raise invalid("'input' holds nothing to send to the model.", "input", "invalid_value")

    tools, echo_tools = _tools(body.get("tools"))
    params: dict[str, Any] = {}
    if tools:
        params["tools"] = tools
    choice, echo_choice = _tool_choice(body.get("tool_choice"), tools)
    if choice is not None:
        params["tool_choice"] = choice
    if parallel is not None:
        params["parallel_tool_calls"] = parallel
    for name, value in (("max_tokens", max_output), ("temperature", temperature), ("top_p", top_p),
                        ("user", user)):
        if value is not None:
            params[name] = value
    reasoning = check_type(body, "reasoning", dict, "an object")
    if reasoning is not None and isinstance(reasoning.get("effort"), str):
        params["reasoning_effort"] = reasoning["effort"]
    text = check_type(body, "text", dict, "an object")
    fmt = _text_format(text)
    if fmt is not None:
        params["response_format"] = fmt
    echo = {
        "instructions": instructions, "max_output_tokens": max_output, "temperature": temperature,
        "top_p": top_p, "parallel_tool_calls": parallel is not False, "tools": echo_tools,
        "tool_choice": echo_choice, "metadata": metadata or {}, "previous_response_id": previous,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")} if reasoning else None,
        "text": {"format": (text or {}).get("format") or {"type": "text"}},
        "truncation": body.get("truncation") if body.get("truncation") in ("auto", "disabled") else "disabled",
        "user": user, "store": store is not False,
    }
    return ResponsesRequest(model=model, stream=stream, store=store is not False, previous_response_id=previous,
                            instructions=instructions, input_messages=messages, params=params, echo=echo)


def build_chat(req: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat body: this request's instructions (never the stored ones), the stored history, the new input."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += history + req.input_messages
    chat = {"model": req.model, "messages": messages, **req.params}
    if req.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _parts_text(content: Any, where: str, role: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{where}.content must be a string or a list of content parts.", "input", "invalid_type")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        pwhere = f"{where}.content[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif ptype == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif ptype == "input_image" and role != "assistant":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise invalid(f"{pwhere}: input_image needs an 'image_url' (a URL or a data URL); file ids are "
                              "not supported.", "input", "unsupported_content")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise invalid(f"{pwhere}: content part type {ptype!r} is not supported here.", "input",
                          "unsupported_content")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for part in output:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise invalid(f"{where}.output: only text parts are supported in a function_call_output.",
                              "input", "unsupported_content")
        return "".join(texts)
    raise invalid(f"{where}.output must be a string.", "input", "invalid_type")


def _input_items(items: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object.", "input", "invalid_type")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise invalid(f"{where}.role must be one of {', '.join(_ROLES)}.", "input", "invalid_value")
            content = _parts_text(item.get("content"), where, role)
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise invalid(f"{where}: a function_call needs string 'call_id' and 'name'.", "input",
                              "invalid_type")
            if not isinstance(args, str):
                raise invalid(f"{where}.arguments must be a JSON string.", "input", "invalid_type")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args or "{}"}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and not isinstance(last.get("content"), list):
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{where}: a function_call_output needs a string 'call_id'.", "input", "invalid_type")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item.get("output"), where)})
        elif kind == "reasoning":
            continue  # earlier reasoning is not sent back to the model
        else:
            raise invalid(f"{where}: input item type {kind!r} is not supported.", "input", "unsupported_input_item")
    return out


def _tools(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise invalid("'tools' must be a list.", "tools", "invalid_type")
    chat: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    for i, t in enumerate(value):
        if not isinstance(t, dict):
            raise invalid(f"tools[{i}] must be an object.", "tools", "invalid_type")
        if t.get("type") != "function":
            raise invalid(f"tools[{i}]: tool type {t.get('type')!r} is not supported; only function tools are.",
                          "tools", "unsupported_tool")
        name, params, desc = t.get("name"), t.get("parameters"), t.get("description")
        if not isinstance(name, str) or not name:
            raise invalid(f"tools[{i}] needs a non-empty string 'name'.", "tools", "invalid_type")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise invalid(f"tools[{i}].parameters must be an object.", "tools", "invalid_type")
        if desc is not None and not isinstance(desc, str):
            raise invalid(f"tools[{i}].description must be a string.", "tools", "invalid_type")
        fn: dict[str, Any] = {"name": name, "parameters": params}
        if desc:
            fn["description"] = desc
        chat.append({"type": "function", "function": fn})
        echo.append({"type": "function", "name": name, "description": desc, "parameters": params,
                     "strict": t.get("strict") if isinstance(t.get("strict"), bool) else None})
    return chat, echo


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> tuple[Any, Any]:
    if value is None:
        return None, "auto"
    if value in _TOOL_CHOICES:
        if value == "required" and not tools:
            raise invalid("tool_choice 'required' needs 'tools'.", "tool_choice", "invalid_value")
        return value, value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or not any(t["function"]["name"] == name for t in tools):
            raise invalid("A function tool_choice needs the 'name' of a declared function tool.", "tool_choice",
                          "invalid_value")
        return {"type": "function", "function": {"name": name}}, {"type": "function", "name": name}
    raise invalid("'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}.",
                  "tool_choice", "invalid_value")


def _text_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise invalid("'text.format.type' must be 'text', 'json_object' or 'json_schema'.", "text", "invalid_value")
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
        raise invalid("A json_schema text format needs a 'name' and a 'schema' object.", "text", "invalid_value")
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
    return {"type": "json_schema", "json_schema": schema}


# --- output ------------------------------------------------------------------------------------------------------

def object_json(arguments: object) -> str:
    """Arguments as a JSON object string: unchanged when they already are one."""
    if isinstance(arguments, str):
        try:
            if isinstance(json.loads(arguments), dict):
                return arguments
        except ValueError:
            pass
    return json.dumps(arguments_object(arguments), ensure_ascii=False)


def _message_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": new_id("msg_"), "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(call_id: object, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    cid = call_id if isinstance(call_id, str) and call_id else new_id("call_")
    return {"type": "function_call", "id": new_id("fc_"), "call_id": cid, "name": name, "arguments": arguments,
            "status": status}


def _reasoning_item(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": new_id("rs_"), "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def output_items(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """The output items of a completion document, and its finish_reason."""
    choices = doc.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    items: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        items.append(_reasoning_item(reasoning))
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"),
                                                                                                     str))
    if isinstance(content, str) and content.strip():
        items.append(_message_item(content))
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            items.append(_call_item(call.get("id"), str(fn.get("name") or ""), object_json(fn.get("arguments"))))
    return items, choice.get("finish_reason")


def assistant_message(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The output as one chat assistant message (what a later `previous_response_id` continues from)."""
    text = "".join(p["text"] for it in items if it["type"] == "message" for p in it["content"]
                   if p.get("type") == "output_text")
    calls = [{"id": it["call_id"], "type": "function", "function": {"name": it["name"],
                                                                    "arguments": it["arguments"]}}
             for it in items if it["type"] == "function_call"]
    if not text and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def usage_of(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
    completion = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 0
    pd, cd = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    cached = pd.get("cached_tokens") if isinstance(pd, dict) else None
    reasoning = cd.get("reasoning_tokens") if isinstance(cd, dict) else None
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached if isinstance(cached, int) else 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning if isinstance(reasoning, int) else 0},
            "total_tokens": prompt + completion}


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


# --- stream ------------------------------------------------------------------------------------------------------

class ResponsesStream:
    """Chunk documents in, Responses SSE events out. One output item is open at a time; a new kind of delta
    closes it with its `.done` events. `response` holds the final Response after `finish()`/`error()`."""

    def __init__(self, req: ResponsesRequest, resp_id: str) -> None:
        self.req = req
        self.id = resp_id
        self.created_at = int(time.time())
        self.items: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None
        self._seq = 0
        self._started = False
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._open_tool: int | None = None
        self._tools: dict[int, dict[str, Any]] = {}
        self._pending_ws = ""
        self._finish: Any = None
        self._usage: Any = None

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        doc = {"type": name, "sequence_number": self._seq, **data}
        self._seq += 1
        return sse_event(name, doc)

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        return response_object(self.req, self.id, self.created_at, status=status, output=kw.pop("output", []),
                               usage=kw.pop("usage", None), **kw)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        snap = self._snapshot("in_progress")
        return [self._event("response.created", {"response": snap}),
                self._event("response.in_progress", {"response": snap})]

    def _index(self) -> int:
        return len(self.items) - 1

    def _add(self, item: dict[str, Any], shown: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.items.append(item)
        self._open = item
        return [*out, self._event("response.output_item.added", {"output_index": self._index(), "item": shown})]

    def _close(self) -> list[bytes]:
        item, self._open, self._open_tool = self._open, None, None
        if item is None:
            return []
        idx = self.items.index(item)
        out: list[bytes] = []
        if item["type"] == "message":
            part = item["content"][0]
            out.append(self._event("response.output_text.done", {"item_id": item["id"], "output_index": idx,
                                                                 "content_index": 0, "text": part["text"],
                                                                 "logprobs": []}))
            out.append(self._event("response.content_part.done", {"item_id": item["id"], "output_index": idx,
                                                                  "content_index": 0, "part": part}))
        elif item["type"] == "reasoning":
            part = item["content"][0]
            out.append(self._event("response.reasoning_text.done", {"item_id": item["id"], "output_index": idx,
                                                                    "content_index": 0, "text": part["text"]}))
            out.append(self._event("response.content_part.done", {"item_id": item["id"], "output_index": idx,
                                                                  "content_index": 0, "part": part}))
        else:
            item["arguments"] = object_json(item["arguments"])
            out.append(self._event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": idx, "name": item["name"], "arguments": item["arguments"]}))
        item["status"] = "completed"
        out.append(self._event("response.output_item.done", {"output_index": idx, "item": item}))
        return out

    def _reasoning(self, text: str) -> list[bytes]:
        self._pending_ws = ""
        out: list[bytes] = []
        if self._open is None or self._open["type"] != "reasoning":
            item = _reasoning_item("")
            item["status"] = "in_progress"
            out += self._add(item, {**item, "content": []})
            out.append(self._event("response.content_part.added", {
                "item_id": item["id"], "output_index": self._index(), "content_index": 0,
                "part": {"type": "reasoning_text", "text": ""}}))
        item = self._open
        assert item is not None
        item["content"][0]["text"] += text
        out.append(self._event("response.reasoning_text.delta", {"item_id": item["id"],
                                                                 "output_index": self.items.index(item),
                                                                 "content_index": 0, "delta": text}))
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open is None or self._open["type"] != "message":
            if not (self._pending_ws + text).strip():
                self._pending_ws += text
                return out
            text, self._pending_ws = self._pending_ws + text, ""
            item = _message_item("", status="in_progress")
            out += self._add(item, {**item, "content": []})
            out.append(self._event("response.content_part.added", {
                "item_id": item["id"], "output_index": self._index(), "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
        item = self._open
        assert item is not None
        item["content"][0]["text"] += text
        out.append(self._event("response.output_text.delta", {"item_id": item["id"],
                                                              "output_index": self.items.index(item),
                                                              "content_index": 0, "delta": text, "logprobs": []}))
        return out

    def _tool(self, call: ToolFragment) -> list[bytes]:
        index, args = call.index, call.arguments
        out: list[bytes] = []
        if index not in self._tools:
            self._pending_ws = ""
            item = _call_item(call.id, call.name, "", status="in_progress")
            out += self._add(item, dict(item))
            self._tools[index] = item
            self._open_tool = index
        elif self._open_tool != index:
            return out  # a fragment for an item already closed cannot be placed; repaired calls arrive whole
        item = self._tools[index]
        if args:
            item["arguments"] += args
            out.append(self._event("response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": self.items.index(item), "delta": args}))
        return out

    def feed(self, doc: dict[str, Any]) -> list[bytes]:
        out = self._start()
        if isinstance(doc.get("usage"), dict):
            self._usage = doc["usage"]
        for part in chunk_parts(doc):
            if part.reasoning:
                out += self._reasoning(part.reasoning)
            if part.content:
                out += self._text(part.content)
            for call in part.tool_calls:
                out += self._tool(call)
            if part.finish_reason:
                self._finish = part.finish_reason
        return out

    def finish(self) -> list[bytes]:
        out = self._start() + self._close()
        status, incomplete = status_of(self._finish)
        self.response = self._snapshot(status, output=self.items, usage=usage_of(self._usage), incomplete=incomplete)
        name = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(name, {"response": self.response}))
        return out

    def error(self, err: ApiError) -> list[bytes]:
        out = self._start()
        out.append(self._event("error", {"code": err.code, "message": err.message, "param": err.param}))
        self.response = self._snapshot("failed", output=self.items, usage=usage_of(self._usage),
                                       error={"code": err.code, "message": err.message})
        out.append(self._event("response.failed", {"response": self.response}))
        return out
