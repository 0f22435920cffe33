"""Whether a model folder holds what mlx-lm loads (its config.json, a JSON object, and model*.safetensors weights):
asked by the worker before it listens (`agentgate engine --model`) and by the router before it starts one (what
/v1/models and `check` say of an engine entry). Standard library only: the router imports it without MLX."""

from __future__ import annotations

import json
from pathlib import Path


def folder_problem(path: Path, model: str) -> str | None:
    """Why an existing `--model` path holds no model mlx-lm loads: its config.json and model*.safetensors weights
    (the names mlx-lm's load reads)."""
    if not path.is_dir():
        return f"not a model folder: {model} is a file"
    if not (path / "config.json").is_file():
        return f"not a model folder: {model} holds no config.json"
    config = config_problem(path / "config.json")
    if config:
        return f"not a model folder: {model} {config}"
    if not any(path.glob("model*.safetensors")):
        return f"not a model folder: {model} holds no model*.safetensors weights"
    return None


def config_problem(path: Path) -> str | None:
    """Why mlx-lm cannot read a model's config.json (it loads it as a JSON object)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return f"config.json is not valid JSON: {exc.msg}: line {exc.lineno} column {exc.colno}"
    except (OSError, UnicodeDecodeError) as exc:
        return f"config.json cannot be read: {exc}"
    return None if isinstance(config, dict) else "config.json is not a JSON object"
