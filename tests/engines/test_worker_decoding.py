"""Output decoding with a real tokenizer: `<think>` splitting, stop strings across tokens, held-back markers,
whether the prompt starts the output as reasoning, and the spaces each kind of mlx-lm detokenizer gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlx_lm.tokenizer_utils import (
    BPEStreamingDetokenizer,
    NaiveStreamingDetokenizer,
    SPMStreamingDetokenizer,
)
from mlx_lm.tokenizer_utils import load as load_tokenizer

from engines.worker.decoding import Detokenizers, OutputDecoder
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


def test_reasoning_continued_keeps_the_space_it_starts_with(tokenizer):
    """A continued message's reasoning (`continue_final_message` on a prefill that left `<think>` open) goes on
    from the prefill's last word: its first space is text, where after a generation prompt's `<think>` it is
    not."""
    def split(text: str, **kw: Any) -> tuple[str, str]:
        dec = OutputDecoder(Detokenizers(tokenizer).new(), think=("<think>", "</think>"), **kw)
        pieces = [p for tok in tokenizer.encode(text, add_special_tokens=False) for p in dec.add_token(tok)]
        pieces += dec.finish()
        return tuple("".join(p.text for p in pieces if p.kind == kind) for kind in ("content", "reasoning"))

    assert split(" more of it</think>done", reasoning=True, continued=True) == ("done", " more of it")
    assert split(" more of it</think>done", reasoning=True) == ("done", "more of it")
    assert split("text <think>\nplan</think>done", continued=True) == ("text done", "plan")


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


# A SentencePiece-style vocabulary; "\n" is a byte token for the SPM decoders, a plain one for Metaspace.
SPM_VOCAB = ["<unk>", "<s>", "</s>", "<0x0A>", "\n", "\u2581a", "\u2581The", "\u2581capital", "\u2581is",
             "\u2581Paris", ".", "\u2581", "\u2581\u2581\u2581", "return", "\u2581x"]


def spm_tokenizer(folder: Path, decoder: str) -> Any:
    """A tokenizer whose tokenizer.json has the decoder that makes mlx-lm pick each detokenizer: `strip`
    (Llama 2's, SPM that trims), `fuse` (Gemma's, SPM that does not), `metaspace` (the naive one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPM_VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    spm = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    tok.decoder = {
        "strip": decoders.Sequence([*spm, decoders.Strip(" ", 1, 0)]),
        "fuse": decoders.Sequence(spm),
        "metaspace": decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True),
    }[decoder]
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return load_tokenizer(folder)


def streamed(detokenizers: Detokenizers, ids: list[int]) -> str:
    dec = OutputDecoder(detokenizers.new())
    pieces = [p for tok in ids for p in dec.add_token(tok)] + dec.finish()
    return "".join(p.text for p in pieces)


@pytest.mark.parametrize(("decoder", "kind"), [
    ("strip", SPMStreamingDetokenizer),
    ("fuse", SPMStreamingDetokenizer),
    ("metaspace", NaiveStreamingDetokenizer),
])
def test_every_detokenizer_keeps_the_spaces_the_model_generates(tmp_path: Path, decoder: str, kind: type) -> None:
    """The generated text is what the tokens add to the prompt's text: the space that starts it, and the
    indentation after a newline (where the naive detokenizer starts decoding again), stay."""
    tok = spm_tokenizer(tmp_path / decoder, decoder)
    assert type(tok.detokenizer) is kind
    ids = {t: i for i, t in enumerate(SPM_VOCAB)}
    newline = "\n" if decoder == "metaspace" else "<0x0A>"
    prompt = [ids[t] for t in ("\u2581The", "\u2581capital", "\u2581is")]
    generated = [ids[t] for t in ("\u2581Paris", ".", newline, "\u2581\u2581\u2581", "return", "\u2581x")]
    expected = tok.decode(prompt + generated)[len(tok.decode(prompt)):]
    assert expected == " Paris.\n   return x"
    assert streamed(Detokenizers(tok), generated) == expected


def test_the_bpe_detokenizer_keeps_the_space_that_starts_the_text(tokenizer: Any) -> None:
    assert type(tokenizer.detokenizer) is BPEStreamingDetokenizer
    generated = tokenizer.encode(" is sunny today.\n    return a + b", add_special_tokens=False)
    assert streamed(Detokenizers(tokenizer), generated) == " is sunny today.\n    return a + b"
