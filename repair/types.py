"""Public result types and the internal records passed between the parsers and the repair pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class WrittenFloat(float):
    """A JSON number with a fraction or an exponent, with the text the model wrote for it: given for a string
    parameter it becomes that text (1.10 stays "1.10", 1e3 stays "1e3"), not its float's repr ("1.1", "1000.0").
    As a number it is the float."""

    text: str

    def __new__(cls, text: str) -> WrittenFloat:
        value = super().__new__(cls, text)
        value.text = text
        return value


def json_object(value: object, default: dict[str, Any]) -> dict[str, Any]:
    """`value` when it is a JSON object, else `default` (calls and tools come as `{"function": {...}}` or bare)."""
    return value if isinstance(value, dict) else default


MAX_NAME_CHARS = 1024  # a streamed name grows no further: no declared tool's name is this long (OpenAI allows 64,
# Anthropic 128), so what an upstream sends past it names none either way, and is not kept


def name_with(name: str, piece: str) -> str:
    """A streamed call's name so far with one more delta's `function.name`: appended (some upstreams cut a name in
    pieces), unless the delta repeats the whole name so far (some resend it with every delta: MiniMax behind NVIDIA
    NIM, some gateways; appended, "read_fileread_file" named no tool and the call was lost). At most
    `MAX_NAME_CHARS` and a piece: a name that never ends holds no more."""
    return name if piece == name or len(name) > MAX_NAME_CHARS else name + piece


@dataclass
class RepairIssue:
    """One thing repaired, or one failure.

    Repairs: "closing_tag", "opening_tag", "single_quotes", "python_literal", "trailing_comma", "json_syntax",
    "coerced_type", "double_encoded", "parameters_key", "name_normalised", "think_block", "truncated",
    "merged_calls", "parallel_trimmed", "schema_invalid" (part of the tool's declared schema is not valid JSON
    Schema and was ignored), "format:<family>".
    Failures: "invalid_json", "unknown_name", "schema_mismatch", "truncated", "no_call" (tool_choice required or
    named, and no valid call), "not_allowed" (a call to a tool other than the one tool_choice names).
    `call_index` is the ordinal of the call attempt (in order of appearance: upstream structured calls first,
    then calls found in the text); it equals the index in `tool_calls` when every attempt was promoted.
    """

    kind: str
    detail: str = ""
    call_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "call_index": self.call_index}


@dataclass
class RepairResult:
    content: str | None
    tool_calls: list[dict[str, Any]]
    reasoning_content: str | None
    repairs: list[RepairIssue]
    errors: list[RepairIssue]
    format: str | None

    def message(self) -> dict[str, Any]:
        """The OpenAI assistant message."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                for c in self.tool_calls
            ]
        if self.reasoning_content:
            msg["reasoning_content"] = self.reasoning_content
        return msg

    @property
    def outcome(self) -> str:
        """"none" (no call attempted) | "valid" | "repaired" | "failed" (some attempt could not be made valid)."""
        if self.errors:
            return "failed"
        if self.repairs:
            return "repaired"
        if self.tool_calls:
            return "valid"
        return "none"


@dataclass
class ContentDelta:
    text: str


@dataclass
class ReasoningDelta:
    text: str


@dataclass
class ToolCallDelta:
    """One complete, validated call."""

    index: int
    id: str
    name: str
    arguments: str


StreamEvent = ContentDelta | ReasoningDelta | ToolCallDelta


# --- internal records --------------------------------------------------------------------------------------------

@dataclass
class RawCall:
    """A call attempt as found on the wire, before name resolution and schema alignment."""

    name: str | None
    arguments: Any = None          # decoded value (dict normally); a str here is a JSON-in-a-string candidate
    family: str | None = None
    repairs: list[RepairIssue] = field(default_factory=list)
    failure: RepairIssue | None = None
    text_args: bool = False        # values are untyped strings (XML-style formats), typed from the schema
    wire_args: str | None = None   # undecoded arguments text (upstream structured calls)
    call_id: str | None = None     # upstream id, kept
    in_think: bool = False
    data_like: bool = False        # an object naming a tool with other members and no arguments (`formats.common`)


@dataclass
class Segment:
    """A span of the text recognised as markup.

    kind "calls": call markup (removed from content when a call in it is kept, else left verbatim);
    "reasoning" / "content": text of a channel whose markup is always removed;
    "think": a <think> block; `inner` holds its text and call segments.
    """

    start: int
    end: int
    kind: str
    family: str | None = None
    calls: list[RawCall] = field(default_factory=list)
    text: str = ""
    inner: list[str | Segment] = field(default_factory=list)


@dataclass
class Parsed:
    """What a format handler recognised at a position: segments covering [start, end)."""

    end: int
    segments: list[Segment]
