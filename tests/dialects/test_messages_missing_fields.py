"""A Messages request without one of its required fields (`model`, `messages`, and `max_tokens` but on
count_tokens) is Anthropic's 400 for it, worded as Anthropic words it: "<field>: Field required"."""

from __future__ import annotations

import pytest

from tests.dialects.conftest import CFG, anthropic_refused

ASK = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("field", ["model", "messages", "max_tokens"])
async def test_a_missing_field_is_anthropic_s_field_required(fakes, router, field: str) -> None:
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {k: v for k, v in {"model": "m", "max_tokens": 16, "messages": ASK}.items() if k != field}
    assert await anthropic_refused(r.url + "/v1/messages", body) == {"type": "invalid_request_error",
                                                            "message": f"{field}: Field required"}
    if field != "max_tokens":  # (count_tokens takes none)
        assert await anthropic_refused(r.url + "/v1/messages/count_tokens", body) == {
            "type": "invalid_request_error", "message": f"{field}: Field required"}
    assert not up.requests
