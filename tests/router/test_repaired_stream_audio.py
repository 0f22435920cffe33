"""A chat stream with tools declared (the repaired path) and `modalities: ["text", "audio"]`: the upstream's
`delta.audio` pieces (id, transcript, data, expires_at) never reached the client; the stream ended with an empty
message and `finish_reason: "stop"`, where the non-stream answer to the same request carries `message.audio`."""

from __future__ import annotations

import pytest

from tests.fakes.openai_upstream import Step, chunk, completion
from tests.router.one_tool import CFG, TOOLS

MSGS = [{"role": "user", "content": "weather in Paris?"}]
AUDIO = {"id": "audio_1", "data": "UklGRgAAAAA=", "transcript": "It is sunny in Paris.", "expires_at": 1900000000}


@pytest.mark.parametrize("interval", [0.0, 0.01], ids=["one read", "piece by piece"])
async def test_streamed_audio_reaches_the_client(fakes, router, interval):
    up = await fakes()
    whole = completion(None, "m")
    whole["choices"][0]["message"]["audio"] = AUDIO
    up.push(Step(json=whole))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None}),
                      chunk("m", {"audio": {"id": AUDIO["id"], "transcript": "It is sunny"}}),
                      chunk("m", {"audio": {"transcript": " in Paris."}}),
                      chunk("m", {"audio": {"data": AUDIO["data"]}}),
                      chunk("m", {"audio": {"expires_at": AUDIO["expires_at"]}}),
                      chunk("m", {}, "stop")], interval=interval))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw = dict(model="m", messages=MSGS, tools=TOOLS, modalities=["text", "audio"],
              audio={"voice": "alloy", "format": "pcm16"})
    resp = await c.chat.completions.create(**kw)
    assert resp.choices[0].message.audio.transcript == AUDIO["transcript"]  # the whole answer keeps it
    transcript, data, ids = "", "", set()
    async for ch in await c.chat.completions.create(**kw, stream=True):
        for choice in ch.model_dump()["choices"]:
            audio = choice["delta"].get("audio") or {}
            transcript += audio.get("transcript") or ""
            data += audio.get("data") or ""
            if audio.get("id"):
                ids.add(audio["id"])
    assert (transcript, data, ids) == (AUDIO["transcript"], AUDIO["data"], {AUDIO["id"]})
