"""Wire formats of tool calls: one module per format, the candidate kinds that start them, and the mapping
from mlx-lm tool-parser names and chat templates to our family names."""

from __future__ import annotations

from repair.formats import (
    deepseek,
    gemma4,
    glm45,
    harmony,
    hermes,
    json_block,
    kimi_k2,
    llama3,
    mistral,
    pythonic,
    qwen3_coder,
    text_forms,
)
from repair.markers import Kind, Lit, Name, OneOf, Ws

FAMILIES: tuple[str, ...] = (
    "hermes", "qwen3_coder", "llama3", "pythonic", "mistral", "deepseek_v3", "deepseek_v31", "glm45", "kimi_k2",
    "harmony", "gemma4", "json", "text",
)

_PARSER_TYPES = {
    "json_tools": "hermes", "hermes": "hermes", "qwen": "hermes", "qwen2_5": "hermes", "qwen3": "hermes",
    "qwen3_coder": "qwen3_coder", "qwen3_xml": "qwen3_coder",
    "llama3_json": "llama3", "llama3": "llama3", "llama": "llama3",
    "pythonic": "pythonic", "llama4_pythonic": "pythonic", "lfm2": "pythonic",
    "mistral": "mistral",
    "deepseek_v3": "deepseek_v3", "deepseek_r1": "deepseek_v3", "deepseek_v31": "deepseek_v31",
    "deepseek_v3_1": "deepseek_v31",
    "glm45": "glm45", "glm4_moe": "glm45", "glm47": "glm45",
    "kimi_k2": "kimi_k2",
    "harmony": "harmony", "gpt_oss": "harmony", "openai": "harmony",
    "gemma4": "gemma4", "function_gemma": "gemma4",
}


def family_for_parser_type(name: str) -> str | None:
    """mlx-lm's tokenizer_config "tool_parser_type" (or a vLLM tool-parser name) -> our family, None if unknown."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower().replace("-", "_").replace(".", "_")
    if key in FAMILIES:
        return key
    return _PARSER_TYPES.get(key)


def sniff_template(chat_template: str) -> str | None:
    """The family whose markers a chat template renders, None when it shows none we know."""
    t = chat_template if isinstance(chat_template, str) else ""
    if not t:
        return None
    if "<|channel|>" in t and "<|message|>" in t:
        return "harmony"
    if ("<|tool_call>" in t and "<tool_call|>" in t) or "<start_function_call>" in t:
        return "gemma4"
    if "<arg_key>" in t:
        return "glm45"
    if "<|tool_call_start|>" in t or "<|tool_list_start|>" in t:
        return "pythonic"
    if "<function=" in t and "<parameter=" in t:
        return "qwen3_coder"
    if "<|tool_calls_section_begin|>" in t:
        return "kimi_k2"
    if "tool▁calls▁begin" in t or "tool▁call▁begin" in t:
        return "deepseek_v3" if "```json" in t else "deepseek_v31"
    if "[TOOL_CALLS]" in t:
        return "mistral"
    if "<tool_call>" in t:
        return "hermes"
    if "<|python_tag|>" in t or ("<|start_header_id|>" in t and '"parameters"' in t):
        return "llama3"
    return None


# --- candidate kinds -------------------------------------------------------------------------------------------

_NAME = Name(64, ('"', "'"))
_KEY = OneOf(('"name"', "'name'", '"function"', "'function'", '"tool"', "'tool'", '"tool_name"', "'tool_name'"))
_Q = OneOf(('"', "'"))
_COLON = (Ws(8), Lit(":"), Ws(8))
_P1 = (Lit("{"), Ws(16), _KEY, *_COLON, _Q, _NAME)
_P2 = (Lit("{"), Ws(16), Lit('"type"'), *_COLON, Lit('"function"'), Ws(16), Lit(","), Ws(16), Lit('"function"'),
       *_COLON, Lit("{"), Ws(16), Lit('"name"'), *_COLON, Lit('"'), _NAME)
_P3 = (Lit("{"), Ws(16), OneOf(('"function"', '"tool"')), *_COLON, Lit("{"), Ws(16), Lit('"name"'), *_COLON,
       Lit('"'), _NAME)
_P4 = (Lit("{"), Ws(16), Lit('"type"'), *_COLON, Lit('"function"'), Ws(16), Lit(","), Ws(16), Lit('"name"'), *_COLON,
       Lit('"'), _NAME)
_LIST = (Lit("["), Ws(16))
_FENCE = (Lit("```"), OneOf(json_block.FENCE_LANGS), Ws(16))


def _json_kinds() -> tuple[Kind, ...]:
    kinds = []
    for tag, pat in (("p1", _P1), ("p2", _P2), ("p3", _P3), ("p4", _P4)):
        kinds.append(Kind(f"json_{tag}", pat, json_block.parse_bare, generic=True))
        kinds.append(Kind(f"json_list_{tag}", (*_LIST, *pat), json_block.parse_bare, generic=True))
        kinds.append(Kind(f"fence_{tag}", (*_FENCE, *pat), json_block.parse_fence, line_start=True, generic=True))
        kinds.append(Kind(f"fence_list_{tag}", (*_FENCE, *_LIST, *pat), json_block.parse_fence, line_start=True,
                          generic=True))
    return tuple(kinds)


NATIVE_KINDS: tuple[Kind, ...] = (
    Kind("hermes", (Lit(hermes.OPEN),), hermes.parse),
    Kind("qwen3_function", (Lit(qwen3_coder.FUNC),), qwen3_coder.parse),
    Kind("llama3_tag", (Lit(llama3.TAG),), llama3.parse),
    Kind("pythonic_wrapped", (Lit(pythonic.OPEN),), pythonic.parse_wrapped),
    Kind("mistral", (Lit(mistral.MARK),), mistral.parse),
    Kind("deepseek", (OneOf(deepseek.START_MARKERS),), deepseek.parse),
    Kind("kimi_k2", (OneOf(kimi_k2.START_MARKERS),), kimi_k2.parse),
    Kind("harmony", (OneOf(harmony.START_MARKERS),), harmony.parse),
    Kind("gemma4", (OneOf(gemma4.START_MARKERS),), gemma4.parse),
)

GENERIC_KINDS: tuple[Kind, ...] = (
    *_json_kinds(),
    Kind("pythonic_bare", (Lit("["), Name(64, ("(",))), pythonic.parse_bare, line_start=True, generic=True),
    Kind("text", (OneOf(text_forms.PREFIXES), Ws(4), Name(64, ("(",))), text_forms.parse, generic=True),
)

MODULES = {
    "hermes": hermes, "qwen3_coder": qwen3_coder, "llama3": llama3, "pythonic": pythonic, "mistral": mistral,
    "deepseek_v3": deepseek, "deepseek_v31": deepseek, "glm45": glm45, "kimi_k2": kimi_k2, "harmony": harmony,
    "gemma4": gemma4, "json": json_block, "text": text_forms,
}

__all__ = ["FAMILIES", "GENERIC_KINDS", "MODULES", "NATIVE_KINDS", "family_for_parser_type", "sniff_template"]
