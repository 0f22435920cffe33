"""The store keeps where a conversation's reasoning was the client's with a summary (`StoredResponse.summarized`),
inside the per-response bound, and reads a row an earlier release wrote as having none."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from router.store import ResponseStore, RowTooLarge, StoredResponse

MESSAGES = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "reasoning_content": "t"}]


def _made(summarized: tuple[int, ...] = (1,)) -> StoredResponse:
    return StoredResponse(id="resp_1", owner="alice", response={"id": "resp_1"}, messages=MESSAGES,
                          summarized=summarized)


async def test_summarized_positions_round_trip(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.sqlite3")
    try:
        await store.put(_made((1, 3)))
        got = await store.get("resp_1", "alice")
        assert got is not None and (got.messages, got.summarized) == (MESSAGES, (1, 3))
        await store.put(_made(()))
        got = await store.get("resp_1", "alice")
        assert got is not None and got.summarized == ()
    finally:
        store.close()


async def test_the_positions_count_in_the_row_bound(tmp_path: Path) -> None:
    """A response that fits the bound without its positions is not stored with them past it."""
    bare = len(json.dumps({"id": "resp_1"}).encode()) + len(json.dumps(MESSAGES).encode())
    store = ResponseStore(tmp_path / "r.sqlite3", max_row_bytes=bare + len("[1]") - 1)
    try:
        await store.put(_made(()))
        with pytest.raises(RowTooLarge):
            await store.put(_made((1,)))
        store.max_row_bytes += 1
        await store.put(_made((1,)))
    finally:
        store.close()


async def test_a_row_an_earlier_release_wrote_has_no_summarized_reasoning(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE responses (id TEXT PRIMARY KEY, created REAL NOT NULL, owner TEXT NOT NULL, "
                         "response TEXT NOT NULL, messages TEXT NOT NULL, previous TEXT NOT NULL DEFAULT '');"
                         f"INSERT INTO responses VALUES ('resp_0', {time.time()}, 'alice', '{{}}', "
                         f"'{json.dumps(MESSAGES)}', '');")
    store = ResponseStore(path)
    try:
        old = await store.get("resp_0", "alice")
        assert old is not None and (old.messages, old.summarized) == (MESSAGES, ())
        await store.put(_made())
        new = await store.get("resp_1", "alice")
        assert new is not None and new.summarized == (1,)
    finally:
        store.close()
