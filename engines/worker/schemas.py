"""Whether the JSON Schemas of a chat request (its tools' parameters, a json_schema response format) are JSON Schema
at all: each is checked against the metaschema of the draft its `$schema` names (2020-12 when it names none), and one
that fails is a 400 in OpenAI's words ("Invalid schema for function 'x': 5 is not of type 'object'.", here with
where in the schema), as OpenAI and vLLM
refuse it. A schema naming no draft passes under draft 7's metaschema too.

Only that is refused. A valid schema the grammar compiler cannot follow (a lookbehind, a `$ref` cycle, nesting past
what it walks) is the client's right: its reply is decoded unconstrained (`engines.worker.guided`). So is one too
deep for the metaschema check itself (it cannot tell), and `format` is an annotation here, as 2020-12 makes it:
a `pattern` is ECMA-262, which Python's `re` would misjudge.

Type names JSON Schema does not have but tool schemas are written with (`str`, `int`, `float`, `bool`, `dict`:
`repair.schema.TYPE_ALIASES`) are taken, as mlx_lm.server, llama.cpp and Ollama take them, and read as the JSON
types they stand for (repair and the call grammar map them alike); a type name that stands for none is refused.

A check costs milliseconds (14 ms for a tool of 15 properties under 2020-12's metaschema) and agents send the same
tools on every turn: a tools list's answer is kept with its index (`tools_checked`), and a response format's by the
schema's JSON text. Blocking: run it off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from collections import OrderedDict
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from engines.wire import WireError
from engines.worker.errors import bad_request
from engines.worker.params import ChatRequest
from repair import ToolIndex
from repair.schema import normalise_schema

MAX_CACHED = 256
MAX_CACHED_CHARS = 64 << 10  # a schema's JSON text past this is checked each time (the cache stays under 16 MiB)
MAX_DETAIL = 200  # characters of jsonschema's message (it quotes the offending value whole)

_lock = threading.Lock()  # the cache and the metaschema validators, shared by the executor's threads
_answers: OrderedDict[str, str | None] = OrderedDict()
_metas: dict[type[Validator], Validator] = {}


_CHECKED = "worker_schema_problem"  # the ToolIndex memo entry: the tools list's first refused schema, or None


async def check_schemas(req: ChatRequest, index: ToolIndex | None, loop: asyncio.AbstractEventLoop) -> None:
    """A 400 for the first of the request's schemas that is not valid JSON Schema. A tools list is checked once
    (its answer kept in `index`, the list's reused index), off the event loop."""
    if req.tools:
        memo = index.memo if index is not None else {}
        if _CHECKED not in memo:
            memo[_CHECKED] = await loop.run_in_executor(None, tools_problem, req.tools)
        refused: tuple[str, str] | None = memo[_CHECKED]
        if refused is not None:  # (a new error each time: one raised again keeps every traceback it had)
            raise WireError(400, refused[0], "invalid_function_parameters", param=refused[1])
    fmt = req.response_format
    if fmt is not None and fmt.get("type") == "json_schema":
        spec = fmt["json_schema"]
        problem = await loop.run_in_executor(None, schema_problem, spec.get("schema"))
        if problem is not None:
            raise bad_request(f"Invalid schema for response_format '{spec['name']}': {problem}",
                              param="response_format")


def tools_problem(tools: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The message and param of the 400 for the first tool whose parameters are not valid JSON Schema, or None."""
    for i, tool in enumerate(tools):
        fn = tool["function"]
        problem = schema_problem(fn.get("parameters"))
        if problem is not None:
            return f"Invalid schema for function '{fn['name']}': {problem}", f"tools[{i}].function.parameters"
    return None


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not valid JSON Schema (OpenAI's wording), or None: it is, or the check cannot tell."""
    if not isinstance(schema, dict):
        return None
    try:
        key = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    with _lock:
        if key in _answers:
            _answers.move_to_end(key)
            return _answers[key]
        answer = _check(schema)
        if len(key) <= MAX_CACHED_CHARS:
            _answers[key] = answer
            while len(_answers) > MAX_CACHED:
                _answers.popitem(last=False)
    return answer


def _check(schema: dict[str, Any]) -> str | None:
    problem = _meta_problem(schema)
    if problem is None:
        return None
    mapped, notes = normalise_schema(schema)  # `str`, `int`, `float`: read as the types they stand for
    if mapped != schema and not any("unknown type" in note for note in notes) and _meta_problem(mapped) is None:
        return None
    return problem


def _meta_problem(schema: dict[str, Any]) -> str | None:
    try:
        error = best_match(_meta(_draft(schema)).iter_errors(schema))
        if error is not None and "$schema" not in schema and _meta(jsonschema.Draft7Validator).is_valid(schema):
            return None  # draft 7's (a tuple's `items` list), which tools generated for it send without naming it
    except RecursionError:  # nested past what the check walks: left to the grammar compiler
        return None
    if error is None:
        return None
    detail = error.message if len(error.message) <= MAX_DETAIL else error.message[:MAX_DETAIL] + "..."
    where = f" (at '{'.'.join(map(str, error.path))}')" if error.path else ""
    return f"{detail}{where}."


def _draft(schema: dict[str, Any]) -> type[Validator]:
    """The validator class of the draft `schema` names (2020-12 when none, or one unknown)."""
    default = jsonschema.Draft202012Validator
    if not isinstance(schema.get("$schema"), str):
        return default
    with warnings.catch_warnings():  # an unknown `$schema` warns, and is checked as 2020-12
        warnings.simplefilter("ignore", DeprecationWarning)
        cls: type[Validator] = jsonschema.validators.validator_for(schema, default=default)
    return cls


def _meta(cls: type[Validator]) -> Validator:
    if cls not in _metas:
        _metas[cls] = cls(cls.META_SCHEMA)
    return _metas[cls]
