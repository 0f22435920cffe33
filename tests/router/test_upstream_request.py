"""The request sent upstream under a target's own model name keeps the client's bytes where that is certain."""

from __future__ import annotations

import json

import pytest

from router.upstream.base import UpstreamRequest, with_model


def _request(raw: bytes) -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", json.loads(raw), raw)


@pytest.mark.parametrize("raw", [
    b'{"model":"alias","messages":[{"role":"user","content":"hi \\"model\\": \\"alias\\""}]}',
    b'{"messages": [], "model" :\t"alias", "stream": false}',
    '{"model": "alias", "messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode(),
])
def test_the_model_name_is_replaced_in_the_client_bytes(raw: bytes) -> None:
    out = _request(raw).for_model("provider/model-1")
    assert out.raw is not None and out.raw == raw.replace(b'"alias"', b'"provider/model-1"', 1)
    assert json.loads(out.raw) == out.body == {**json.loads(raw), "model": "provider/model-1"}


@pytest.mark.parametrize("raw", [
    b'{"model":"alias","metadata":{"model":"alias"}}',  # written twice: which one is the top level's is unknown
    b'{"\\u006dodel":"alias","metadata":{"model":"alias"}}',  # the top-level key escaped
    b'{"model":"alias","x":"\\u006d"}',  # an escaped letter of "model" somewhere
    b'{"model":"\\u0061lias"}',  # the value not as the encoder writes it
    b'{"model":"alias","role":"model"}',
])
def test_the_body_is_encoded_when_the_bytes_cannot_be_kept_for_certain(raw: bytes) -> None:
    out = _request(raw).for_model("m2")
    assert out.raw is None and out.body == {**json.loads(raw), "model": "m2"}


def test_with_model_needs_a_string_on_both_sides() -> None:
    assert with_model(b'{"model":1}', 1, "m") is None
    assert with_model(b'{"model":"a"}', "a", None) is None
    assert with_model(b'{"model":"a"}', "a", "b\u00e9") == '{"model":"b\u00e9"}'.encode()
