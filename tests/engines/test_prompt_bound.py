"""The length check that refuses a prompt before it is tokenized: it refuses only what cannot fit, and for a
byte-level vocabulary (each character of an entry one byte of text) it refuses all that its entries show cannot."""

from __future__ import annotations

from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from engines.wire import WireError
from engines.worker.templates import ChatFormatter

CONTEXT = 32
SPACES = 8  # the longest entry: eight spaces, "Ġ" * 8 (16 bytes in UTF-8, 8 bytes of text)


class _Counting:
    """A tokenizer that counts the texts it is asked to encode."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.encoded = 0

    def encode(self, text: str, **kwargs: Any) -> Any:
        self.encoded += 1
        return self._tokenizer.encode(text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def _byte_level(added: list[str]) -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    runs = ["Ġ" * n for n in (2, 4, 8)]
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    vocab.update({run: len(vocab) + i for i, run in enumerate(runs)})
    merges = [("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("ĠĠĠĠ", "ĠĠĠĠ")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens(added)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def _formatter(added: list[str]) -> tuple[ChatFormatter, _Counting]:
    counting = _Counting(_byte_level(added))
    return ChatFormatter(counting, max_context=CONTEXT), counting


def test_a_byte_level_prompt_is_refused_once_its_bytes_show_it_cannot_fit() -> None:
    """An entry's characters were counted as UTF-8 bytes ("Ġ" is two), so a prompt up to twice too long was
    tokenized whole before the context refused it. At the limit it is still tokenized, and one byte past it not."""
    formatter, counting = _formatter([])
    assert formatter.bound is not None and formatter.bound.longest == SPACES
    assert len(formatter.encode_text(" " * SPACES * (CONTEXT - 1))) == CONTEXT - 1
    assert len(formatter.encode_text(" " * SPACES * CONTEXT)) == CONTEXT
    seen = counting.encoded
    with pytest.raises(WireError) as err:
        formatter.encode_text(" " * (SPACES * CONTEXT + 1))
    assert err.value.code == "context_length_exceeded" and counting.encoded == seen


@pytest.mark.parametrize("text", [" ", "é", "a", "€ "])
def test_a_prompt_that_fits_is_never_refused_near_the_limit(text: str) -> None:
    """Around the bound, whatever the characters' UTF-8 lengths: a refusal only for a text of more tokens than the
    context holds. An added token is matched in the text as its UTF-8 bytes ("é" * 10 is 20), not as byte-level
    characters (10)."""
    word = "é" * 10
    formatter, counting = _formatter([word])
    assert formatter.bound is not None and formatter.bound.longest == 2 * len(word)
    backend = counting._tokenizer.backend_tokenizer
    for sample in [text * n for n in range(CONTEXT * 4 - 4, CONTEXT * 16 + 4)] + [word * CONTEXT]:
        try:
            formatter.encode_text(sample)
        except WireError:
            assert len(backend.encode(sample).ids) > CONTEXT, sample
