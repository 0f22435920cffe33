"""The one-tool chat set-up the repaired-stream field tests share: a `get_weather` tool and a router config with
one OpenAI-shaped provider (`lab`, no retries) serving model `m` (format the config with the fake's `url`)."""

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
