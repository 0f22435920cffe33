"""The request-path JSON codec gives what the standard library gives, or refuses where it would not."""

from __future__ import annotations

import json

import pytest

from router import jsoncodec


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "b": [true, false, null], "c": "\\u00e9\\n", "d": -0.5e-3, "e": {"f": {}}}',
    b'{"seed": 123456789012345678901234567890, "n": 18446744073709551615, "m": -9223372036854775808}',
    b'{"below": -9223372036854775809, "far": -9999999999999999999, "big": 18446744073709551616}',
    b'[-9223372036854775809]',
    '{"text": "emoji \U0001f600 nul \\u0000 rtl \u202e cjk \u4e2d"}'.encode(),
    b'{"lone": "a \\ud800 b"}',
    b'{"a": 1, "a": 2}',
])
def test_loads_matches_the_standard_library(raw: bytes) -> None:
    got = jsoncodec.loads(raw)
    assert got == json.loads(raw) and json.dumps(got) == json.dumps(json.loads(raw))


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e999}', b"{not json", b'{"a": "\xff"}',
                                 b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"9" * 5000 + b"}"])
def test_loads_refuses(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        jsoncodec.loads(raw)


def test_dumps_is_compact_utf8_and_falls_back_for_what_orjson_cannot_encode() -> None:
    doc = {"model": "m", "content": "é \u2028", "n": 1.5}
    assert jsoncodec.dumps(doc) == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    assert jsoncodec.dumps({"big": 10**30, 1: "x"}) == b'{"big":1000000000000000000000000000000,"1":"x"}'
    # a lone surrogate as JSON's escape for it (the one way UTF-8 JSON text holds one), the rest as UTF-8
    assert jsoncodec.dumps({"lone": "\ud800 é \\"}) == b'{"lone":"\\ud800 \xc3\xa9 \\\\"}'
    assert json.loads(jsoncodec.dumps({"lone": "\ud800 é \\"})) == {"lone": "\ud800 é \\"}
    assert json.loads(jsoncodec.dumps_text({"x": object(), "y": "é"}))["y"] == "é"


def test_loads_text_refuses_a_lone_surrogate_and_reads_a_pair() -> None:
    with pytest.raises(jsoncodec.LoneSurrogate):
        jsoncodec.loads_text(b'{"lone": "a \\ud800 b"}')
    with pytest.raises(jsoncodec.LoneSurrogate):
        jsoncodec.loads_text(b'{"n": 123456789012345678901234567890, "lone": "\\udc00"}')
    assert jsoncodec.loads_text(b'{"pair": "\\ud83d\\ude00"}') == {"pair": "\U0001f600"}
    with pytest.raises(ValueError):
        jsoncodec.loads_text(b'{"pair": "\\ud83d\\ude00", "x": nope}')


def test_has_long_int_finds_every_run_of_twenty_digits_and_every_negative_run_of_nineteen() -> None:
    import random
    import re

    long_run = re.compile(rb"[0-9]{20}|-[0-9]{19}")
    rnd = random.Random(7)
    for _ in range(6000):
        raw = bytes(rnd.choice(b"0123456789 ,a-") for _ in range(rnd.randint(0, 90)))
        if rnd.random() < 0.4:
            at, n = rnd.randint(0, len(raw)), rnd.randint(17, 22)
            raw = raw[:at] + rnd.choice([b"", b"-"]) + b"7" * n + raw[at:]
        assert jsoncodec.has_long_int(raw) == (long_run.search(raw) is not None), raw
    many = b"1234567890123456789," * 500  # digits everywhere, no long run: looked at whole after a few places
    assert not jsoncodec.has_long_int(many) and jsoncodec.has_long_int(many + b"1" * 20)
    assert jsoncodec.has_long_int(many + b"-" + b"1" * 19) and not jsoncodec.has_long_int(many + b"-" + b"1" * 18)


def test_an_integer_below_minus_two_to_the_63_stays_an_integer() -> None:
    for text in (b"-9223372036854775809", b"-9999999999999999999"):
        for load in (jsoncodec.loads, jsoncodec.loads_text, jsoncodec.loads_without_surrogates):
            got = load(b'{"n": ' + text + b"}")["n"]
            assert type(got) is int and got == int(text)
