"""Wire formats of tool calls: one module per format, each declaring itself once (`FORMAT`: the families it
produces, the candidate kinds that start its calls, other servers' parser names for it, its chat-template
markers). Every table here is derived from `REGISTRY`; adding a format is one module and one entry below."""

from __future__ import annotations

from repair.formats import (
    command_r,
    deepseek,
    functionary,
    gemma4,
    glm45,
    harmony,
    hermes,
    invoke,
    json_block,
    kimi_k2,
    kimi_k3,
    llama3,
    mistral,
    pythonic,
    qwen3_coder,
    text_forms,
    tool_tags,
    wrapped,
)
from repair.formats.spec import Format
from repair.markers import Kind

# Order matters only where two kinds can begin at the same character: the first that matches wins.
REGISTRY: tuple[Format, ...] = (
    hermes.FORMAT, qwen3_coder.FORMAT, llama3.FORMAT, pythonic.FORMAT, mistral.FORMAT, deepseek.FORMAT,
    invoke.FORMAT, glm45.FORMAT, kimi_k2.FORMAT, kimi_k3.FORMAT, harmony.FORMAT, gemma4.FORMAT, wrapped.FORMAT,
    json_block.FORMAT, text_forms.FORMAT, tool_tags.FORMAT, command_r.FORMAT,
    functionary.FORMAT,
)

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f for fmt in REGISTRY for f in fmt.families))
NATIVE_KINDS: tuple[Kind, ...] = tuple(k for fmt in REGISTRY for k in fmt.kinds if not k.generic)
GENERIC_KINDS: tuple[Kind, ...] = tuple(k for fmt in REGISTRY for k in fmt.kinds if k.generic)
_PARSER_TYPES: dict[str, str] = {name: family for fmt in REGISTRY for name, family in fmt.aliases}
_TEMPLATES = sorted((t for fmt in REGISTRY for t in fmt.templates), key=lambda t: t.rank)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_")


def family_for_parser_type(name: str) -> str | None:
    """A tool-parser name (mlx-lm's "tool_parser_type", vLLM's or SGLang's parser names) -> our family, None if
    unknown."""
    if not isinstance(name, str):
        return None
    key = _key(name)
    if key in FAMILIES:
        return key
    return _PARSER_TYPES.get(key)


def sniff_template(chat_template: str) -> str | None:
    """The family whose markers a chat template renders, None when it shows none we know."""
    t = chat_template if isinstance(chat_template, str) else ""
    if not t:
        return None
    for tpl in _TEMPLATES:
        if all(m in t for m in tpl.markers):
            return tpl.family
    return None


__all__ = ["FAMILIES", "GENERIC_KINDS", "NATIVE_KINDS", "REGISTRY", "family_for_parser_type", "sniff_template"]
