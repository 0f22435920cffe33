"""How a wire-format module declares itself: the families it produces, the candidate kinds that start its calls,
the tool-parser names other servers use for it, and the chat-template markers that identify it. The tables in
`repair.formats` are derived from these declarations."""

from __future__ import annotations

from dataclasses import dataclass

from repair.markers import Kind


@dataclass(frozen=True)
class Template:
    """A chat template renders `family` when it contains every marker; lower `rank` is tried first (a template
    that also contains a more generic marker must be recognised by its specific one)."""

    family: str
    markers: tuple[str, ...]
    rank: int = 50


@dataclass(frozen=True)
class Format:
    families: tuple[str, ...]
    kinds: tuple[Kind, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()   # (parser name, family): vLLM / SGLang / mlx-lm names
    templates: tuple[Template, ...] = ()


def aliases(family: str, *names: str) -> tuple[tuple[str, str], ...]:
    return tuple((n, family) for n in names)
