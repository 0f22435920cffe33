"""A provider that quotes the key it was sent cut short (OpenAI's "Incorrect API key provided: sk-abc12***...xyz9",
or a key cut at a length limit) gives away its beginning or its end: neither reaches the client, in an error
answered whole, in one passed on as the upstream wrote it, or in an error event after the stream began."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router.redact import SecretGate, scrub_body, scrub_literal, scrub_text
from tests.fakes.openai_upstream import FakeUpstream, Step, chunk

KEY = "sk-proj-Q7w9Zk2mXp4rT8vBn5Hc3Lq1"
PUBLIC = "sk-proj-"  # what every key of the provider begins with: no part of this one
SHOWN = 4  # characters of its own a message may show (OpenAI's masked key shows its last 4)


def given_away(text: str, key: str = KEY) -> list[str]:
    """The beginnings (past the public prefix) and ends of `key` longer than `SHOWN` characters of it in `text`,
    and any 8 characters of its own."""
    heads = [key[:n] for n in range(len(PUBLIC) + SHOWN + 1, len(key) + 1)]
    tails = [key[-n:] for n in range(SHOWN + 1, len(key) + 1)]
    own = key[len(PUBLIC):]
    middles = [own[i:i + 8] for i in range(len(own) - 7)]
    return [part for part in heads + tails + middles if part in text]


CUT = [
    f"Incorrect API key provided: {KEY[:-2]}",  # cut at a length limit
    f"Incorrect API key provided: {KEY[:14]}{'*' * 20}{KEY[-4:]}.",  # masked, a longer beginning shown
    f"Incorrect API key provided: {KEY[:8]}...{KEY[-9:]}",  # masked, a longer end shown
    f"key ending in {KEY[3:]} was revoked",  # without its first characters
]


@pytest.mark.parametrize("message", CUT)
def test_a_key_cut_short_is_redacted_from_text_and_bodies(message: str) -> None:
    assert given_away(message)  # (the case gives something away)
    assert not given_away(scrub_text(message, KEY)), scrub_text(message, KEY)
    assert not given_away(scrub_literal(message.encode(), KEY).decode())
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
    out = scrub_body(body, KEY)
    assert not given_away(out.decode()), out
    assert json.loads(out)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("text", [
    "Keys of this provider begin with sk-proj- and are 164 characters long.",
    f"{KEY[:len(PUBLIC) + SHOWN]}****{KEY[-SHOWN:]}",  # the few characters OpenAI's own mask shows
    "sk-proj-zzzzzzzzzzzzzzzzzzzzzzzzzz",  # another key of the same provider
    "index, placeholder, EMPTY",
])
def test_what_gives_no_key_away_is_kept(text: str) -> None:
    assert scrub_text(text, KEY) == text
    assert scrub_literal(text.encode(), KEY) == text.encode()


def test_a_short_or_placeholder_secret_has_no_part_looked_for() -> None:
    short = "sk-abcdef123"  # too short to have a part of its own that gives it away
    assert scrub_text("sk-abcdef12 and bcdef123", short) == "sk-abcdef12 and bcdef123"


@pytest.mark.parametrize("message", CUT[:3])
def test_a_key_cut_short_in_streamed_text_is_redacted(message: str) -> None:
    """Streamed in pieces: a part that begins as the key does is held until it ends (an end of the key that
    began in pieces already sent cannot be taken back: only a whole piece's is cut, below)."""
    gate = SecretGate((KEY,))
    out = "".join(gate.text("c", message[i:i + 7]) for i in range(0, len(message), 7))
    out += "".join(gate.flush().values())
    assert not given_away(out), out


def test_an_end_of_the_key_in_one_streamed_piece_is_redacted() -> None:
    gate = SecretGate((KEY,))
    out = gate.text("c", "revoked: ") + gate.text("c", f"{KEY[3:]} (rotate it)") + "".join(gate.flush().values())
    assert not given_away(out) and out.startswith("revoked: ") and out.endswith(" (rotate it)"), out


@pytest.mark.parametrize("message", CUT)
def test_a_key_cut_short_is_redacted_from_captures(message: str) -> None:
    from router.capture import Redactor

    assert not given_away(Redactor([KEY]).text(message))


# --- through a router --------------------------------------------------------------------------------------------

def _config(url: str) -> str:
    return f"""
providers:
  oa: {{type: openai, base_url: '{url}', api_key: {KEY}, retries: 0, breaker: {{failures: 100000}}}}
  an: {{type: anthropic, base_url: '{url}', api_key: {KEY}, retries: 0, breaker: {{failures: 100000}}}}
models:
  - {{name: m, provider: oa}}
  - {{name: a, provider: an}}
"""


def _body(path: str, model: str, stream: bool) -> dict[str, Any]:
    if path == "/v1/responses":
        return {"model": model, "stream": stream, "input": "x", "store": False}
    return {"model": model, "stream": stream, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


ROUTES = [(path, model) for path in ("/v1/chat/completions", "/v1/messages", "/v1/responses") for model in "ma"]


async def _ask(url: str, path: str, model: str, stream: bool) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=_body(path, model, stream),
                                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
        return resp.status, (await resp.read()).decode("utf-8", "replace") + json.dumps(dict(resp.headers))


@pytest.mark.parametrize(("path", "model"), ROUTES)
@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
async def test_an_upstream_error_quoting_the_key_cut_short_never_reaches_the_client(fakes, router, path, model,
                                                                                     status) -> None:
    up: FakeUpstream = await fakes()
    r = await router(_config(up.url))
    for message in CUT:
        for stream in (False, True):
            up.push(Step(status=status, json={"type": "error", "error": {"message": message,
                                                                         "type": "invalid_request_error"}}))
            got, text = await _ask(r.url, path, model, stream)
            assert got >= 400 and not given_away(text), (message, stream, got, text[:400])


def _anthropic_error_stream(message: str) -> list[Any]:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                  "model": "a", "content": [], "stop_reason": None,
                                                  "usage": {"input_tokens": 1, "output_tokens": 0}}}
    error = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
    return [f"event: message_start\ndata: {json.dumps(start)}\n\n", f"event: error\ndata: {json.dumps(error)}\n\n"]


@pytest.mark.parametrize(("path", "model"), ROUTES)
async def test_an_error_event_quoting_the_key_cut_short_mid_stream_never_reaches_the_client(fakes, router, path,
                                                                                          model) -> None:
    up: FakeUpstream = await fakes()
    r = await router(_config(up.url))
    for message in CUT:
        if model == "m":
            up.push(Step(sse=[chunk("m", {"content": "a"}), {"error": {"message": message}}]))
        else:
            up.push(Step(sse=_anthropic_error_stream(message), done=False))
        got, text = await _ask(r.url, path, model, True)
        assert got == 200 and not given_away(text), (message, text[-400:])


@pytest.mark.parametrize(("pieces", "said"), [
    (["curl -H 'key: sk-proj-Q7", "[redacted]' x"], "curl -H 'key: [redacted]' x"),  # held, then its end cut
    (["curl -H 'key: sk-proj-Q7[redacted]' x"], "curl -H 'key: [redacted]' x"),  # joined by repair first
    (["it's[redacted] and sk-p[redacted]"], "it's[redacted] and sk-p[redacted]"),  # too short to tell a key
])
def test_the_beginning_of_a_key_whose_end_was_cut_before_the_gate_goes_with_it(pieces: list[str], said: str) -> None:
    """A stream's event is redacted whole before its text reaches the gate: the end of a key found there is cut
    (`cut_partials`) though its beginning came in an earlier piece."""
    gate = SecretGate((KEY,))
    out = "".join(gate.text("c", p) for p in pieces) + "".join(gate.flush().values())
    assert out == said


# --- what is no part of a key stays ------------------------------------------------------------------------------

PLACEHOLDERS = ["sk-no-key-required",  # llama.cpp's documented placeholder for its server
                "my-local-vllm-server-key", "not-needed-but-required-by-the-client"]
PROSE = ("The field is required by the client; a local server key and the vllm server answered. "
         "Set no-key-required in the config.")


@pytest.mark.parametrize("secret", PLACEHOLDERS)
def test_the_words_of_a_placeholder_key_are_not_cut_out_of_text(secret: str) -> None:
    """A key of words (a local server's placeholder) has no part looked for: its words are everywhere."""
    assert scrub_text(PROSE, secret) == PROSE
    assert scrub_body(json.dumps({"content": PROSE}).encode(), secret) == json.dumps({"content": PROSE}).encode()
    gate = SecretGate((secret,))
    out = "".join(gate.text("c", PROSE[i:i + 5]) for i in range(0, len(PROSE), 5)) + "".join(gate.flush().values())
    assert out == PROSE


def test_a_few_characters_of_a_key_s_end_in_text_are_kept() -> None:
    """Five to seven characters that end the key (a word, a number) are not enough to tell it: kept."""
    text = f"run {KEY[-5:]} then {KEY[-7:]}."
    assert scrub_text(text, KEY) == text


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudGdhdGUifQ.Xq3v9Lr2Tt8pWm4Zc7Kd1Fb6Ns0Hy5Ge"
GOOGLE = "AIzaSyD4Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz9X"


@pytest.mark.parametrize(("secret", "text"), [
    (JWT, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.abc"),  # another token: every one begins so
    (GOOGLE, "maps key AIzaSyD4xxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),  # another Google key: they all begin AIzaSy
    (KEY, "Your key looks like sk-proj-[redacted] in the logs."),  # a public prefix before a redaction
])
def test_another_key_of_the_same_kind_is_kept_in_text_and_streams(secret: str, text: str) -> None:
    assert scrub_text(text, secret) == text
    for size in (1, 7, len(text)):
        gate = SecretGate((secret,))
        out = "".join(gate.text("c", text[i:i + size]) for i in range(0, len(text), size))
        assert out + "".join(gate.flush().values()) == text, size


def test_the_gate_remembers_only_a_few_characters_it_sent() -> None:
    """The end of a key over two pieces needs the last few characters sent, not the whole window (each piece would
    be scanned again with them)."""
    gate = SecretGate((KEY,))
    for _ in range(200):
        gate.text("c", "word ")
    assert len(gate._sent.get("c", "")) < 8
