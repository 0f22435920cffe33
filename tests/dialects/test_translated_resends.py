"""A resent conversation on the translated routes (Messages, Responses): the call ids the translated history holds
are exactly its own, turn after turn, on a branch and after an earlier message was edited (an upstream's reused id
is renamed only where the history holds it), and a resend translates and reads only what is new in it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import chat_types, jsoncodec
from router.api.translated import fit_to_route
from router.dialects import anthropic_in, responses
from router.dialects.common import Conversations, HistoryMemo, Turn, chat_bytes, place_system, without_images
from router.errors import ApiError
from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion

SYSTEM = "You are a coding agent working in a repository. " * 6
ASK = "Weather in Oslo, every hour? Keep a log of it in weather.md, one line an hour. " * 3  # (a first element
# long enough to be known by its bytes, as an agent's is)


def _upstream_call(cid: str, stream: bool) -> Step:
    """The upstream's answer: one call with id `cid` (as a server numbering its calls per reply sends it)."""
    call = {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    if not stream:
        return Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls"))
    return Step(sse=[chunk("m", {"role": "assistant", "content": None}),
                     chunk("m", {"tool_calls": [{"index": 0, **call}]}), chunk("m", {}, "tool_calls")])


async def _post(url: str, doc: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, data=json.dumps(doc).encode(),
                                                    headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.read()


def _sse_docs(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: {")]


# --- the two routes, as an agent drives them -------------------------------------------------------------------

class Messages:
    """Claude Code's side of /v1/messages: the history as content blocks, the answer's call sent back."""

    path = "/v1/messages"

    @staticmethod
    def first(text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "text", "text": text}]}]

    @staticmethod
    def turn(cid: str, result: str) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": cid, "name": "get_weather",
                                                   "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": cid, "content": result},
                                             {"type": "text", "text": "and then?"}]}]

    @staticmethod
    def body(history: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
        return {"model": "m", "max_tokens": 64, "system": [{"type": "text", "text": SYSTEM}], "messages": history,
                "tools": [ANTHROPIC_WEATHER], "stream": stream}

    @staticmethod
    def call_id(data: bytes, stream: bool) -> str:
        if stream:
            return next(d["content_block"]["id"] for d in _sse_docs(data)
                        if d.get("type") == "content_block_start" and d["content_block"]["type"] == "tool_use")
        return str(next(b["id"] for b in json.loads(data)["content"] if b["type"] == "tool_use"))


class Responses:
    """Codex's side of /v1/responses: `store: false`, the whole input sent again each turn."""

    path = "/v1/responses"

    @staticmethod
    def first(text: str) -> list[dict[str, Any]]:
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]

    @staticmethod
    def turn(cid: str, result: str) -> list[dict[str, Any]]:
        return [{"type": "function_call", "call_id": cid, "name": "get_weather", "arguments": '{"city": "Oslo"}'},
                {"type": "function_call_output", "call_id": cid, "output": result}]

    @staticmethod
    def body(history: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
        return {"model": "m", "instructions": SYSTEM, "input": history, "tools": [RESPONSES_WEATHER],
                "store": False, "stream": stream}

    @staticmethod
    def call_id(data: bytes, stream: bool) -> str:
        doc = next(d["response"] for d in _sse_docs(data) if d.get("type") == "response.completed") if stream \
            else json.loads(data)
        return str(next(i["call_id"] for i in doc["output"] if i["type"] == "function_call"))


ROUTES = [pytest.param(Messages, id="messages"), pytest.param(Responses, id="responses")]
STREAM = [pytest.param(False, id="whole"), pytest.param(True, id="stream")]


class Agent:
    """One conversation: each turn sends the history, gets one call, and adds it with its result."""

    def __init__(self, route: Any, url: str, up: Any, stream: bool, history: list[dict[str, Any]]) -> None:
        self.route, self.url, self.up, self.stream, self.history = route, url, up, stream, history

    async def ask(self, upstream_id: str) -> str:
        """The id the client is given for the upstream's call `upstream_id`; the history as it went upstream
        (its call ids) checked against the client's."""
        self.up.push(_upstream_call(upstream_id, self.stream))
        status, data = await _post(self.url + self.route.path, self.route.body(self.history, self.stream))
        assert status == 200, data
        return self.route.call_id(data, self.stream)

    def add(self, cid: str, result: str) -> None:
        self.history = [*self.history, *self.route.turn(cid, result)]


def _sent_ids(body: dict[str, Any]) -> set[str]:
    return chat_types.ids_of(body["messages"])


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("route", ROUTES)
async def test_a_reused_id_is_renamed_turn_after_turn(fakes: Any, router: Any, route: Any, stream: bool) -> None:
    """The upstream numbers its calls per reply (`call_0` every turn): the first keeps it, every later turn's call
    gets an id no earlier turn holds, and an id the history does not hold is kept."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    agent = Agent(route, r.url, up, stream, route.first(ASK))
    given: list[str] = []
    for turn in range(4):
        cid = await agent.ask("call_0")
        assert cid not in given and (cid == "call_0") == (turn == 0)
        assert _sent_ids(up.requests[-1].body) == set(given)  # the translated history holds the client's ids
        given.append(cid)
        agent.add(cid, f"{turn} degrees")
    assert await agent.ask("call_7") == "call_7"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("route", ROUTES)
async def test_a_branch_never_holds_the_other_branchs_ids(fakes: Any, router: Any, route: Any, stream: bool) -> None:
    """Two branches of one conversation (its first turns shared, sent in turns): each is given back, as its own,
    an id only the other branch holds, and has its own ids renamed."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    trunk = Agent(route, r.url, up, stream, route.first(ASK))
    trunk.add(await trunk.ask("call_a"), "1 degree")
    shared = trunk.history
    trunk.add(await trunk.ask("call_b"), "2 degrees")
    other = Agent(route, r.url, up, stream, [*shared, *route.first("No: in Paris.")])
    other.add(await other.ask("call_c"), "20 degrees")
    for _ in range(2):
        assert await trunk.ask("call_c") == "call_c"  # only the other branch holds it
        assert await other.ask("call_b") == "call_b"
        assert await trunk.ask("call_b") != "call_b" and await other.ask("call_c") != "call_c"
        assert await trunk.ask("call_a") != "call_a" and await other.ask("call_a") != "call_a"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("route", ROUTES)
async def test_an_edited_earlier_turn_holds_its_new_ids(fakes: Any, router: Any, route: Any, stream: bool) -> None:
    """The client rewrites an earlier turn (another call id there): the old id is free again, the new one is
    held, on the first resend of the edited history and on the next."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    agent = Agent(route, r.url, up, stream, route.first(ASK))
    agent.add(await agent.ask("call_a"), "1 degree")
    agent.add(await agent.ask("call_b"), "2 degrees")
    assert await agent.ask("call_a") != "call_a"
    first = route.first(ASK)
    edited = Agent(route, r.url, up, stream,
                   [*first, *route.turn("call_e", "1 degree"), *agent.history[len(first) + 2:]])
    for _ in range(2):
        assert await edited.ask("call_a") == "call_a"
        assert await edited.ask("call_e") != "call_e" and await edited.ask("call_b") != "call_b"
        assert _sent_ids(up.requests[-1].body) == {"call_e", "call_b"}


@pytest.mark.parametrize("route", ROUTES)
async def test_a_resend_translates_and_reads_only_what_is_new(fakes: Any, router: Any, route: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn by turn, a 12-turn conversation: once its history is known, a resend translates its new elements
    only (the kept translation of each looked up once), the history is never read whole for call ids, and the
    kept encodings of its messages are put in the chat body's bytes without a look-up for each."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    memos = r.state.messages_memos if route is Messages else r.state.responses_memos
    looked_up: list[object] = []
    scanned: list[int] = []
    encodings: list[object] = []
    kept_get, kept_json = memos.history.get, memos.history.json_of

    def json_of(message: object) -> bytes | None:
        encodings.append(message)
        return kept_json(message)

    def get(message: dict[str, Any], make: Callable[[dict[str, Any], int], Turn], at: int) -> Turn:
        looked_up.append(message)
        return kept_get(message, make, at)

    def ids_of(messages: list[Any]) -> set[str]:
        scanned.append(len(messages))
        return real_ids_of(messages)

    real_ids_of = chat_types.ids_of
    monkeypatch.setattr(memos.history, "get", get)
    monkeypatch.setattr(memos.history, "json_of", json_of)
    monkeypatch.setattr(chat_types, "ids_of", ids_of)
    agent = Agent(route, r.url, up, False, route.first(ASK))
    for turn in range(12):
        looked_up.clear()
        scanned.clear()
        encodings.clear()
        cid = await agent.ask("call_0")
        if turn >= 2:  # (the first sends are learned by their bytes)
            assert len(looked_up) <= 3, (turn, len(looked_up))  # the turn's two new elements (and the one before)
            assert sum(scanned) <= 3, (turn, scanned)
            assert len(encodings) <= 5, (turn, len(encodings))  # their messages (and the system message)
        agent.add(cid, f"{turn} degrees")
    assert isinstance(memos.history, HistoryMemo)


async def test_a_codex_resend_places_its_developer_message_without_reading_the_history(
        fakes: Any, router: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Codex begins its input with a developer message (joined to the instructions as the system message, as
    `place_system` places it): a resend is not read whole to place it, and it is placed as before; the chat body's
    bytes take the kept encodings of the messages after it (the system message stands for the developer message:
    each message's encoding was looked up again)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    placed: list[int] = []
    encodings: list[object] = []
    real = responses.place_system
    memos = r.state.responses_memos
    kept_json = memos.history.json_of

    def counted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        placed.append(len(messages))
        return real(messages)

    def json_of(message: object) -> bytes | None:
        encodings.append(message)
        return kept_json(message)

    monkeypatch.setattr(responses, "place_system", counted)
    monkeypatch.setattr(memos.history, "json_of", json_of)
    developer = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": ASK}]}
    agent = Agent(Responses, r.url, up, False, [developer, *Responses.first("Weather in Oslo?")])
    for turn in range(8):
        placed.clear()
        encodings.clear()
        agent.add(await agent.ask("call_0"), f"{turn} degrees")
        sent = up.requests[-1].body["messages"]
        assert sent[0] == {"role": "system", "content": f"{SYSTEM}\n\n{ASK}"} and sent[1]["role"] == "user"
        assert sum(placed) == 0, placed
        if turn >= 3:
            assert len(encodings) <= 5, (turn, len(encodings))


# --- a kept conversation's translation is the translation afresh -------------------------------------------------

_USE = [{"type": "tool_use", "id": c, "name": "get_weather", "input": {"city": "Oslo"}} for c in ("c1", "c2")]
_RESULT = [{"type": "tool_result", "tool_use_id": c, "content": "5 degrees"} for c in ("c1", "c2")]
_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
MESSAGES_ELEMENTS: list[Any] = [
    {"role": "user", "content": [{"type": "text", "text": "go on"}]},
    {"role": "user", "content": "a string"},
    {"role": "user", "content": [_IMAGE, {"type": "text", "text": "this?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Looking."}, _USE[0]]},
    {"role": "assistant", "content": [_USE[1], _USE[0]]},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "done"}]},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": [_RESULT[0]]},
    {"role": "user", "content": [_RESULT[1], _RESULT[0], {"type": "text", "text": "and?"}]},
    {"role": "user", "content": [{**_RESULT[0], "content": [_IMAGE]}]},
    {"role": "system", "content": "Be brief."},
    {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                                      {"type": "text", "text": "found"}]},
    {"role": "user", "content": 5},  # refused
]
RESPONSES_ELEMENTS: list[Any] = [
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go on"}]},
    {"type": "message", "role": "user", "content": "a string"},
    {"type": "message", "role": "developer", "content": "Be brief."},
    {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,i"}]},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
    {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "5 degrees"},
    {"type": "function_call_output", "call_id": "c2",
     "output": [{"type": "input_image", "image_url": "data:image/png;base64,i"}]},
    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
    {"type": "web_search_call", "id": "ws", "status": "completed"},
    {"type": "message", "role": "tool", "content": "x"},  # refused
]


def _outcome(route: Any, items: list[Any], memos: Any) -> tuple[Any, ...]:
    """What a translation gives: the chat body, its counts and what it dropped, the call ids the history is taken
    to hold (asked of the messages themselves), or the refusal."""
    try:
        if route is Messages:
            req = anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": items}, memos)
            chat, more = req.chat, (req.text_bytes, req.images, req.loads, req.prefill)
        else:
            got = responses.parse_request({"model": "m", "instructions": "Be brief.", "input": items,
                                           "store": False}, memos)
            chat, more = responses.build_chat(got, []), ()
            assert chat["messages"] == place_system([{"role": "system", "content": "Be brief."},
                                                     *got.input_messages])
    except ApiError as err:
        return ("refused", err.status, err.message, err.param)
    fitted = fit_to_route(chat, {"engine"})
    data = chat_bytes(fitted, None, memos.history)
    assert data in (b"", jsoncodec.dumps(fitted))
    return (chat, more, _held(fitted["messages"]), without_images(chat["messages"])[0] == fitted["messages"])


def _held(messages: list[Any]) -> list[str]:
    """The call ids `HistoryIds` takes `messages` to hold, of those it might."""
    taken = chat_types.HistoryIds(messages)
    return sorted(c for c in ("c1", "c2", "s", "call_0") if c in taken)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
@pytest.mark.parametrize("route", ROUTES)
def test_a_kept_conversation_translates_as_afresh(route: Any, data: st.DataObject) -> None:
    """Requests sharing their first elements as objects (as `KnownHistory` hands them out: a conversation
    growing, rewriting its last element, branching, edited, refused): each translates, with the kept
    conversations, to what it translates to afresh, and the call ids it is taken to hold are its own, then and
    after later requests changed the kept runs (a request still under way asks again)."""
    pool = MESSAGES_ELEMENTS if route is Messages else RESPONSES_ELEMENTS
    memos = anthropic_in.Translations() if route is Messages else responses.Translations()
    memos.conversations = Conversations(max_runs=data.draw(st.integers(1, 4)))
    sent: list[list[Any]] = [[]]
    under_way: list[list[Any]] = []
    for _ in range(data.draw(st.integers(1, 8))):
        base = data.draw(st.sampled_from(sent))
        keep = data.draw(st.integers(0, len(base)))
        new = data.draw(st.lists(st.sampled_from(pool), min_size=0 if keep else 1, max_size=4))
        items = [*base[:keep], *copy.deepcopy(new)]
        fresh = anthropic_in.Translations() if route is Messages else responses.Translations()
        got = _outcome(route, items, memos)
        assert got == _outcome(route, copy.deepcopy(items), fresh)
        sent.append(items)
        if got[0] != "refused":
            under_way.append(fit_to_route(got[0], {"engine"})["messages"])
        for messages in under_way:
            assert _held(messages) == sorted({"c1", "c2", "s", "call_0"} & chat_types.ids_of(messages))


def test_the_memo_keeps_no_run_nobody_can_take_up_and_stays_bounded() -> None:
    """A first element too large to hold (an image) makes no run (nothing could take it up, and it held the whole
    translation uncounted); one string message past the bound of one entry is not held (it emptied the memo of
    every other conversation); a Responses input after a `previous_response_id` (new items only, never resent)
    takes no run's place."""
    from router.dialects import anthropic_in, responses

    memos = anthropic_in.Translations()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * (1 << 20)}}
    anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [image, {"type": "text", "text": "see"}]},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]}, memos)
    assert memos.conversations.runs == 0
    for i in range(3):
        anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": f"conversation {i}"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "next"}]}, memos)
    anthropic_in.parse_request({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "x" * (9 << 20)}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "next"}]}, memos)
    assert memos.conversations.runs == 3 and memos.conversations.bytes <= memos.conversations.max_bytes

    rmemos = responses.Translations()
    items = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "go on"}]
    responses.parse_request({"model": "m", "input": items}, rmemos)
    for i in range(70):
        responses.parse_request({"model": "m", "previous_response_id": f"resp_{i}", "input": [
            {"type": "function_call_output", "call_id": f"call_{i}", "output": "done"},
            {"role": "user", "content": "and?"}]}, rmemos)
    assert rmemos.conversations.runs == 1
