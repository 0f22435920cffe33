"""A reasoning item given with a summary holds its text twice (`content` and `summary`: the API's shape), and the
bounds count both: a streamed Response's bound on the output its final object holds
(`max_stream_repair_kchars`), and the store's per-response bound, which counts every byte a stored response
holds: its row and the items kept by id for `item_reference` (its output items, its input items as listed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from router.dialects import responses as dialect
from router.store import ResponseStore, RowTooLarge, StoredResponse
from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step, chunk, completion

BOUND = 1024  # `max_stream_repair_kchars: 1`


async def _final(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The last event of a streamed Response."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json={**body, "stream": True}) as resp:
        assert resp.status == 200, await resp.text()
        text = (await resp.read()).decode()
    last: dict[str, Any] = json.loads([line for line in text.splitlines() if line.startswith("data: ")][-1][6:])
    return last


def _held(response: dict[str, Any]) -> int:
    """The characters of output a final Response holds: texts, reasoning content and summaries."""
    return sum(len(p.get("text", "")) for it in response["output"] for key in ("content", "summary")
               for p in it.get(key) or ())


@pytest.mark.parametrize(("chars", "summary", "fits"), [
    (BOUND - 2, False, True),  # its text once: the whole bound
    (BOUND // 2 - 1, True, True),  # twice: just at the bound
    (BOUND // 2, True, False),  # twice: two characters past it
    (BOUND - 2, True, False),  # twice: what fitted once
])
async def test_a_summarized_stream_counts_its_reasoning_twice(fakes, router, chars: int, summary: bool,
                                                              fits: bool) -> None:
    """Reasoning of `chars` characters then two of text: the final Response holds the reasoning once, or twice
    with a summary, and the stream ends `response_too_large` where that passes the bound."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": "r" * chars}),
                      chunk("m", {"content": "ok"}), chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "store": False, **({"reasoning": {"summary": "auto"}} if summary else {})}
    last = await _final(r.url, body)
    if fits:
        assert last["type"] == "response.completed", last
        assert _held(last["response"]) == (2 if summary else 1) * chars + 2 <= BOUND
    else:
        assert last["type"] == "response.failed" and last["response"]["error"]["message"].startswith(
            f"The response passed {BOUND} characters"), last
        assert _held(last["response"]) <= BOUND


def _stored(thought: str) -> StoredResponse:
    """A stored response as the route makes it: a reply with reasoning given with a summary, after a question."""
    doc = completion("Sunny.", "m")
    doc["choices"][0]["message"]["reasoning_content"] = thought
    items, _ = dialect.output_items(doc, summary=True)
    asked = dialect.Conversation([{"role": "user", "content": "Weather?"}])
    whole = asked.replied(items)
    return StoredResponse(id="resp_1", owner="alice", messages=whole.messages, summarized=whole.summarized,
                          inputs=asked.input_items("resp_1"),
                          response={"id": "resp_1", "status": "completed", "output": items})


def _bytes_held(path: Path, resp_id: str) -> int:
    """The UTF-8 bytes the database holds for a stored response: its row and its items."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT length(CAST(response AS BLOB)) + length(CAST(messages AS BLOB)) "
                         "+ length(CAST(summarized AS BLOB)) FROM responses WHERE id = ?", (resp_id,)).fetchone()
        items = db.execute("SELECT coalesce(sum(length(CAST(item AS BLOB))), 0) FROM items WHERE resp_id = ?",
                           (resp_id,)).fetchone()
    return int(row[0]) + int(items[0])


async def test_the_store_bound_counts_every_byte_a_response_holds(tmp_path: Path) -> None:
    """The reasoning is in the Response twice (content, summary), in its conversation once and in its output item
    kept by id twice more: a response is stored where all it holds fits the bound, and not one byte past it."""
    made = _stored("t" * 10_000)
    path = tmp_path / "r.sqlite3"
    store = ResponseStore(path)
    try:
        await store.put(made)
        held = _bytes_held(path, "resp_1")
        assert held > 5 * 10_000
        await store.delete("resp_1", "alice")
        store.max_row_bytes = held - 1
        with pytest.raises(RowTooLarge, match=f"{held} bytes"):
            await store.put(made)
        assert store.count() == 0
        store.max_row_bytes = held
        await store.put(made)
        got = await store.get("resp_1", "alice")
        assert got is not None and got.response["output"][0]["summary"][0]["text"] == "t" * 10_000
    finally:
        store.close()
