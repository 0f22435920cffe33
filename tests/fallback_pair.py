"""Two fake OpenAI upstreams behind one router: `m` on the first alone, `fb` on it with `spare` (the second) to fall
back to."""

from __future__ import annotations

from typing import Any


async def with_fallback(fakes: Any, router: Any) -> tuple[Any, Any, Any]:
    """The two upstreams (`main`, `backup`) and the router."""
    main, backup = await fakes("main"), await fakes("backup")
    r = await router(f"""
providers:
  main: {{type: openai, base_url: '{main.url}', retries: 0}}
  backup: {{type: openai, base_url: '{backup.url}', retries: 0}}
models:
  - {{name: m, provider: main}}
  - {{name: fb, provider: main, fallbacks: [spare]}}
  - {{name: spare, provider: backup}}
""")
    return main, backup, r
