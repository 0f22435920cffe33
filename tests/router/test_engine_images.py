"""Images on the chat route to a local engine: each becomes the short text placeholder the Messages and Responses
routes make (engines read text only); the chat route answered 400 "content part type 'image_url' is not supported
by this engine"."""

from __future__ import annotations

import sys

import pytest

from router.dialects.common import IMAGE_PLACEHOLDER
from tests.router.test_engines import FAKE_SERVER, engines_yaml

PNG = ("data:image/png;base64,"
       "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
ASK = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                    {"type": "image_url", "image_url": {"url": PNG}}]}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_image_reaches_a_local_engine_as_a_placeholder(router, tmp_path, stream):
    """The external engine echoes the last message's content: the text, then the placeholder."""
    cmd = f"{sys.executable} {FAKE_SERVER} --port ${{PORT}} --model ext"
    r = await router(engines_yaml(tmp_path, f"  - {{name: ext, command: '{cmd}', health: /health}}\n"))
    client = r.client()
    if stream:
        text = "".join([c.choices[0].delta.content or "" async for c in
                        await client.chat.completions.create(model="ext", messages=ASK, stream=True)
                        if c.choices])
    else:
        text = (await client.chat.completions.create(model="ext", messages=ASK)).choices[0].message.content or ""
    assert text == f"what is this?\n{IMAGE_PLACEHOLDER}"
