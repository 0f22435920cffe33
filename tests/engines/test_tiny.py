"""Tiny offline models: loadable by mlx-lm, scripted ones emit exactly their script, specs resolve and cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlx_lm import generate, load

from engines.worker.tiny import (
    TinyCacheError,
    build_tiny_model,
    ensure_tiny_model,
    resolve_model_spec,
    split_script,
    tiny_cache_problem,
)
from tests.engines.conftest import SCRIPTS, WEATHER_TOOL

CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
    [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ],
]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripted_model_emits_its_script_whatever_the_prompt(tiny_models, name):
    model, tokenizer = load(str(tiny_models[name]))
    for messages in CONVERSATIONS:
        for thinking in (True, False):
            prompt = tokenizer.apply_chat_template(messages, tools=[WEATHER_TOOL], add_generation_prompt=True,
                                                   enable_thinking=thinking)
            assert generate(model, tokenizer, prompt, max_tokens=80) == SCRIPTS[name]


def test_random_model_loads_with_template_and_tool_parser(tiny_models):
    path = tiny_models["random"]
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "qwen3" and config["hidden_size"] == 64 and config["num_hidden_layers"] == 2
    _, tokenizer = load(str(path))
    assert tokenizer.has_thinking and tokenizer.has_tool_calling
    assert tokenizer.init_kwargs["tool_parser_type"] == "json_tools"
    text = tokenizer.apply_chat_template(CONVERSATIONS[2], tools=[WEATHER_TOOL], add_generation_prompt=True,
                                         tokenize=False)
    assert '"name": "get_weather"' in text and "<tool_response>\nsunny\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_builds_are_deterministic(tmp_path):
    a = build_tiny_model(tmp_path / "a", script="same words same words", seed=3)
    b = build_tiny_model(tmp_path / "b", script="same words same words", seed=3)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


@pytest.mark.parametrize("script", ["a a a a a", "x\n\ny\n\n", "<tool_call>a</tool_call><tool_call>a</tool_call>",
                                    " ".join(f"w{i % 7}" for i in range(300))])
def test_split_script_pieces_are_distinct_and_complete(script):
    pieces = split_script(script, limit=63)
    assert "".join(pieces) == script
    assert len(set(pieces)) == len(pieces) <= 63
    assert all(p.strip() for p in pieces)


def test_resolve_model_spec(tmp_path):
    assert resolve_model_spec("mlx-community/Qwen3-4B-4bit", tmp_path) == "mlx-community/Qwen3-4B-4bit"
    demo = resolve_model_spec("tiny:demo", tmp_path)
    assert resolve_model_spec("tiny:demo", tmp_path) == demo  # built once, then reused
    scripted = resolve_model_spec("tiny:script=Hi\\nthere", tmp_path)
    assert json.loads((tmp_path / scripted / "agentgate_tiny.json").read_text())["script"] == "Hi\nthere"
    with pytest.raises(ValueError):
        resolve_model_spec("tiny:unknown", tmp_path)


def test_qwen3_coder_variant_renders_xml_tool_calls(tmp_path):
    path = build_tiny_model(tmp_path / "coder", tool_format="qwen3_coder")
    _, tokenizer = load(str(path))
    assert tokenizer.init_kwargs["tool_parser_type"] == "qwen3_coder"
    text = tokenizer.apply_chat_template(CONVERSATIONS[2], tools=[WEATHER_TOOL], tokenize=False)
    assert "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>" in text


def test_scripts_must_be_ascii():
    with pytest.raises(ValueError):
        split_script("café", limit=10)


def test_a_cache_folder_that_cannot_be_written_is_said_before_building(tmp_path, monkeypatch):
    """Checked without writing (the router asks it of every tiny entry it lists): a folder on the way that is a
    file, or one this process may not write in; a model built already needs no writing."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {"AGENTGATE_CACHE": str(blocker / "cache")}
    assert tiny_cache_problem("tiny:random:4", env) == (
        f"cannot build tiny:random:4: its cache folder {blocker}/cache/tiny cannot be created ({blocker} is a file, "
        "not a folder); set AGENTGATE_CACHE to a writable folder")
    env = {"AGENTGATE_CACHE": str(tmp_path / "cache")}
    assert tiny_cache_problem("tiny:random:4", env) is None
    assert not (tmp_path / "cache").exists()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    assert tiny_cache_problem("tiny:random:4", env) == (
        f"cannot build tiny:random:4: its cache folder {tmp_path}/cache/tiny cannot be created ({tmp_path} is not "
        "writable); set AGENTGATE_CACHE to a writable folder")
    ensure_tiny_model(tmp_path / "cache" / "tiny", seed=4)
    assert tiny_cache_problem("tiny:random:4", env) is None  # built: only read from now on


def test_a_build_the_cache_cannot_hold_fails_in_one_line(tmp_path):
    """A folder that could not be written when the worker started (or filled up since) failed with the file
    system's bare error, logged with its traceback."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(TinyCacheError) as err:
        resolve_model_spec("tiny:random:4", blocker / "tiny")
    assert str(err.value).startswith(f"cannot build tiny:random:4 in {blocker}/tiny: ") and "AGENTGATE_CACHE" in str(
        err.value)


def test_a_folder_on_the_way_that_cannot_be_entered_is_said_not_raised(tmp_path, monkeypatch):
    """Python before 3.13 raises PermissionError from `Path.exists()` under a folder this process may not enter
    (the router asks every listing): it is the problem said, not an exception out of /v1/models or start-up."""
    locked = tmp_path / "locked"
    real_exists = Path.exists

    def exists(self: Path, *args: object, **kw: object) -> bool:
        if self.is_relative_to(locked) and self != locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", exists)
    problem = tiny_cache_problem("tiny:random:4", {"AGENTGATE_CACHE": str(locked / "inner" / "c")})
    assert problem is not None and "Permission denied" in problem and "AGENTGATE_CACHE" in problem, problem


def test_a_full_disk_is_not_blamed_on_the_folder(tmp_path, monkeypatch):
    import errno

    import engines.worker.tiny as tiny

    def full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(tiny, "ensure_tiny_model", full)
    with pytest.raises(TinyCacheError) as err:
        resolve_model_spec("tiny:random:4", tmp_path / "tiny")
    assert "No space left on device" in str(err.value) and "AGENTGATE_CACHE" not in str(err.value)
