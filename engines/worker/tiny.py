"""Tiny offline models for tests, demos and benches.

`build_tiny_model` writes a random-weight qwen3 checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json) that `mlx_lm.load` reads like any other model. The byte-level BPE tokenizer is trained
offline on a small built-in corpus and its chat template supports tools, tool results and `<think>`.

With `script`, the model is "scripted": embeddings are untied, every layer's `o_proj` and `down_proj` are zeroed
(so the logits depend only on the current token) and a successor chain is written into `lm_head`. Greedy decoding
then emits exactly `script` followed by EOS, whatever the prompt. The chain starts at the token every generation
prompt ends with (the newline after `<|im_start|>assistant`); the script's pieces are added to the vocabulary as
whole tokens so that no token occurs twice in the chain.

Model specs (`resolve_model_spec`): `tiny:demo`, `tiny:random`, `tiny:random:<seed>`, `tiny:script=<text>`.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILD_VERSION = "1"
TOOL_FORMATS: tuple[str, ...] = ("hermes", "qwen3_coder")
DEMO_SCRIPT = "Hello from the agentgate tiny demo model. It has random weights and always says this."

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MARKER_TOKENS: tuple[str, ...] = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)
EOS_TOKEN = "<|im_end|>"
GENERATION_TAIL = "<|im_start|>assistant\n"

_CORPUS = """\
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
You are a helpful assistant. Answer the question, then stop. The user asked about the weather in Paris.
The weather today is sunny with a light breeze. Tomorrow it will rain in the morning and clear up later.
Please read the file, run the tests and report what failed. The build finished without errors.
def add(a: int, b: int) -> int:
    return a + b

class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

for i in range(10):
    print(i, i * i)

import json, os, sys
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {}}}}
{"path": "src/main.py", "content": "print('hello world')", "line": 42, "ok": true, "items": [1, 2, 3]}
<tool_call>
{"name": "list_files", "arguments": {"directory": "."}}
</tool_call>
<tool_response>
["README.md", "setup.py", "tests/"]
</tool_response>
<think>
The user wants the weather, so I should call the tool first and then answer.
</think>
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 -1 2024-01-01 12:30:00
Punctuation: ( ) [ ] { } < > = + - * / % ! ? . , ; : ' " ` ~ @ # $ ^ & | \\ _
Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.
Error: file not found. Warning: deprecated option. Info: server started on port 8080.
"""

_TOOL_CALL_HERMES = (
    "{%- for tool_call in (message.tool_calls or []) %}"
    "{%- set fn = tool_call.function if tool_call.function is defined else tool_call %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + fn.name + '\", \"arguments\": ' }}"
    "{%- if fn.arguments is string %}{{- fn.arguments }}{%- else %}{{- fn.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
)
_TOOL_CALL_QWEN3_CODER = (
    "{%- for tool_call in (message.tool_calls or []) %}"
    "{%- set fn = tool_call.function if tool_call.function is defined else tool_call %}"
    "{{- '\\n<tool_call>\\n<function=' + fn.name + '>\\n' }}"
    "{%- if fn.arguments is mapping %}{%- for k, v in fn.arguments.items() %}"
    "{{- '<parameter=' + k + '>\\n' }}{%- if v is string %}{{- v }}{%- else %}{{- v | tojson }}{%- endif %}"
    "{{- '\\n</parameter>\\n' }}"
    "{%- endfor %}{%- endif %}"
    "{{- '</function>\\n</tool_call>' }}"
    "{%- endfor %}"
)
_TOOLS_INSTRUCTIONS = {
    "hermes": (
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\\n<tool_call>\\n"
        '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    ),
    "qwen3_coder": (
        "For each function call, use this format:\\n<tool_call>\\n<function=example_function_name>\\n"
        "<parameter=example_parameter>\\nvalue\\n</parameter>\\n</function>\\n</tool_call>"
    ),
}
# mlx-lm tool parser names (tokenizer_config `tool_parser_type`) for each supported format.
_PARSER_TYPES = {"hermes": "json_tools", "qwen3_coder": "qwen3_coder"}


def chat_template(tool_format: str = "hermes") -> str:
    """The Jinja chat template of the tiny models (ChatML with tools, tool results and `<think>`)."""
    if tool_format not in TOOL_FORMATS:
        raise ValueError(f"unknown tool format {tool_format!r}; choose from {', '.join(TOOL_FORMATS)}")
    calls = _TOOL_CALL_HERMES if tool_format == "hermes" else _TOOL_CALL_QWEN3_CODER
    return (
        "{%- if tools %}"
        "{{- '<|im_start|>system\\n' }}"
        "{%- if messages and messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
        "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
        "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
        "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
        "{{- '\\n</tools>\\n\\n" + _TOOLS_INSTRUCTIONS[tool_format] + "<|im_end|>\\n' }}"
        "{%- elif messages and messages[0].role == 'system' %}"
        "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- for message in messages %}"
        "{%- if message.role == 'system' and loop.first %}"
        "{%- elif message.role in ['user', 'system', 'developer'] %}"
        "{{- '<|im_start|>' + message.role + '\\n' + (message.content or '') + '<|im_end|>\\n' }}"
        "{%- elif message.role == 'assistant' %}"
        "{{- '<|im_start|>assistant\\n' }}"
        "{%- if message.reasoning_content %}"
        "{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}"
        "{%- endif %}"
        "{{- message.content or '' }}" + calls + "{{- '<|im_end|>\\n' }}"
        "{%- elif message.role == 'tool' %}"
        "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
        "{{- '\\n<tool_response>\\n' + (message.content or '') + '\\n</tool_response>' }}"
        "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}"
        "{{- '<|im_start|>assistant' }}"
        "{%- if enable_thinking is defined and enable_thinking is false %}"
        "{{- '\\n<think>\\n</think>' }}"
        "{%- endif %}"
        "{{- '\\n' }}"
        "{%- endif %}"
    )


@dataclass(frozen=True)
class TinyShape:
    """Architecture of a tiny model; the defaults keep builds and tests fast."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_target: int = 512
    max_context: int = 4096


def _train_tokenizer(vocab_target: int) -> Any:  # a tokenizers.Tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    tok.add_tokens(list(MARKER_TOKENS))
    return tok


def split_script(script: str, *, limit: int) -> list[str]:
    """Split `script` into at most `limit` distinct, non-blank pieces that concatenate back to `script`."""
    if not script:
        raise ValueError("script must not be empty")
    if not script.isascii():
        raise ValueError("scripts must be ASCII (byte-level BPE would decode other characters differently)")
    marker_re = "(" + "|".join(re.escape(m) for m in MARKER_TOKENS) + ")"
    chunks: list[str] = []
    for part in re.split(marker_re, script):
        if not part:
            continue
        if part in MARKER_TOKENS:
            chunks.append(part)
        else:
            chunks.extend(re.findall(r"\s*\S+\s*|\s+", part))
    # Whitespace-only pieces would change how every prompt tokenizes; glue them to a neighbour.
    pieces: list[str] = []
    for chunk in chunks:
        if pieces and (not chunk.strip() or not pieces[-1].strip()):
            pieces[-1] += chunk
        else:
            pieces.append(chunk)
    while True:
        pieces = _make_unique(pieces)
        if len(pieces) <= limit:
            return pieces
        pieces = ["".join(pieces[i : i + 2]) for i in range(0, len(pieces), 2)]


def _make_unique(pieces: list[str]) -> list[str]:
    out: list[str] = []
    used: set[str] = set()
    i = 0
    while i < len(pieces):
        cur = pieces[i]
        i += 1
        while cur in used and i < len(pieces):
            cur += pieces[i]
            i += 1
        if cur in used:  # a repeat at the very end: fold it into the previous piece
            used.discard(out[-1])
            cur = out.pop() + cur
        out.append(cur)
        used.add(cur)
    if len(set(out)) != len(out):
        return _make_unique(out)
    return out


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    *,
    script: str | None = None,
    seed: int = 0,
    tool_format: str = "hermes",
    shape: TinyShape | None = None,
) -> Path:
    """Write a tiny qwen3 checkpoint into `out_dir` (created if needed) and return its path."""
    import mlx.core as mx
    from mlx_lm.models import qwen3
    from tokenizers import AddedToken

    shape = shape or TinyShape()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = chat_template(tool_format)

    tok = _train_tokenizer(shape.vocab_target)
    tail_id = tok.encode(GENERATION_TAIL).ids[-1]
    pieces: list[str] = []
    if script is not None:
        pieces = split_script(script, limit=shape.hidden_size - 1)
        new = [p for p in pieces if p not in MARKER_TOKENS]
        tok.add_tokens([AddedToken(p, special=False, normalized=False) for p in new])
    eos_id = tok.token_to_id(EOS_TOKEN)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    vocab_size = ((vocab + 63) // 64) * 64

    config = {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "hidden_size": shape.hidden_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "intermediate_size": shape.intermediate_size,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "head_dim": shape.hidden_size // shape.num_attention_heads,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size,
        "max_position_embeddings": shape.max_context,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "eos_token_id": eos_id,
        "bos_token_id": None,
        "torch_dtype": "float32",
    }
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    if script is not None:
        chain = [tail_id, *(tok.token_to_id(p) for p in pieces), eos_id]
        if None in chain or len(set(chain)) != len(chain):
            raise ValueError(f"script pieces do not map to distinct tokens: {pieces!r}")
        _write_chain(model, chain, shape.hidden_size, seed)
    mx.eval(model.parameters())
    model.save_weights(str(out / "model.safetensors"))

    tok.save(str(out / "tokenizer.json"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": shape.max_context,
        "eos_token": EOS_TOKEN,
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": template,
        "tool_parser_type": _PARSER_TYPES[tool_format],
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": EOS_TOKEN, "pad_token": "<|endoftext|>"}, indent=2)
    )
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": eos_id}, indent=2))
    meta = {"builder": "agentgate.engines.tiny", "version": BUILD_VERSION, "script": script, "seed": seed,
            "tool_format": tool_format, "random_weights": True}
    (out / "agentgate_tiny.json").write_text(json.dumps(meta, indent=2))
    return out


def _write_chain(model: Any, chain: list[int], hidden: int, seed: int) -> None:  # model: qwen3.Model
    """Zero the residual writers and encode `chain[i] -> chain[i + 1]` in the embeddings and lm_head."""
    import mlx.core as mx

    for layer in model.layers:
        layer.self_attn.o_proj.weight = mx.zeros_like(layer.self_attn.o_proj.weight)
        layer.mlp.down_proj.weight = mx.zeros_like(layer.mlp.down_proj.weight)
    embed = model.model.embed_tokens.weight
    head = model.lm_head.weight
    key = mx.random.key(seed + 1)
    head = mx.random.normal(head.shape, key=key) * 0.02
    basis = mx.eye(hidden)
    for i, (tok, nxt) in enumerate(itertools.pairwise(chain)):
        embed[tok] = basis[i]
        head[nxt] = basis[i] * 4.0
    model.model.embed_tokens.weight = embed
    model.lm_head.weight = head


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where built tiny models are kept: $AGENTGATE_CACHE/tiny or ~/.cache/agentgate/tiny (see `cache_base`)."""
    from engines.worker.settings import cache_base

    return cache_base(env) / "tiny"


CACHE_ADVICE = "set AGENTGATE_CACHE to a writable folder"


class TinyCacheError(OSError):
    """A tiny model could not be written into its cache folder; the message says which and what to do, in one line."""


def _target(root: Path, script: str | None, seed: int, tool_format: str, shape: TinyShape) -> Path:
    """The content-addressed folder of one tiny model under `root`."""
    ident = json.dumps([BUILD_VERSION, script, seed, tool_format, shape.__dict__], sort_keys=True)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return root / f"{'scripted' if script is not None else 'random'}-{digest}"


def ensure_tiny_model(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    script: str | None = None,
    seed: int = 0,
    tool_format: str = "hermes",
    shape: TinyShape | None = None,
) -> Path:
    """Build a tiny model once into a content-addressed folder under `cache_dir` and return its path."""
    shape = shape or TinyShape()
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = _target(root, script, seed, tool_format, shape)
    if (target / "agentgate_tiny.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        build_tiny_model(staging, script=script, seed=seed, tool_format=tool_format, shape=shape)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "agentgate_tiny.json").exists():  # lost a race only if the winner finished
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_demo_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The demo model of the shipped config: scripted to greet, built once and cached on disk."""
    return ensure_tiny_model(cache_dir, script=DEMO_SCRIPT)


def is_tiny_spec(spec: str) -> bool:
    return spec.startswith("tiny:")


TINY_SPECS = "tiny:demo, tiny:random[:seed] or tiny:script=<text>"


def tiny_spec_problem(spec: str) -> str | None:
    """Why `spec` (a `tiny:...` spec) names no tiny model, else None; nothing is built."""
    rest = spec[len("tiny:") :]
    if rest == "demo" or rest == "random" or rest.startswith("script="):
        return None
    if rest.startswith("random:"):
        try:
            int(rest.partition(":")[2] or "0")
        except ValueError:
            return f"bad seed in model spec {spec!r} (use {TINY_SPECS})"
        return None
    return f"unknown tiny model spec {spec!r} (use {TINY_SPECS})"


def _build_args(spec: str) -> tuple[str | None, int]:
    """The script and seed a valid `tiny:...` spec builds with (`tiny_spec_problem` is None for it)."""
    rest = spec[len("tiny:") :]
    if rest == "demo":
        return DEMO_SCRIPT, 0
    if rest == "random" or rest.startswith("random:"):
        return None, int(rest.partition(":")[2] or "0")
    if rest.startswith("script="):
        raw = rest[len("script=") :]
        return raw.encode("ascii", "backslashreplace").decode("unicode_escape"), 0
    raise AssertionError(spec)  # pragma: no cover - tiny_spec_problem refuses every other spec


def resolve_model_spec(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Map a `tiny:...` spec to a built model folder; any other spec (path or HF id) is returned unchanged.

    `tiny:demo` the demo model, `tiny:random` / `tiny:random:<seed>` random weights,
    `tiny:script=<text>` a scripted model (escapes such as `\\n` in `<text>` are decoded). A cache folder that cannot
    hold the model is a TinyCacheError saying so in one line.
    """
    if not is_tiny_spec(spec):
        return spec
    problem = tiny_spec_problem(spec)
    if problem:
        raise ValueError(problem)
    script, seed = _build_args(spec)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    try:
        return str(ensure_tiny_model(root, script=script, seed=seed))
    except OSError as exc:  # (the advice only where the folder is what failed: not a full disk or an I/O error)
        where = f": {exc.filename}" if exc.filename else ""
        advice = f"; {CACHE_ADVICE}" if exc.errno in _FOLDER_ERRNOS else ""
        raise TinyCacheError(f"cannot build {spec} in {root}: {exc.strerror or exc}{where}{advice}") from exc


_FOLDER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOENT})


def tiny_cache_problem(spec: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why the model of `spec` (a valid `tiny:...` spec) cannot be built in the cache folder of a process with
    environment `env` (default: this one's), in one line that says what to do; None when it is built already or the
    folder can be written. Asks the file system only: nothing is created."""
    script, seed = _build_args(spec)
    root = cache_root(env)
    try:
        if (_target(root, script, seed, "hermes", TinyShape()) / "agentgate_tiny.json").exists():
            return None
        problem = _unwritable(root)
    except OSError as exc:  # a folder on the way this process may not enter (Python < 3.13's exists() raises)
        problem = f"{exc.filename or root}: {exc.strerror or exc}"
    return f"cannot build {spec}: its cache folder {root} cannot be created ({problem}); {CACHE_ADVICE}" \
        if problem else None


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be created (or written in, when it exists): the nearest existing folder on its path is a
    file, or this process may not write there."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder"
            return None if os.access(part, os.W_OK | os.X_OK) else f"{part} is not writable"
    return None  # pragma: no cover - the root folder exists
