"""Output decoding with a real tokenizer: `<think>` splitting, stop strings across tokens, held-back markers."""

from __future__ import annotations

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer

from engines.worker.decoding import OutputDecoder


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


def test_text_that_only_looks_like_a_marker_is_kept(tokenizer):
    assert decode(tokenizer, "a <thin b <thi", stop=["<thinking>"]) == ("a <thin b <thi", "", False)
