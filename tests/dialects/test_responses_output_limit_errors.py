"""An upstream's 400 about the output limit, on the Responses route: the limit goes upstream as chat's `max_tokens`
(or `max_completion_tokens`), and the upstream's message named that field, one the Responses client never sent.
OpenAI bounds `max_output_tokens` per model only (no bound is documented for the API), so the value is the
upstream's to judge: its refusal names `max_output_tokens` now, in its message and `param`, streamed or not."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG
from tests.fakes.openai_upstream import Step

OPENAI_SAYS = ("max_tokens is too large: 100000. This model supports at most 16384 completion tokens, whereas you "
               "provided 100000.")
SAID = [
    (OPENAI_SAYS, "max_output_tokens is too large: 100000. This model supports at most 16384 completion tokens, "
                  "whereas you provided 100000."),
    ("max_completion_tokens is too large: 100000. This model supports at most 16384 completion tokens, whereas you "
     "provided 100000.", "max_output_tokens is too large: 100000. This model supports at most 16384 completion "
                         "tokens, whereas you provided 100000."),
    ("'max_tokens' or 'max_completion_tokens' must be at most 8192, got 100000.",
     "'max_output_tokens' must be at most 8192, got 100000."),
    ("max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-x",
     "max_output_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-x"),
]


def _refusal(message: str) -> Step:
    return Step(status=400, json={"error": {"message": message, "type": "invalid_request_error",
                                            "param": "max_tokens", "code": None}})


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        doc: dict[str, Any] = await resp.json()
        return resp.status, doc


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("said", "told"), SAID)
async def test_an_upstream_refusing_the_limit_names_max_output_tokens(fakes, router, stream: bool, said: str,
                                                                    told: str) -> None:
    up = await fakes()
    up.push(_refusal(said))
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi", "max_output_tokens": 100000, "stream": stream})
    assert status == 400, doc
    err = doc["error"]
    assert (err["message"], err["param"]) == (told, "max_output_tokens"), err
    assert up.requests[0].body["max_tokens"] == 100000


async def test_another_upstream_error_is_left_as_it_was(fakes, router):
    up = await fakes()
    up.push(_refusal("temperature is out of range"))
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi", "max_output_tokens": 100})
    assert status == 400
    assert (doc["error"]["message"], doc["error"]["param"]) == ("temperature is out of range", None)


async def test_a_limit_the_client_never_sent_is_not_named_as_theirs(fakes, router) -> None:
    """An entry's or a provider's default limit is not the client's to change: its refusal as it came."""
    up = await fakes()
    up.push(_refusal(OPENAI_SAYS))
    r = await router(CFG.format(url=up.url))
    status, doc = await _post(r.url, {"model": "m", "input": "hi"})
    assert status == 400
    assert doc["error"]["message"] == OPENAI_SAYS, doc


def test_a_message_telling_the_fields_apart_is_not_renamed() -> None:
    from router.dialects.responses import ResponsesRequest, limit_named
    from router.errors import ApiError

    said = "max_tokens is not supported with this model. Use max_completion_tokens instead."
    req = ResponsesRequest.__new__(ResponsesRequest)
    req.echo = {"max_output_tokens": 100}
    assert limit_named(ApiError(400, said, "invalid_request_error"), req).message == said
