"""A known tools list found by its opening bytes (the last used list first) gives what the search for the
`"tools"` key gave: the same body, or the whole parse, on bodies built to confuse either."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router import jsoncodec
from router.toolcache import KnownTools, ToolIndexCache


def tool(name: str, extra: int = 0) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": "d" * extra, "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}


LISTS = [[tool("a", 60), tool("b")], [tool("a", 60), tool("b"), tool("c")], [tool("z", 90)]]
INDEX = ToolIndexCache().get([tool("x")])


def _by_key_search(known: KnownTools, raw: bytes) -> dict[str, Any] | None:
    """The parse as it was before: candidates from the search for the key only."""
    for start in known._starts(raw):
        entry = known._by_head.get(raw[start:start + 96])
        if entry is None or not raw.startswith(entry.raw, start):
            continue
        return known._parsed(raw, start, entry)
    return None


_text = st.text(alphabet=st.sampled_from(list('ab "\\:[]{},tools\n')), max_size=12)
_value = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | _text | st.sampled_from(range(len(LISTS))),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                          st.sampled_from(["tools", "x", "messages"]), inner, max_size=3), max_leaves=8)


def _encode(node: Any, sep: str) -> str:
    """JSON text where an int in range(len(LISTS)) at a "tools" key stands for that known list."""
    if isinstance(node, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{sep}" + (json.dumps(LISTS[v]) if k == "tools" and type(v) is int
                                                           and 0 <= v < len(LISTS) else _encode(v, sep))
                              for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + f",{sep}".join(_encode(v, sep) for v in node) + "]"
    return json.dumps(node)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["model", "messages", "tools", "x", "stream"]), _value, max_size=5),
       st.sampled_from(["", " ", "\n  "]), st.lists(st.sampled_from(range(len(LISTS))), min_size=1, max_size=3),
       st.sampled_from(["", "garbage", "dup"]))
def test_the_last_used_list_first_gives_what_the_key_search_gave(doc: dict[str, Any], sep: str, learned: list[int],
                                                                   tail: str) -> None:
    known = KnownTools()
    for i in learned:
        tools = json.loads(json.dumps(LISTS[i]))
        known.learn(json.dumps({"tools": tools}).encode(), tools, INDEX)
    text = _encode(doc, sep)
    if tail == "garbage":
        text = text[:-1]
    elif tail == "dup" and text != "{}":
        text = text[:-1] + f',"tools":{sep}' + json.dumps(LISTS[learned[0]]) + "}"
    raw = text.encode()
    old = _by_key_search(known, raw)
    new = known.parse(raw)
    try:
        whole = jsoncodec.loads_text(raw)
    except ValueError:
        whole = None
    if old is not None:
        assert new == old
    if new is not None:
        assert new == whole and list(new) == list(whole)


def test_the_last_used_list_is_tried_first_and_a_miss_falls_back_to_the_key_search():
    known = KnownTools()
    for tools in LISTS[:2]:
        known.learn(json.dumps({"tools": tools}).encode(), tools, INDEX)
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": LISTS[0]}).encode()
    body = known.parse(raw)  # the last learned list (LISTS[1]) is not in it: found by the key
    assert body == json.loads(raw) and body["tools"] is LISTS[0]
    spaced = json.dumps({"model": "m", "tools": LISTS[0], "stream": False}, indent=2).encode()
    assert known.parse(spaced) is None or known.parse(spaced) == json.loads(spaced)
    known.learn(json.dumps({"tools": LISTS[2]}).encode(), LISTS[2], INDEX)  # now the last used one
    nested = json.dumps({"meta": {"tools": LISTS[2]}, "tools": LISTS[0]}).encode()
    found = known.parse(nested)  # the nested copy is no top-level value: passed over, the top-level list found
    assert found == json.loads(nested) and found is not None and found["tools"] is LISTS[0]
    assert _by_key_search(known, nested) is None  # the key search alone stopped at the nested copy
    later = json.dumps({"messages": [], "tools": LISTS[2], "stream": True}).encode()
    assert known.parse(later) == json.loads(later) and known._latest_start(later, known._by_head[
        next(reversed(known._by_head))]) > 0


def test_a_nested_copy_of_the_last_used_list_costs_one_parse_more(monkeypatch: Any) -> None:
    """The last used list found first inside another value (a tool call's input, say) is parsed once: the key
    search passes over that place and finds the top-level list (two parses, not three)."""
    from router import toolcache

    known = KnownTools()
    known.learn(json.dumps({"tools": LISTS[0]}).encode(), LISTS[0], INDEX)
    raw = json.dumps({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "a", "arguments": {"tools": LISTS[0]}}}]}],
        "tools": LISTS[0]}).encode()
    parses = 0
    loads = jsoncodec.loads_text

    def counted(data: bytes) -> Any:
        nonlocal parses
        parses += 1
        return loads(data)

    monkeypatch.setattr(toolcache.jsoncodec, "loads_text", counted)
    body = known.parse(raw)
    assert body == json.loads(raw) and body is not None and body["tools"] is LISTS[0]
    assert parses == 2
