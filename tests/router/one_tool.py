"""The one-tool chat set-up the repaired-stream field tests share: a `get_weather` tool and a router config with
one OpenAI-shaped provider (`lab`, no retries) serving model `m` (format the config with the fake's `url`, or
`config(url, repair)` with a repair policy), and the question asked."""

from __future__ import annotations

from typing import Any

TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""
MSGS = [{"role": "user", "content": "weather in Paris?"}]


def config(url: str, repair: str = "") -> str:
    """CFG for the fake at `url`, with model `m`'s repair policy (a YAML flow mapping) when given."""
    return CFG.format(url=url) if not repair else CFG.format(url=url).replace(
        "provider: lab}", f"provider: lab, repair: {repair}}}")
