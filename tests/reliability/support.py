"""Helpers of the reliability suite: an upstream driven by the request's content, raw HTTP helpers,
leak snapshots and a controllable breaker clock."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.fakes.openai_upstream import FakeUpstream, Step, completion, stream_of
from tests.waiting import wait_until

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=20)  # every request of the suite is bounded


def repair_ready() -> bool:
    """The tool-call repair library is importable (requests with tools go through it)."""
    try:
        import repair

        return callable(getattr(repair, "repair_message", None)) and hasattr(repair, "StreamRepairer")
    except ImportError:
        return False


needs_repair = pytest.mark.skipif(not repair_ready(), reason="the repair library is not importable yet")


def openai_error(doc: Any) -> dict[str, Any]:
    """Asserts `doc` is `{"error": {"message", "type", "code", ...}}` and returns the inner object."""
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    err = doc["error"]
    assert isinstance(err, dict) and {"message", "type", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    return err


def sse_payloads(raw: bytes) -> list[bytes]:
    """The `data:` payloads of an event stream, in order."""
    out: list[bytes] = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [ln[5:].lstrip(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def stream_text(raw: bytes) -> tuple[str, list[dict[str, Any]]]:
    """(concatenated delta content, the JSON documents) of an OpenAI chat stream; every payload but [DONE]
    must be JSON."""
    text, docs = "", []
    for p in sse_payloads(raw):
        if p.strip() == b"[DONE]":
            continue
        try:
            doc = json.loads(p)
        except ValueError:
            raise AssertionError(f"the client received an event that is not JSON: {p[:200]!r}") from None
        docs.append(doc)
        for choice in doc.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str):
                text += content
    return text, docs


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def request(session: aiohttp.ClientSession, method: str, url: str, *, data: bytes | None = None,
                  json_body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    """One bounded request; the whole body is read."""
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    async with session.request(method, url, data=data, headers=headers, timeout=CLIENT_TIMEOUT) as resp:
        body = await resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)


async def raw_http(url: str, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are over a fresh connection; read one answer (by its Content-Length, else until the
    server closes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)

    async def answer() -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        return head + (await reader.readexactly(length) if length is not None else await reader.read())

    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(answer(), timeout)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def parse_raw_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
    return status, headers, body


@dataclass
class Chat:
    """What a client saw for one chat request."""

    status: int
    headers: dict[str, str]
    text: str | None  # the content; a stream's deltas joined
    error: dict[str, Any] | None  # the OpenAI error object (error response or terminal stream event)
    done: bool  # a stream ended with [DONE]
    raw: bytes

    @property
    def provider(self) -> str | None:
        return self.headers.get("x-agentgate-provider")


def chat_body(model: str, content: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


async def chat(session: aiohttp.ClientSession, url: str, model: str, content: str, *, stream: bool = False,
               headers: dict[str, str] | None = None) -> Chat:
    ans = await request(session, "POST", url + "/v1/chat/completions", json_body=chat_body(model, content, stream),
                        headers=headers)
    hdrs = ans.headers
    if ans.status != 200:
        return Chat(ans.status, hdrs, None, openai_error(ans.json()), False, ans.body)
    if stream:
        assert hdrs.get("content-type", "").startswith("text/event-stream"), hdrs
        payloads = sse_payloads(ans.body)
        text, docs = stream_text(ans.body)
        errors = [d for d in docs if "error" in d]
        if errors:
            assert docs[-1] is errors[-1], "an error event must be the stream's last event"
        return Chat(200, hdrs, text, openai_error(errors[-1]) if errors else None,
                    bool(payloads) and payloads[-1].strip() == b"[DONE]", ans.body)
    doc = ans.json()
    return Chat(200, hdrs, doc["choices"][0]["message"]["content"], None, True, ans.body)


class FakeClock:
    """Replaces a breaker's clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- an upstream whose behaviour is chosen by the last user message -----------------------------------------


class ContentUpstream(FakeUpstream):
    """Behaviour keyed by the last user message, so concurrent requests need no ordering:

    `ok:<n>` echo (stream or not) · `reset:<k>` abort after k stream events · `reset-once:<n>` abort
    before the first event (non-stream: a 502) the first time this text is seen, then echo · `stall` hold
    before answering until `release` · `stall-headers` send headers, then hold · `stall-mid` send two
    events, then hold (non-stream: half the body) · `slow` send the answer in pieces 0.15 s apart (non-stream:
    the body in six) · `500` / `429` a status · `nonjson` a 200 HTML body · `truncated` a stream that ends
    without [DONE] in the middle of an event. The first word picks the behaviour; the text is echoed.
    Anything that is not a chat body with string content is answered with a fixed completion.
    """

    def __init__(self, name: str = "fake", *, faults: bool = True) -> None:
        super().__init__(name)
        self.faults = faults  # False: echo whatever the text says (a healthy fallback)
        self.release = asyncio.Event()
        self.seen: dict[str, int] = {}
        self.active = 0  # handlers running now

    async def _handle(self, request: Any) -> Any:
        self.active += 1
        try:
            return await super()._handle(request)
        finally:
            self.active -= 1

    def default(self, body: Any) -> Step:
        model = body.get("model", "?") if isinstance(body, dict) else "?"
        model = model if isinstance(model, str) else "?"
        stream = isinstance(body, dict) and body.get("stream") is True
        text = _last_user_text(body)
        if text is None:
            if stream:
                return Step(sse=stream_of(["fixed"], model))
            return Step(json=completion("fixed", model))
        self.seen[text] = self.seen.get(text, 0) + 1
        kind, _, arg = text.split(" ", 1)[0].partition(":") if self.faults else ("ok", "", "")
        pieces = re.findall(r"\S+\s*", text) or [text]
        if kind == "reset" and stream:
            return Step(sse=stream_of(pieces, model), reset_after=int(arg or 2))
        if kind == "reset-once" and self.seen[text] == 1:
            return Step(sse=stream_of(pieces, model), reset_after=0) if stream else Step(status=502)
        if kind == "stall":
            return Step(sse=stream_of(pieces, model), gate=self.release) if stream else Step(
                json=completion(text, model), gate=self.release)
        if kind == "stall-headers" and stream:
            return Step(sse=stream_of(pieces, model), pause_after=0, resume=self.release)
        if kind == "stall-mid" and stream:
            return Step(sse=stream_of(pieces, model), pause_after=2, resume=self.release)
        if kind == "stall-mid":  # the headers and half the body, then nothing
            body = json.dumps(completion(text, model)).encode()
            return Step(sse=[body[:len(body) // 2], body[len(body) // 2:]], pause_after=1, resume=self.release,
                        done=False, headers={"Content-Type": "application/json"})
        if kind == "slow":
            if stream:
                return Step(sse=stream_of(pieces, model), interval=0.15)
            body = json.dumps(completion(text, model)).encode()
            cut = [len(body) * k // 6 for k in range(7)]
            return Step(sse=[body[cut[k]:cut[k + 1]] for k in range(6)], interval=0.15, done=False,
                        headers={"Content-Type": "application/json"})
        if kind in ("500", "429"):
            key = arg or ""
            return Step(status=int(kind), json={"error": {"message": f"scripted {kind} {key}".strip()}},
                        headers={"Retry-After": "0"} if kind == "429" else {})
        if kind == "nonjson":
            return Step(raw=b"<html><body>Bad gateway</body></html>", headers={"Content-Type": "text/html"})
        if kind == "truncated" and stream:
            return Step(sse=[*stream_of(pieces, model)[:2], 'data: {"id": "chatcmpl-fake", "obj'], done=False)
        if stream:
            return Step(sse=stream_of(pieces, model))
        return Step(json=completion(text, model))


def _last_user_text(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return None
    last = body["messages"][-1]
    content = last.get("content") if isinstance(last, dict) else None
    return content if isinstance(content, str) else None


# --- leaks ---------------------------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Snapshot:
    tasks: int
    fds: int


def snapshot() -> Snapshot:
    return Snapshot(len(asyncio.all_tasks()), open_fds())


async def assert_no_leaks(before: Snapshot, *, task_slack: int = 3, fd_slack: int = 6,
                          timeout: float = 15.0) -> None:
    """Waits (bounded) for tasks and file descriptors to come back to `before` plus a small constant."""
    try:
        await wait_until(lambda: len(asyncio.all_tasks()) <= before.tasks + task_slack
                         and open_fds() <= before.fds + fd_slack, timeout=timeout, interval=0.05)
    except asyncio.TimeoutError:
        now = snapshot()
        raise AssertionError(f"leak: tasks {before.tasks} -> {now.tasks}, fds {before.fds} -> {now.fds}") from None
