"""The console's per-provider error rate counts each provider's own attempts: a request that failed on `main` and
was answered by its fallback on `backup` showed no error for `main` (only the provider a request ended on was
counted), so a provider failing every request that had a fallback read 0 %."""

from __future__ import annotations

from typing import Any

from tests.console.test_swap import call
from tests.fakes.openai_upstream import Step, completion
from tests.fallback_pair import with_fallback

ASK = [{"role": "user", "content": "hi"}]
BAD_GATEWAY = Step(status=502, json={"error": {"message": "bad gateway"}})


async def providers(url: str) -> dict[str, tuple[int, int, float | None]]:
    status, doc = await call("GET", url + "/ui/api/state")
    assert status == 200, doc
    return {p["name"]: (p["recent_requests"], p["recent_errors"], p["error_rate"]) for p in doc["providers"]}


async def ask(r: Any, model: str) -> int:
    status, _ = await call("POST", r.url + "/v1/chat/completions", json={"model": model, "messages": ASK})
    return int(status)


async def test_a_failure_its_fallback_answered_counts_against_the_provider_that_failed(fakes, router) -> None:
    main, backup, r = await with_fallback(fakes, router)
    main.push(BAD_GATEWAY)
    backup.push(Step(json=completion("from the fallback", "spare")))
    assert await ask(r, "fb") == 200 and len(backup.requests) == 1
    assert await providers(r.url) == {"main": (1, 1, 1.0), "backup": (1, 0, 0.0)}

    main.push(BAD_GATEWAY)  # no fallback: the one failed attempt is counted once, not again as the answer
    assert await ask(r, "m") == 502
    main.push(Step(json=completion("fine", "m")))
    assert await ask(r, "m") == 200
    assert await providers(r.url) == {"main": (3, 2, round(2 / 3, 4)), "backup": (1, 0, 0.0)}


async def test_a_retry_that_succeeded_counts_both_attempts(fakes, router) -> None:
    up = await fakes("main")
    r = await router(f"""
providers:
  main: {{type: openai, base_url: '{up.url}', retries: 1, backoff: {{base: 0.001, max: 0.001}}}}
models:
  - {{name: m, provider: main}}
""")
    up.push(BAD_GATEWAY, Step(json=completion("fine", "m")))
    assert await ask(r, "m") == 200 and len(up.requests) == 2
    assert await providers(r.url) == {"main": (2, 1, 0.5)}


ROUTES = {"/v1/messages": {"model": "fb", "max_tokens": 20, "messages": ASK},
          "/v1/responses": {"model": "fb", "input": "hi"},
          "/v1/chat/completions": {"model": "fb", "messages": ASK, "stream": True}}


async def test_every_route_counts_the_failed_attempt_its_fallback_answered(fakes, router) -> None:
    main, backup, r = await with_fallback(fakes, router)
    for path, body in ROUTES.items():
        main.push(BAD_GATEWAY)
        status, doc = await call("POST", r.url + path, json=body)
        assert status == 200, (path, doc)
    assert len(backup.requests) == len(ROUTES)
    assert await providers(r.url) == {"main": (3, 3, 1.0), "backup": (3, 0, 0.0)}
