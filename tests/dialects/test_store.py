"""The response store: location, privacy, owner isolation and its row/age bounds."""

from __future__ import annotations

import sqlite3
import stat
import time
from pathlib import Path

import pytest

from router.store import (
    ConversationTooLarge,
    DuplicateItem,
    ItemOfFailedResponse,
    ResponseStore,
    StoredResponse,
    default_path,
)


def item(n: int, owner: str | None = None, created: float = 0.0) -> StoredResponse:
    return StoredResponse(id=f"resp_{n}", owner=owner, response={"id": f"resp_{n}", "n": n},
                          messages=[{"role": "user", "content": str(n)}], created=created)


def test_location_from_environment(tmp_path: Path) -> None:
    assert default_path({"AGENTGATE_STATE_DIR": str(tmp_path)}) == tmp_path / "responses.sqlite3"
    assert default_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "agentgate" / "responses.sqlite3"
    assert default_path({}).parts[-4:] == (".local", "state", "agentgate", "responses.sqlite3")
    store = ResponseStore.from_env({"AGENTGATE_STATE_DIR": str(tmp_path), "AGENTGATE_RESPONSES_MAX_ROWS": "2",
                                    "AGENTGATE_RESPONSES_MAX_AGE_DAYS": "0.5"})
    try:
        assert (store.max_rows, store.max_age) == (2, 43200.0)
    finally:
        store.close()


async def test_round_trip_private_file_and_owner_isolation(tmp_path: Path) -> None:
    store = ResponseStore.from_env({"AGENTGATE_STATE_DIR": str(tmp_path / "state")})
    try:
        await store.put(item(1, owner="alice"))
        got = await store.get("resp_1", "alice")
        assert got is not None and got.response == {"id": "resp_1", "n": 1} and got.owner == "alice"
        assert got.messages == [{"role": "user", "content": "1"}]
        assert await store.get("resp_1", "bob") is None and await store.get("resp_1", None) is None
        assert not await store.delete("resp_1", "bob")
        assert await store.delete("resp_1", "alice") and await store.get("resp_1", "alice") is None
    finally:
        store.close()
    path = tmp_path / "state" / "responses.sqlite3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = ResponseStore(path)
    try:
        assert reopened.count() == 0
    finally:
        reopened.close()


async def test_bounds_are_enforced_on_write(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3", max_rows=3, max_age=60)
    try:
        now = time.time()
        await store.put(item(0, created=now - 3600))  # already too old: never returned, pruned on write
        assert await store.get("resp_0", None) is None
        for n in range(1, 6):
            await store.put(item(n, created=now + n))
        assert store.count() == 3
        assert [await store.get(f"resp_{n}", None) is not None for n in range(6)] == [False] * 3 + [True] * 3
    finally:
        store.close()


def answer(n: int, owner: str | None = None, created: float = 0.0) -> StoredResponse:
    """A stored response whose output is one message, `msg_<n>`."""
    made = item(n, owner, created)
    made.response["output"] = [{"type": "message", "id": f"msg_{n}", "role": "assistant",
                                "content": [{"type": "output_text", "text": str(n)}]}]
    return made


async def test_output_items_are_found_by_id_while_their_response_is_kept(tmp_path: Path) -> None:
    """An `item_reference` names an output item of a stored response: found for the key that stored it, and only
    while the response is kept (items go with a response pruned by the bounds or deleted: the table stays bounded
    with the responses)."""
    path = tmp_path / "r.sqlite3"
    store = ResponseStore(path, max_rows=2, max_age=60)
    try:
        now = time.time()
        for n in range(3):
            await store.put(answer(n, "alice", now + n))
        found = await store.items(["msg_0", "msg_1", "msg_2", "msg_9"], "alice")
        assert found == {f"msg_{n}": answer(n).response["output"][0] for n in (1, 2)}  # msg_0's response pruned
        assert await store.items(["msg_1"], "bob") == {} and await store.items(["msg_1"], None) == {}
        assert await store.delete("resp_1", "alice") and await store.items(["msg_1"], "alice") == {}
        store.max_containers = 2  # the items together bounded as one response with its conversation
        with pytest.raises(ConversationTooLarge):
            await store.items(["msg_2"], "alice")
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM items").fetchall() == [("msg_2",)]


async def test_unusable_location_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = ResponseStore.from_env({"AGENTGATE_STATE_DIR": str(blocker)})
    try:
        assert store.path == ":memory:"
        await store.put(item(7))
        assert await store.get("resp_7", None) is not None
    finally:
        store.close()


async def test_an_output_item_of_a_failed_response_is_refused_by_id(tmp_path: Path) -> None:
    """A failed response's output items are kept with it (a GET lists them) but are no item to continue from:
    naming one raises `ItemOfFailedResponse` with the item's and the response's ids; its input items are found."""
    store = ResponseStore(tmp_path / "r.sqlite3")
    try:
        failed = answer(1, "alice")
        failed.response["status"] = "failed"
        failed.inputs = [{"type": "message", "id": "msg_in", "role": "user", "content": "1"}]
        await store.put(failed)
        with pytest.raises(ItemOfFailedResponse) as refused:
            await store.items(["msg_in", "msg_1"], "alice")
        assert (refused.value.item_id, refused.value.resp_id) == ("msg_1", "resp_1")
        assert await store.items(["msg_in"], "alice") == {"msg_in": failed.inputs[0]}
        assert await store.items(["msg_1"], "bob") == {}
    finally:
        store.close()


async def test_a_store_made_before_failed_items_were_marked_opens_and_works(tmp_path: Path) -> None:
    """A database written by an earlier release (its items without the failed mark, its responses without the
    one each continued) is brought up to date: its rows are found, and continue nothing."""
    path = tmp_path / "r.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE responses (id TEXT PRIMARY KEY, created REAL NOT NULL, owner TEXT NOT NULL, "
                         "response TEXT NOT NULL, messages TEXT NOT NULL);"
                         "CREATE TABLE items (owner TEXT NOT NULL, id TEXT NOT NULL, resp_id TEXT NOT NULL, "
                         "item TEXT NOT NULL, PRIMARY KEY (owner, id));"
                         f"INSERT INTO responses VALUES ('resp_1', {time.time()}, 'alice', '{{}}', '[]');"
                         "INSERT INTO items VALUES ('alice', 'msg_1', 'resp_1', '{\"id\": \"msg_1\"}');")
    store = ResponseStore(path)
    try:
        later = answer(2, "alice")
        later.response["previous_response_id"] = "resp_1"
        await store.put(later)
        assert await store.items(["msg_1", "msg_2"], "alice") == {"msg_1": {"id": "msg_1"},
                                                                  "msg_2": later.response["output"][0]}
        with pytest.raises(DuplicateItem):
            await store.items(["msg_1"], "alice", continued="resp_2")
    finally:
        store.close()


async def test_an_item_of_the_continued_chain_is_a_duplicate(tmp_path: Path) -> None:
    """An item of the response a request continues, or of one before it in its chain, is already in that
    conversation (`DuplicateItem`); one of a response outside the chain is found."""
    store = ResponseStore(tmp_path / "r.sqlite3")
    try:
        for n, previous in ((1, None), (2, "resp_1"), (3, "resp_2"), (4, None)):
            made = answer(n, "alice")
            made.response["previous_response_id"] = previous
            await store.put(made)
        for ref, continued in (("msg_3", "resp_3"), ("msg_1", "resp_3"), ("msg_2", "resp_2")):
            with pytest.raises(DuplicateItem) as dup:
                await store.items([ref], "alice", continued=continued)
            assert dup.value.item_id == ref
        assert set(await store.items(["msg_4", "msg_3"], "alice", continued="resp_2")) == {"msg_3", "msg_4"}
        assert set(await store.items(["msg_1"], "bob", continued="resp_3")) == set()
    finally:
        store.close()
