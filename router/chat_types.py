"""The internal chat form, typed: frozen values read once from OpenAI chat-completions documents.

Between its parts the router speaks OpenAI's chat form (a request body, completion documents, chunk documents),
because that is also what most upstreams speak and what an OpenAI client gets byte for byte. Where a part needs to
*read* one of those documents (the pipeline feeding the repairer, a dialect encoding an answer for its client) it
parses it here, once, into these values; nothing downstream re-checks types with `isinstance(x.get(k), dict)`.

Parsing takes what is well formed and ignores the rest (an upstream's stray field never fails a request); it copies
no payload, so a chunk costs one small object per choice.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from repair import data_answer

if TYPE_CHECKING:
    from .knownhistory import Prefix

# --- typed views of untrusted JSON --------------------------------------------------------------------------------


def obj(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def member(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`doc[key]` when it is a JSON object, else an empty one."""
    return obj(doc.get(key))


def array(value: object) -> list[Any]:
    """`value` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def int_or(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def str_or(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def content_text(content: object) -> str:
    """A message's `content` as text: the string, or the joined `text` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def answer_parts(content: list[Any]) -> tuple[str, str]:
    """(text, thinking) of an answer's `content` given as a list of parts, as Mistral's reasoning models give it
    (whole and streamed): `{"type": "text", "text": ...}` parts are the text, `{"type": "thinking", "thinking":
    [{"type": "text", "text": ...}]}` parts (or a string) the reasoning."""
    text: list[str] = []
    thinking: list[str] = []
    for p in content:
        if not isinstance(p, dict):
            continue
        if p.get("type") == "thinking":
            inner = p.get("thinking")
            thinking.append(inner if isinstance(inner, str) else content_text(inner))
        elif isinstance(p.get("text"), str):
            text.append(p["text"])
    return "".join(text), "".join(thinking)


# --- the request ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the pipeline reads from a chat body (already checked by `dialects.openai_request`); the body itself
    still goes upstream as it is."""

    model: str
    stream: bool
    tools: list[Any]  # the body's own list (tool indexes are cached by its identity and content)
    tool_choice: str | dict[str, Any] | None
    parallel_tool_calls: bool
    data_answer: bool = False  # the answer is asked to be JSON data (see `asks_for_data`)
    taken_ids: Container[str] = ()  # the history's call ids (see `HistoryIds`)

    @classmethod
    def of(cls, body: Mapping[str, Any], taken_ids: Container[str] | None = None) -> ChatRequest:
        """`taken_ids`: the history's call ids when the caller has them (see `RequestContext.taken_ids`)."""
        choice = body.get("tool_choice")
        return cls(model=str_or(body.get("model")), stream=body.get("stream") is True, tools=array(body.get("tools")),
                   tool_choice=choice if isinstance(choice, (str, dict)) else None,
                   parallel_tool_calls=body.get("parallel_tool_calls", True) is not False,
                   data_answer=asks_for_data(body),
                   taken_ids=HistoryIds(body.get("messages")) if taken_ids is None else taken_ids)


class CallIds(Protocol):
    """The call ids a translating route's history holds, kept with its translation (see `TranslatedMessages`)."""

    def holds(self, call_id: object) -> bool | None:
        """Whether the history holds `call_id`; None when that is not known any more (it is then read)."""


class TranslatedMessages(list[Any]):
    """A chat history a translating route (Messages, Responses) built, with the call ids it holds (`ids`, None
    where the route does not know them) and whether a message of it may hold an image part (`images`): the route
    keeps both with its translation of the conversation, so a resend is not read again for them. Nothing modifies
    it once built (a changed history is a new list)."""

    __slots__ = ("ids", "images")

    def __init__(self, messages: Iterable[Any] = (), ids: CallIds | None = None, images: bool = True) -> None:
        super().__init__(messages)
        self.ids = ids
        self.images = images


class HistoryIds(Container[str]):
    """The tool-call ids a chat history holds (its assistant messages' calls, its tool results'), read once, when
    first asked: repair gives a new call another id when its upstream's is among them (a server numbering its calls
    per reply sends `call_0` on every turn, and agents refuse a call that reuses the id of one they ran). With
    `known`, the history's first messages are a known run's (`KnownHistory.prefix`): their ids are read once per
    conversation, not once per request; a translated history (`TranslatedMessages`) says itself which it holds."""

    __slots__ = ("_ids", "_known", "_messages", "_prefix")

    def __init__(self, messages: Any, known: Prefix | None = None) -> None:
        self._messages = messages
        self._known = known
        self._ids: set[str] | None = None
        self._prefix: frozenset[str] = frozenset()

    def __contains__(self, call_id: object) -> bool:
        if self._ids is None:
            if type(self._messages) is TranslatedMessages and self._messages.ids is not None:
                held = self._messages.ids.holds(call_id)
                if held is not None:
                    return held
            messages = self._messages if isinstance(self._messages, list) else []
            known = self._known
            if known is not None:
                self._prefix = known_ids(known)
                messages = messages[known.count:]
            self._ids = ids_of(messages)
        return call_id in self._ids or call_id in self._prefix


def ids_of(messages: list[Any]) -> set[str]:
    """The tool-call ids `messages` hold."""
    ids: set[str] = set()
    for m in messages:
        if not isinstance(m, dict):
            continue
        if isinstance(m.get("tool_call_id"), str):
            ids.add(m["tool_call_id"])
        for call in m.get("tool_calls") or () if isinstance(m.get("tool_calls"), list) else ():
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                ids.add(call["id"])
    return ids


def known_ids(known: Prefix) -> frozenset[str]:
    """The call ids of a known prefix's messages, read where its facts stop and kept with them."""
    facts = known.facts
    if facts.ids_count == known.count:
        return facts.ids
    if facts.ids_count > known.count:  # this history shares fewer of the run's messages than were read
        return frozenset(ids_of(known.values[:known.count]))
    ids = facts.ids | ids_of(known.values[facts.ids_count:known.count])
    facts.ids, facts.ids_count = ids, known.count
    return ids


def asks_for_data(body: Mapping[str, Any]) -> bool:
    """Whether the body asks for a JSON answer that may be no call (`repair.data_answer`)."""
    return data_answer(body.get("response_format"), body.get("tool_choice"))


# --- usage ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Usage:
    """An OpenAI `usage` object; counts the upstream left out (or sent as something else) are 0."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # prompt tokens written to a prompt cache (OpenRouter's `cache_write_tokens`)

    @classmethod
    def parse(cls, value: object) -> Usage | None:
        """None when `value` is not an object."""
        if not isinstance(value, dict):
            return None
        prompt = member(value, "prompt_tokens_details")
        return cls(int_or(value.get("prompt_tokens")), int_or(value.get("completion_tokens")),
                   int_or(prompt.get("cached_tokens")),
                   int_or(member(value, "completion_tokens_details").get("reasoning_tokens")),
                   int_or(prompt.get("cache_write_tokens")))


# --- streamed chunks --------------------------------------------------------------------------------------------
# Named tuples rather than frozen dataclasses: as immutable and as typed, and built per streamed chunk at a
# fraction of the cost (a frozen dataclass sets each field through object.__setattr__).

@dataclass(frozen=True, slots=True)
class ToolFragment:
    """One streamed tool-call delta: `index` says which call it continues; `arguments` is the new text."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""

    @classmethod
    def parse(cls, call: Mapping[str, Any]) -> ToolFragment:
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        index, call_id, args = call.get("index", 0), call.get("id"), fn.get("arguments")
        if isinstance(args, dict):  # sent as an object (some servers do, whole): the text it stands for
            args = json.dumps(args, ensure_ascii=False)
        return cls(index if isinstance(index, int) else 0, call_id if isinstance(call_id, str) else None,
                   str(fn.get("name") or ""), args if isinstance(args, str) else "")


class ChunkPart(NamedTuple):
    """What one chat-completion chunk carries for choice 0."""

    reasoning: str = ""
    content: str = ""
    tool_deltas: tuple[dict[str, Any], ...] = ()  # `delta.tool_calls` as sent (what the repairer assembles)
    finish_reason: str | None = None
    stop_reason: str | None = None  # which stop string matched, where the server says (`stop_hint`)
    refusal: str = ""  # OpenAI's `delta.refusal`: the model declined (passed on, never repaired)
    named_reasoning: bool = False  # the reasoning came as `reasoning` (OpenRouter, vLLM), not `reasoning_content`
    details: Any = None  # OpenRouter's `reasoning_details` as sent (a list of pieces: text, summaries, encrypted
    # signatures), None without
    audio: tuple[Any, ...] = ()  # `delta.audio` pieces as sent (an audio answer's id, transcript, data, expires_at)
    logprobs: Any = None  # the choice's `logprobs` as sent (`{"content": [...], "refusal": [...]}`), None without
    annotations: tuple[Any, ...] = ()  # `delta.annotations` as sent (a searching model's `url_citation`s)

    @property
    def tool_calls(self) -> tuple[ToolFragment, ...]:
        """`tool_deltas` parsed (only the encoders that show fragments one by one need them)."""
        return tuple([ToolFragment.parse(c) for c in self.tool_deltas]) if self.tool_deltas else ()


class Chunk(NamedTuple):
    """One chunk document: choice 0's parts (normally one) and its usage, when it carries some."""

    parts: tuple[ChunkPart, ...]
    usage: dict[str, Any] | None


_NO_PARTS: tuple[ChunkPart, ...] = ()


def stop_hint(choice: Mapping[str, Any]) -> str | None:
    """The stop string that ended a choice's text, where the server names it: vLLM's `stop_reason`, SGLang's
    `matched_stop` (either is a token id when a stop token ended it: no string then)."""
    hint = choice.get("stop_reason")
    if isinstance(hint, str):
        return hint
    hint = choice.get("matched_stop")
    return hint if isinstance(hint, str) else None


def _part(choice: dict[str, Any]) -> ChunkPart:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = {}
    reasoning = delta.get("reasoning_content")
    named = False
    if not reasoning:
        reasoning = delta.get("reasoning")
        named = reasoning is not None
    content = delta.get("content")
    if type(content) is list:
        content, thinking = answer_parts(content)
        reasoning = reasoning or thinking
    calls, audio, notes = delta.get("tool_calls"), delta.get("audio"), delta.get("annotations")
    finish, refusal = choice.get("finish_reason"), delta.get("refusal")
    return ChunkPart(reasoning if isinstance(reasoning, str) else "", content if isinstance(content, str) else "",
                     tuple([c for c in calls if isinstance(c, dict)]) if isinstance(calls, list) and calls else (),
                     finish if isinstance(finish, str) and finish else None,
                     stop_hint(choice), refusal if isinstance(refusal, str) else "",
                     named, delta.get("reasoning_details"), () if audio is None else (audio,),
                     choice.get("logprobs"), tuple(notes) if type(notes) is list else ())


def parse_chunk(doc: Mapping[str, Any]) -> Chunk:
    """Choice 0's parts and the usage of one chunk document (per streamed chunk: kept cheap)."""
    choices = doc.get("choices")
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        usage = None
    if isinstance(choices, list) and len(choices) == 1:  # the usual shape
        choice = choices[0]
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return Chunk((_part(choice),), usage)
        return Chunk(_NO_PARTS, usage)
    if not isinstance(choices, list):
        return Chunk(_NO_PARTS, usage)
    return Chunk(tuple([_part(c) for c in choices if isinstance(c, dict) and c.get("index", 0) == 0]), usage)


def chunk_parts(doc: Mapping[str, Any]) -> tuple[ChunkPart, ...]:
    """`parse_chunk(doc).parts` (for a reader that took the usage already), the usual shape without a `Chunk`."""
    choices = doc.get("choices")
    if type(choices) is list and len(choices) == 1 and type(choice := choices[0]) is dict \
            and choice.get("index", 0) == 0:
        return (_part(choice),)
    return parse_chunk(doc).parts


class ArgsPiece(NamedTuple):
    """An argument-only tool-call chunk, as the upstream reader hands it over: the piece `text` of the arguments of
    the call with index `call` (the chunk's one delta `{"index": call, "function": {"arguments": text}}`)."""

    call: int
    text: str

    @property
    def delta(self) -> dict[str, Any]:
        return {"index": self.call, "function": {"arguments": self.text}}


STREAM_CHUNK_END = b',"finish_reason":null}]}\n\n'


class StreamChunk(NamedTuple):
    """A chunk the pipeline made itself (a repaired stream's content, reasoning or call delta for choice 0, not yet
    finished), with its envelope already encoded: the OpenAI encoder writes `head`, the delta and
    `STREAM_CHUNK_END` without building the chunk document; the translating encoders read `part`."""

    head: bytes  # b'data: {"id":...,"model":...,"choices":[{"index":0,"delta":' (see `stream_head`)
    delta: dict[str, Any]  # content, reasoning_content (or reasoning), tool_calls, refusal, reasoning_details or
    # audio (the role chunk: role and content "")

    @property
    def part(self) -> ChunkPart:
        delta = self.delta
        content, reasoning, calls = delta.get("content"), delta.get("reasoning_content"), delta.get("tool_calls")
        if reasoning is None and content is None and calls is None:  # (under the upstream's name: `_Envelope`)
            reasoning = delta.get("reasoning")
        refusal = delta.get("refusal")
        return ChunkPart(reasoning if isinstance(reasoning, str) else "", content if isinstance(content, str) else "",
                         tuple(calls) if calls else (), refusal=refusal if isinstance(refusal, str) else "")


def stream_head(envelope: bytes) -> bytes:
    """`StreamChunk.head` for an envelope encoded as a compact JSON object (`{"id":...,"model":...}`)."""
    return b"data: " + envelope[:-1] + b',"choices":[{"index":0,"delta":'


def chunk_items(item: Mapping[str, Any] | StreamChunk) -> Chunk:
    """What a stream item carries, typed: a chunk document parsed, or the pipeline's own chunk as it is."""
    if type(item) is StreamChunk:
        return Chunk((item.part,), None)
    assert not isinstance(item, StreamChunk)
    return parse_chunk(item)


# --- whole completions ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ToolCall:
    """A finished tool call; `arguments` is as the upstream sent it (normally a JSON string)."""

    id: str | None
    name: str
    arguments: object


@dataclass(frozen=True, slots=True)
class Completion:
    """Choice 0 of a completion document."""

    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: object
    stop_reason: object
    usage: object
    refusal: str = ""  # the model declined (OpenAI's `message.refusal`)

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Completion:
        choices = array(doc.get("choices"))
        choice = obj(choices[0]) if choices else {}
        msg = member(choice, "message")
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        content = msg.get("content")
        if isinstance(content, list):
            content, thinking = answer_parts(content)
            reasoning = reasoning or thinking
        calls = []
        for call in array(msg.get("tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                call_id = call.get("id")
                calls.append(ToolCall(call_id if isinstance(call_id, str) else None, str(fn.get("name") or ""),
                                      fn.get("arguments")))
        return cls(text=content_text(content), reasoning=str_or(reasoning), tool_calls=tuple(calls),
                   finish_reason=choice.get("finish_reason"), stop_reason=stop_hint(choice),
                   usage=doc.get("usage"), refusal=str_or(msg.get("refusal")))
