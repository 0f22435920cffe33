"""OpenAI `custom` (free-form) tools where a route or provider knows only functions.

A custom tool takes one free-form string, not JSON arguments. Where it meets something that knows only functions
(tool-call repair, an Anthropic provider, a local engine, the Responses route's chat form) it is a function taking
one string, `input` (its grammar noted in the description), and a call to it is mapped back: `{"input": ...}` as
the custom call's `input`.
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


def choice_as_function(choice: object) -> object:
    """A chat `tool_choice` naming a custom tool (`{"type": "custom", "custom": {"name"}}`) as the function choice
    naming it; any other as it is."""
    if not isinstance(choice, dict) or choice.get("type") != "custom" or not isinstance(choice.get("custom"), dict):
        return choice
    return {"type": "function", "function": {"name": choice["custom"].get("name")}}


def _history_as_functions(messages: object) -> list[Any] | None:
    """The messages with each custom call in them as its function call (`call_as_function`); None when they hold
    none."""
    if not isinstance(messages, list):
        return None
    out: list[Any] | None = None
    for i, m in enumerate(messages):
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if isinstance(calls, list) and any(isinstance(c, dict) and c.get("type") == "custom" for c in calls):
            out = list(messages) if out is None else out
            out[i] = {**m, "tool_calls": [call_as_function(c) for c in calls]}
    return out


def functions_request(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A chat request body for a backend that knows only functions: its custom tools as functions of one string
    `input`, the custom calls in its history as function calls whose arguments carry their input, a custom
    `tool_choice` as the function's; None when it holds none of these (the body goes as it is)."""
    changed: dict[str, Any] = {}
    tools = body.get("tools")
    if isinstance(tools, list) and custom_names(tools):
        changed["tools"] = functions_view(tools)
    history = _history_as_functions(body.get("messages"))
    if history is not None:
        changed["messages"] = history
    choice = body.get("tool_choice")
    if (as_function := choice_as_function(choice)) is not choice:
        changed["tool_choice"] = as_function
    return {**body, **changed} if changed else None


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


class _Held:
    """A repaired stream's call to a custom tool held until its input is known: its header, the function-form
    arguments the repairer gave, and whether the header went out already."""

    __slots__ = ("head", "pieces", "sent")

    def __init__(self, head: dict[str, Any]) -> None:
        self.head = head
        self.pieces: list[str] = []
        self.sent = False

    def settled(self) -> tuple[bool, dict[str, Any] | None]:
        """Whether the call's arguments are whole, and then its delta to send: a custom call when they carry one
        string `input`, else the function call they are (as a whole answer leaves it); once its header went out,
        its input (nothing when empty, or when they carry none: what went out stays as it went)."""
        args = "".join(self.pieces)
        text = input_of(args)
        if text is None:
            try:
                json.loads(args)
            except (ValueError, RecursionError):
                return False, None
        if self.sent:
            return True, {"index": self.head["index"], "custom": {"input": text}} if text else None
        if text is not None:
            return True, {**self.head, "custom": {"name": self.head["custom"]["name"], "input": text}}
        return True, self.as_function()

    def as_function(self) -> dict[str, Any]:
        """The call as the function call it came as (its arguments as far as they came)."""
        head = {k: v for k, v in self.head.items() if k != "custom"}
        head["type"] = "function"
        head["function"] = {"name": self.head["custom"]["name"], "arguments": "".join(self.pieces)}
        return head


class StreamCalls:
    """A repaired chat stream's custom calls, for a request that declares custom tools: the upstream's custom call
    deltas (`{"index", "id", "type": "custom", "custom": {"name", "input"}}`, then `{"index", "custom": {"input"}}`
    pieces, by index or, without one, each after its call's header) in the function form the repairer reads
    (`upstream`, `close`: each call's input closed once it ends), and the repairer's function-form calls to a
    custom tool out as custom call deltas (`downstream`, `flush`): held until the call's arguments are whole, then
    the call at once (a call whose arguments never become whole, one cut by `max_tokens`, is not sent: its text
    stays the answer's content, as in the whole answer); a call held when the next call's header comes sends its
    header then, its input when whole."""

    __slots__ = ("_bare", "_held", "_ids", "_open", "names")

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names  # the names whose calls go out as custom calls: the declared custom tools, and the
        # names of the upstream's custom calls (as the whole answer maps them back)
        self._ids: dict[int, str] = {}  # upstream custom call index -> its id
        self._open: list[int] = []  # upstream custom call indexes whose arguments are not closed yet
        self._bare: tuple[str, str] | None = None  # an upstream custom call without index not closed yet: id, name
        self._held: dict[int, _Held] = {}  # the repairer's calls to a custom tool not sent whole yet, by index

    def upstream(self, deltas: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for delta in deltas:
            index = delta.get("index")
            custom = delta.get("custom")
            if not isinstance(custom, dict):
                if (self._bare is not None or self._open) and isinstance(fn := delta.get("function"), dict) and \
                        fn.get("name"):  # another call begins where a custom call was: that one ended
                    if not isinstance(index, int):
                        if self._bare is not None:
                            out.append(self._closing(None))
                            self._bare = None
                    elif index in self._open and delta.get("id") and delta.get("id") != self._ids.get(index):
                        self._open.remove(index)
                        out.append(self._closing(index))
                out.append(delta)
                continue
            name = custom.get("name")
            given_id = delta.get("id")
            cid = given_id if isinstance(given_id, str) else ""
            text = custom.get("input")
            piece = _encode_string(text if isinstance(text, str) else "")
            if isinstance(index, int):
                known = self._ids.get(index)
                starts = known is None or (bool(cid) and bool(known) and cid != known)
                if starts and known is not None and index in self._open:  # another call at the same index
                    self._open.remove(index)
                    out.append(self._closing(index))
            else:
                bare = self._bare
                starts = bool(name) and (bare is None or (bool(cid) and cid != bare[0]) or name != bare[1])
                if starts and bare is not None:
                    out.append(self._closing(None))
                    self._bare = None
                elif not starts and bare is None:
                    out.append(delta)
                    continue
            if starts:
                head: dict[str, Any] = {k: v for k, v in delta.items() if k != "custom"}
                head["type"] = "function"
                head["function"] = {"name": name, "arguments": '{"input":' + piece[:-1]}
                if isinstance(name, str) and name not in self.names:
                    self.names = self.names | {name}
                if isinstance(index, int):
                    self._ids[index] = cid
                    self._open.append(index)
                else:
                    self._bare = (cid, name if isinstance(name, str) else "")
                out.append(head)
            elif len(piece) > 2:
                more: dict[str, Any] = {"function": {"arguments": piece[1:-1]}}
                if isinstance(index, int):
                    more["index"] = index
                out.append(more)
        return out

    def close(self) -> list[dict[str, Any]]:
        """The deltas that end the open custom calls' arguments, at the stream's end."""
        out = [self._closing(index) for index in self._open]
        if self._bare is not None:
            out.append(self._closing(None))
        self._open, self._bare = [], None
        return out

    @staticmethod
    def _closing(index: int | None) -> dict[str, Any]:
        return {"function": {"arguments": '"}'}} if index is None else \
            {"index": index, "function": {"arguments": '"}'}}

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
            if "name" in fn:  # a call begins: the ones held before it go out as far as they are known
                if self._held:
                    out += self._ended()
                if fn["name"] in self.names:
                    args = fn.get("arguments")
                    if args:  # a whole call
                        kept.append(call_as_custom(call, self.names))
                        continue
                    head = {k: v for k, v in call.items() if k != "function"}
                    head["type"] = "custom"
                    head["custom"] = {"name": fn["name"], "input": ""}
                    self._held[index] = _Held(head)
                    continue
            elif index in self._held:
                if isinstance(fn.get("arguments"), str):
                    self._held[index].pieces.append(fn["arguments"])
                continue
            kept.append(call)
        if kept:
            out.append({**delta, "tool_calls": kept})
        return out

    def _ended(self) -> list[dict[str, Any]]:
        """The held calls as another call begins: whole ones at once, the others' headers (their input when whole,
        so that the calls go out in their order)."""
        out = []
        for index, held in list(self._held.items()):
            done, made = held.settled()
            if done:
                del self._held[index]
                if made is not None:
                    out.append({"tool_calls": [made]})
            elif not held.sent:
                out.append({"tool_calls": [held.head]})
                held.sent = True
        return out

    def flush(self, unfinished: bool = False) -> list[dict[str, Any]]:
        """The held custom calls, at the stream's end. One whose arguments are not whole is not sent, unless
        `unfinished` (a stream passed on unrepaired): then it goes as the function call it came as, if its header
        did not go out yet."""
        out = []
        for held in self._held.values():
            done, made = held.settled()
            if not done and unfinished and not held.sent:
                made = held.as_function()
            if made is not None:
                out.append({"tool_calls": [made]})
        self._held.clear()
        return out


def whole_as_custom(doc: dict[str, Any], names: frozenset[str]) -> bool:
    """A whole chat answer's function calls to the custom tools `names` (one string `input` each) as the custom
    calls they stand for, changed in place; whether any was."""
    changed = False
    choices = doc.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not isinstance(calls, list):
            continue
        mapped = [call_as_custom(c, names) if isinstance(c, dict) else c for c in calls]
        if any(a is not b for a, b in zip(mapped, calls, strict=True)):
            message["tool_calls"] = mapped
            changed = True
    return changed


_CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs"})


class ChunkCalls:
    """An unrepaired chat stream's chunk documents with their function calls to the custom tools `names` (one
    string `input` each, as a local engine makes them) as custom calls, each choice's through a `StreamCalls`: a
    call is held until its arguments are whole, and what a choice holds goes out before its finishing chunk (a
    call whose arguments never became whole as the function call it came as)."""

    __slots__ = ("_choices", "_envelope", "names")

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self._choices: dict[int, StreamCalls] = {}
        self._envelope: dict[str, Any] = {}  # the last document's members but its choices and usage

    def docs(self, docs: list[Any]) -> list[Any]:
        out: list[Any] = []
        for doc in docs:
            out += self._doc(doc)
        return out

    def rest(self) -> list[dict[str, Any]]:
        """What the choices still hold, as chunk documents (a stream that ended without a finish_reason)."""
        out = [{**self._envelope, "choices": [{"index": i, "delta": d, "finish_reason": None}]}
               for i, calls in self._choices.items() for d in calls.flush(unfinished=True)]
        self._choices.clear()
        return out

    def _doc(self, doc: Any) -> list[Any]:
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if not isinstance(choices, list):
            return [doc]
        before: list[dict[str, Any]] = []
        after: list[dict[str, Any]] = []
        for choice in choices:
            if isinstance(choice, dict):
                self._choice(choice, before, after)
        envelope = self._envelope = {k: v for k, v in doc.items() if k not in ("choices", "usage")}
        held = len(choices) == 1 and isinstance(choices[0], dict) and choices[0].keys() <= _CHOICE_KEYS \
            and choices[0].get("delta") == {} and not choices[0].get("finish_reason") \
            and choices[0].get("logprobs") is None and doc.keys() <= {*envelope, "choices"}
        return [*[{**envelope, "choices": [c]} for c in before], *([] if held else [doc]),
                *[{**envelope, "choices": [c]} for c in after]]

    def _choice(self, choice: dict[str, Any], before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
        """The choice's calls to a custom tool taken out of its delta: what goes out of them (as choices of their
        own) added to `before` the document (it finishes the choice) or `after` it."""
        delta = choice.get("delta")
        index = choice.get("index", 0)
        if not isinstance(delta, dict) or type(index) is not int:
            return
        made: list[dict[str, Any]] = []
        calls = self._choices.get(index)
        if isinstance(delta.get("tool_calls"), list):
            calls = self._choices.setdefault(index, StreamCalls(self.names))
            made = calls.downstream({"tool_calls": delta["tool_calls"]})
            choice["delta"] = {k: v for k, v in delta.items() if k != "tool_calls"}
        finishing = bool(choice.get("finish_reason"))
        if finishing and calls is not None:
            made += calls.flush(unfinished=True)
            del self._choices[index]
        if made and not finishing and not choice["delta"]:
            choice["delta"], made = made[0], made[1:]
        (before if finishing else after).extend({"index": index, "delta": d, "finish_reason": None} for d in made)
