"""Output decoding with a real tokenizer: `<think>` splitting, stop strings across tokens, held-back markers, and
whether the prompt starts the output as reasoning."""

from __future__ import annotations

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from engines.worker.decoding import OutputDecoder
from engines.worker.templates import ChatFormatter


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return load_tokenizer(tiny_models["random"])


def decode(tokenizer, text: str, **kw) -> tuple[str, str, bool]:
    dec = OutputDecoder(tokenizer.detokenizer, think=("<think>", "</think>"), **kw)
    pieces = []
    for tok in tokenizer.encode(text, add_special_tokens=False):
        pieces += dec.add_token(tok)
        if dec.stopped:
            break
    pieces += dec.finish()
    content = "".join(p.text for p in pieces if p.kind == "content")
    reasoning = "".join(p.text for p in pieces if p.kind == "reasoning")
    return content, reasoning, dec.stopped


def test_think_block_becomes_reasoning(tokenizer):
    assert decode(tokenizer, "<think>\nplan it\n</think>\n\nThe answer.") == ("The answer.", "plan it", False)


def test_prompt_that_opens_think_starts_in_reasoning(tokenizer):
    assert decode(tokenizer, "still thinking</think>done", reasoning=True) == ("done", "still thinking", False)


def test_stop_string_split_across_tokens(tokenizer):
    content, _, stopped = decode(tokenizer, "print(i, i * i)\nError: file not found", stop=["Error:"])
    assert stopped and content == "print(i, i * i)\n"


def test_the_decoder_tells_which_stop_string_matched(tokenizer):
    """The stop string that ended the text (the worker reports it as `stop_reason`): across tokens, with text after
    it in the same token run, the longest of several that end at the same place, none without a match."""
    for stop, word in ((["Error:", "zzz"], "Error:"), (["or:", "Error:"], "Error:"), (["i * i", "Error"], "i * i")):
        dec = OutputDecoder(tokenizer.detokenizer, think=("<think>", "</think>"), stop=stop)
        for tok in tokenizer.encode("print(i, i * i)\nError: file not found", add_special_tokens=False):
            dec.add_token(tok)
        dec.finish()
        assert dec.stopped and dec.stop_word == word
    dec = OutputDecoder(tokenizer.detokenizer, stop=["zzz"])
    for tok in tokenizer.encode("no stop here", add_special_tokens=False):
        dec.add_token(tok)
    dec.finish()
    assert not dec.stopped and dec.stop_word is None


def test_text_that_only_looks_like_a_marker_is_kept(tokenizer):
    assert decode(tokenizer, "a <thin b <thi", stop=["<thinking>"]) == ("a <thin b <thi", "", False)


@pytest.mark.parametrize("text", [
    "plain words, then more words.\n\n  indented line\t tab",
    "unicode: é ☃ 😀 naïve café — “quotes” 中文",
    "  leading and trailing spaces  ",
    "<think>not a marker here</think> <tool_call>{\"a\": 1}</tool_call>",
])
def test_a_decoder_without_markers_or_stops_gives_what_the_state_machine_gives(tokenizer, text):
    """With no `<think>` pair and no stop string the state machine is skipped; token by token, the pieces are the
    ones it would have produced."""
    quick = OutputDecoder(tokenizer.detokenizer)
    machine = OutputDecoder(tokenizer.detokenizer)
    machine._plain = False  # the state machine's path, for comparison
    assert quick._plain
    for tok in tokenizer.encode(text, add_special_tokens=False):
        assert quick.add_token(tok) == machine.add_token(tok)
    assert quick.finish() == machine.finish()
    assert not quick.stopped and not machine.stopped


OPENS_THINK = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")


@pytest.mark.parametrize(("template", "text", "reasoning"), [
    (None, "hi", False),
    (None, "quoting <think> in a message", False),  # a tag in the conversation is not the answer's
    (OPENS_THINK, "hi", True),  # a generation prompt that opens the block (DeepSeek-R1, QwQ templates)
    (OPENS_THINK, "quoting </think> in a message", True),
])
def test_output_starts_as_reasoning_only_when_the_generation_prompt_opens_it(tiny_models, template, text, reasoning):
    tok = load_tokenizer(tiny_models["random"])
    if template is not None:
        tok._tokenizer.chat_template = template
    assert ChatFormatter(tok).render_chat([{"role": "user", "content": text}], None).reasoning is reasoning
