"""What the chat route works out about a resent history's messages (they passed its check, the call ids they hold)
is kept with the known run (`KnownHistory.prefix`, `Facts`) and read again only for messages it has not seen: the
answers are those of a history read whole, on an agent's turns, on a branched history and on a bad message."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from router.chat_types import HistoryIds
from router.knownhistory import KnownHistory
from router.state import STATE
from router.toolcache import ToolIndexCache
from tests.fakes.openai_upstream import Step, completion
from tests.router.one_tool import config as cfg

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SYSTEM = {"role": "system", "content": "You are a coding agent working in a repository. " * 6}


def _call(cid: str, city: str = "Paris") -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}


def _turn(cid: str, city: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": None, "tool_calls": [_call(cid, city)]},
            {"role": "tool", "tool_call_id": cid, "content": f"sunny in {city}"}]


FIRST = [SYSTEM, {"role": "user", "content": "Weather in Paris, then Oslo?"}, *_turn("call_0", "Paris")]


def _read(history: KnownHistory, cache: ToolIndexCache, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the router reads it: the known part not parsed again, what is new learned."""
    raw = json.dumps(body).encode()
    parsed, found = history.parse(raw, cache.known)
    if parsed is None:
        parsed = json.loads(raw)
    history.learn(raw, parsed, found)
    return parsed


def test_a_known_prefix_is_the_runs_own_messages_and_its_ids_are_read_once() -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    first = _read(history, cache, {"model": "m", "messages": FIRST})
    known = history.prefix(first["messages"])
    assert known is not None and known.count == len(FIRST)  # learned from the whole parse: the body's own objects
    assert "call_0" in HistoryIds(first["messages"], known) and known.facts.ids_count == len(FIRST)

    second = _read(history, cache, {"model": "m", "messages": [*FIRST, *_turn("call_1", "Oslo")]})
    again = history.prefix(second["messages"])
    assert again is not None and again.count == len(FIRST) + 2
    assert again.facts.ids_count == len(FIRST)  # carried over from the shorter run: not read again
    taken = HistoryIds(second["messages"], again)
    assert "call_0" in taken and "call_1" in taken and "call_2" not in taken
    assert again.facts.ids_count == len(FIRST) + 2 and again.facts.ids == {"call_0", "call_1"}


def test_a_branch_sharing_fewer_messages_never_sees_the_other_branchs_ids() -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    long = _read(history, cache, {"model": "m", "messages": [*FIRST, *_turn("call_9", "Rome")]})
    known = history.prefix(long["messages"])
    assert known is not None and "call_9" in HistoryIds(long["messages"], known)
    # the same first messages, then another way: the ids of the messages it does not share are not its own
    branch = _read(history, cache, {"model": "m", "messages": [*FIRST, {"role": "user", "content": "never mind"}]})
    known = history.prefix(branch["messages"])
    assert known is not None and known.count >= len(FIRST)
    taken = HistoryIds(branch["messages"], known)
    assert "call_0" in taken and "call_9" not in taken


def test_a_foreign_list_and_changed_messages_are_not_known() -> None:
    history, cache = KnownHistory(), ToolIndexCache()
    body = _read(history, cache, {"model": "m", "messages": FIRST})
    assert history.prefix(json.loads(json.dumps(FIRST))) is None  # equal, but not the run's objects
    assert history.prefix([]) is None and history.prefix("x") is None
    mixed = [body["messages"][0], dict(body["messages"][1]), *body["messages"][2:]]
    known = history.prefix(mixed)
    assert known is not None and known.count == 1  # the identical run stops at the first other object


async def test_a_bad_message_in_a_known_history_is_refused_every_time(fakes: Any, router: Any) -> None:
    """A message the check refuses is in the run learned before the check: it is checked again on every resend."""
    up = await fakes()
    r = await router(cfg(up.url))
    bad = [*FIRST, {"role": "user", "content": 5}, {"role": "user", "content": "go on"}]
    for _ in range(3):
        with pytest.raises(openai.BadRequestError) as err:
            await r.client().chat.completions.create(model="m", messages=bad, tools=WEATHER)
        assert err.value.body["param"] == f"messages[{len(FIRST)}].content"
    assert up.requests == []


async def test_an_agents_turns_check_each_message_once_and_keep_call_ids_apart(fakes: Any, router: Any) -> None:
    """Turn by turn (the history resent with two more messages each time), the route's facts cover the whole
    history after each turn, and a call the upstream numbers `call_0` again gets a new id on every turn (the
    history holds it), while an id it does not hold is kept."""
    up = await fakes()
    for cid in ("call_0", "call_0", "call_7"):
        up.push(Step(json=completion(None, "m", tool_calls=[_call(cid, "Oslo")], finish_reason="tool_calls")))
    r = await router(cfg(up.url))
    history: KnownHistory = r.app[STATE].known_history
    messages = list(FIRST)
    got = []
    for turn in range(3):
        resp = await r.client().chat.completions.create(model="m", messages=messages, tools=WEATHER)
        got.append(resp.choices[0].message.tool_calls[0].id)
        assert up.requests[-1].body["messages"] == messages  # the history went on as the client sent it
        messages = [*messages, *_turn(f"call_{turn + 1}", "Oslo")]
    assert got[0] not in ("call_0", "") and got[1] not in ("call_0", "") and got[2] == "call_7"
    runs = [run for same_head in history._by_head.values() for run in same_head]
    assert [(len(run.values), run.facts.checked) for run in runs] == [(len(messages) - 2, len(messages) - 2)]


def _conversation(name: str, turns: int) -> list[dict[str, Any]]:
    messages = [SYSTEM]
    for i in range(turns):
        messages += [{"role": "user", "content": f"{name}: question {i}"}, *_turn(f"{name}_call_{i}", name)]
    return messages


def test_two_sessions_sharing_a_system_prompt_keep_their_own_runs() -> None:
    """Two agents at once (the same system prompt, parsed once): each turn finds its own conversation known whole,
    with what was worked out on its last turn, and never the other's ids."""
    history, cache = KnownHistory(), ToolIndexCache()
    for turn in range(1, 5):
        for name, other in (("A", "B"), ("B", "A")):
            body = _read(history, cache, {"model": "m", "messages": _conversation(name, turn)})
            known = history.prefix(body["messages"])
            assert known is not None and known.count == len(body["messages"])
            if turn > 1:
                assert known.facts.checked == len(body["messages"]) - 3  # the last turn's, carried over
            known.facts.checked = known.count  # (as the route records its check)
            taken = HistoryIds(body["messages"], known)
            assert f"{name}_call_0" in taken and f"{other}_call_0" not in taken
    assert len(history) == 2


def test_a_conversation_rewriting_its_last_message_keeps_one_run() -> None:
    """A client moving its cache mark to the newest message rewrites the one before on every turn: the run grows
    in place (its last known message differs), it does not pile up."""
    history, cache = KnownHistory(), ToolIndexCache()
    messages = _conversation("A", 1)
    for turn in range(2, 7):
        marked = [*messages[:-1], {**messages[-1], "cache_control": {"type": "ephemeral"}}]
        _read(history, cache, {"model": "m", "messages": marked})
        messages = [*messages, {"role": "user", "content": f"A: question {turn}"}, *_turn(f"A_call_{turn}", "A")]
    assert len(history) == 1
