"""OpenAI `custom` (free-form) tools where a route or provider knows only functions.

A custom tool takes one free-form string, not JSON arguments. Where it meets something that knows only functions
(tool-call repair, an Anthropic provider, the Responses route's chat form) it is a function taking one string,
`input` (its grammar noted in the description), and a call to it is mapped back: `{"input": ...}` as the
custom call's `input`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

GRAMMAR_NOTE_MAX = 4000  # characters of a grammar's definition noted in the function's description
_NOTE = "Pass the whole free-form input as the string argument `input`."
_INPUT_SCHEMA: dict[str, Any] = {"type": "object",
                                 "properties": {"input": {"type": "string", "description": "The free-form input."}},
                                 "required": ["input"], "additionalProperties": False}
_encode_string = json.encoder.encode_basestring  # (ensure_ascii=False, as the arguments agentgate sends)


def input_schema() -> dict[str, Any]:
    """The parameters of a custom tool as a function (a copy: callers may hand it on)."""
    return json.loads(json.dumps(_INPUT_SCHEMA))  # type: ignore[no-any-return]


def function_description(desc: object, fmt: object) -> str:
    """A custom tool's description as its function's: how to pass the input, and its grammar when it has one
    (`format` as the chat API writes it, `{"type": "grammar", "grammar": {"syntax", "definition"}}`, or as the
    Responses API does, `{"type": "grammar", "syntax", "definition"}`)."""
    note = _NOTE
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        nested = fmt.get("grammar")
        grammar: dict[str, Any] = nested if isinstance(nested, dict) else fmt
        definition, syntax = grammar.get("definition"), grammar.get("syntax")
        if isinstance(definition, str):
            syntax = syntax if isinstance(syntax, str) and syntax else "grammar"
            note += f" `input` must follow this {syntax} grammar:\n{definition[:GRAMMAR_NOTE_MAX]}"
    return f"{desc}\n\n{note}" if isinstance(desc, str) and desc else note


def custom_of(tool: object) -> dict[str, Any] | None:
    """A chat tools entry's `custom` member when it declares a custom tool with a name, else None."""
    if not isinstance(tool, dict) or tool.get("type") != "custom":
        return None
    custom = tool.get("custom")
    if not isinstance(custom, dict) or not isinstance(custom.get("name"), str) or not custom["name"]:
        return None
    return custom


def custom_names(tools: object) -> frozenset[str]:
    """The names of the custom tools a chat tools list declares."""
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(c["name"] for t in tools if (c := custom_of(t)) is not None)


def as_function_tool(custom: Mapping[str, Any]) -> dict[str, Any]:
    """A chat custom tool's `custom` member as a chat function tool."""
    return {"type": "function", "function": {"name": custom["name"],
                                             "description": function_description(custom.get("description"),
                                                                                 custom.get("format")),
                                             "parameters": input_schema()}}


def functions_view(tools: list[Any]) -> list[Any]:
    """A chat tools list with each custom tool as a function of one string `input`."""
    return [as_function_tool(c) if (c := custom_of(t)) is not None else t for t in tools]


def input_arguments(text: str) -> str:
    """A custom call's input as the arguments of its function form."""
    return '{"input":' + _encode_string(text) + "}"


def input_of(arguments: object) -> str | None:
    """The `input` a custom tool's function-form arguments carry (a JSON text or an object); None when they hold
    none."""
    value = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    text = value.get("input") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def call_as_function(call: object) -> object:
    """A structured chat custom call as a function call whose arguments carry its input (anything else as it is)."""
    if not isinstance(call, dict) or call.get("type") != "custom" or not isinstance(call.get("custom"), dict):
        return call
    custom = call["custom"]
    text = custom.get("input")
    out = {k: v for k, v in call.items() if k != "custom"}
    out["type"] = "function"
    out["function"] = {"name": custom.get("name"), "arguments": input_arguments(text if isinstance(text, str) else "")}
    return out


def call_as_custom(call: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """A function call to a custom tool (one of `names`) as the custom call it stands for; any other as it is."""
    fn = call.get("function")
    if not isinstance(fn, dict) or fn.get("name") not in names:
        return call
    text = input_of(fn.get("arguments"))
    if text is None:
        return call
    out = {k: v for k, v in call.items() if k != "function"}
    out["type"] = "custom"
    out["custom"] = {"name": fn["name"], "input": text}
    return out


class StreamCalls:
    """A repaired chat stream's custom calls, for a request that declares custom tools: the upstream's custom call
    deltas (`{"index", "id", "type": "custom", "custom": {"name", "input"}}`, then `{"index", "custom": {"input"}}`
    pieces) in the function form the repairer reads (`upstream`, `close`), and the repairer's function-form calls
    to a custom tool out as custom call deltas (`downstream`, `flush`): the header as it comes, the input whole
    when the call ends (the next call begins, or the stream ends)."""

    __slots__ = ("_held", "_open", "_up", "names")

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self._up: set[int] = set()  # upstream call indexes that are custom calls
        self._open: int | None = None  # the upstream custom call whose arguments are not closed yet
        self._held: dict[int, list[str]] = {}  # a custom call's arguments as the repairer gave them, by its index

    def upstream(self, deltas: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for delta in deltas:
            index = delta.get("index", 0)
            if self._open is not None and index != self._open:
                out.append(self._closing(self._open))
                self._open = None
            custom = delta.get("custom")
            if not isinstance(custom, dict) or not isinstance(index, int):
                out.append(delta)
                continue
            text = custom.get("input")
            piece = _encode_string(text if isinstance(text, str) else "")
            if index not in self._up:
                self._up.add(index)
                head: dict[str, Any] = {k: v for k, v in delta.items() if k != "custom"}
                head["type"] = "function"
                head["function"] = {"name": custom.get("name"), "arguments": '{"input":' + piece[:-1]}
                out.append(head)
            elif len(piece) > 2:
                out.append({"index": index, "function": {"arguments": piece[1:-1]}})
            self._open = index
        return out

    def close(self) -> list[dict[str, Any]]:
        """The delta that ends the open custom call's arguments, at the stream's end."""
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [self._closing(index)]

    @staticmethod
    def _closing(index: int) -> dict[str, Any]:
        return {"index": index, "function": {"arguments": '"}'}}

    def downstream(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """A repaired stream's delta holding `tool_calls` as the deltas to send (none while a custom call's
        arguments are held)."""
        out: list[dict[str, Any]] = []
        kept: list[Any] = []
        for call in delta["tool_calls"]:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                kept.append(call)
                continue
            index = call.get("index", 0)
            if "name" in fn:  # a call begins: the ones held before it end
                if self._held:
                    out += self.flush()
                if fn["name"] in self.names:
                    args = fn.get("arguments")
                    if args:  # a whole call
                        made = call_as_custom(call, self.names)
                        kept.append(made)
                        continue
                    head = {k: v for k, v in call.items() if k != "function"}
                    head["type"] = "custom"
                    head["custom"] = {"name": fn["name"], "input": ""}
                    kept.append(head)
                    self._held[index] = []
                    continue
            elif index in self._held:
                if isinstance(fn.get("arguments"), str):
                    self._held[index].append(fn["arguments"])
                continue
            kept.append(call)
        if kept:
            out.append({**delta, "tool_calls": kept})
        return out

    def flush(self) -> list[dict[str, Any]]:
        """The held custom calls' inputs, as their calls end."""
        out = []
        for index, pieces in self._held.items():
            text = input_of("".join(pieces))
            if text:
                out.append({"tool_calls": [{"index": index, "custom": {"input": text}}]})
        self._held.clear()
        return out
