"""The internal form is read once and forgivingly: what is well formed is kept, strays are ignored, nothing raises."""

from router.chat_types import ChatRequest, Completion, ToolFragment, Usage, parse_chunk


def test_a_chunk_gives_choice_zero_and_its_usage() -> None:
    call = {"index": 1, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}
    chunk = parse_chunk({"choices": [{"index": 0, "delta": {"reasoning": "hm", "content": "hi",
                                                            "tool_calls": [call, "junk"]},
                                      "finish_reason": "stop", "stop_reason": "###"},
                                     {"index": 1, "delta": {"content": "other choice"}}],
                         "usage": {"prompt_tokens": 3}})
    (part,) = chunk.parts
    assert (part.reasoning, part.content, part.finish_reason, part.stop_reason) == ("hm", "hi", "stop", "###")
    assert part.tool_deltas == (call,)  # the upstream's own dicts, for the repairer
    assert part.tool_calls == (ToolFragment(1, "call_1", "f", '{"a"'),)
    assert chunk.usage == {"prompt_tokens": 3}


def test_stray_shapes_are_ignored() -> None:
    assert parse_chunk({"choices": "x", "usage": 5}).parts == ()
    assert parse_chunk({"choices": [{"index": 1, "delta": {"content": "x"}}]}).parts == ()
    (part,) = parse_chunk({"choices": [{"delta": "x", "finish_reason": 7}]}).parts
    assert (part.content, part.finish_reason, part.tool_calls) == ("", None, ())
    assert ToolFragment.parse({"index": "2", "id": 5, "function": "f"}) == ToolFragment(0)


def test_a_completion_gives_choice_zero() -> None:
    done = Completion.parse({"choices": [{"message": {
        "content": [{"type": "text", "text": "a"}, {"text": "b"}, "c"], "reasoning_content": "r",
        "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{}"}}, {"function": None}, 3]},
        "finish_reason": "tool_calls"}], "usage": {"completion_tokens": 2}})
    assert (done.text, done.reasoning, done.finish_reason) == ("ab", "r", "tool_calls")
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [("x", "f", "{}")]
    assert Completion.parse({}).tool_calls == ()


def test_usage_and_request_view() -> None:
    assert Usage.parse([1]) is None
    assert Usage.parse({"prompt_tokens": 5, "completion_tokens": "2", "prompt_tokens_details": {"cached_tokens": 4},
                        "completion_tokens_details": None}) == Usage(5, 0, 4, 0)
    req = ChatRequest.of({"model": "m", "tools": [{"type": "function"}], "tool_choice": 3,
                          "parallel_tool_calls": False})
    assert (req.model, req.stream, len(req.tools), req.tool_choice, req.parallel_tool_calls) == \
        ("m", False, 1, None, False)
