"""router/openapi.yaml describes the API that is actually served: every route is documented, and real
responses (successes and errors) validate against the documented schemas."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from router.app import create_app, start
from router.config import parse_config
from tests.fakes.openai_upstream import Step, completion
from tests.reliability.support import request, sse_payloads
from tests.reliability.test_faults import closed_port

SPEC_PATH = Path(__file__).resolve().parents[2] / "router" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
SPEC_URI = "urn:agentgate:openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource(contents=SPEC, specification=DRAFT202012))
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
KEY = "sk-docs-test"


def validate(instance: Any, schema_name: str) -> None:
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(instance)


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = REGISTRY.resolver().lookup(SPEC_URI + node["$ref"]).contents
    return node


def test_document_is_openapi_3_1_and_every_reference_resolves():
    assert re.fullmatch(r"3\.1\.\d+", SPEC["openapi"])
    assert SPEC["info"]["title"] and SPEC["info"]["version"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/ready",
                 "/metrics", "/v1/messages", "/v1/responses"):
        assert path in SPEC["paths"], path
    refs = re.findall(r'"\$ref": "(#[^"]+)"', json.dumps(SPEC))
    assert refs
    for ref in set(refs):
        REGISTRY.resolver().lookup(SPEC_URI + ref)  # raises if it does not resolve
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in ("parameters", "summary", "description", "servers"):
                continue
            assert method in METHODS, (path, method)
            assert op.get("operationId") and op.get("responses"), (path, method)
            for status, resp in op["responses"].items():
                assert status == "default" or re.fullmatch(r"[1-5]\d\d", status), (path, status)
                assert resolve(resp).get("description"), (path, method, status)
    ids = [op["operationId"] for item in SPEC["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))
    assert SPEC["paths"]["/health"]["get"]["security"] == []


@pytest.fixture
async def served(content_upstreams):
    up = await content_upstreams()
    config = parse_config(f"""
server: {{api_keys: [{KEY}], max_body_mb: 0.01}}
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, max_concurrency: 1, max_queue: 0,
        timeouts: {{first_byte: 0.5}}, breaker: {{failures: 1000}}}}
  dead: {{type: openai, base_url: 'http://127.0.0.1:{closed_port()}/v1', retries: 0,
         breaker: {{failures: 1, cooldown: 600}}}}
models:
  - {{name: m, provider: lab, aliases: [m-alias], description: documented}}
  - {{name: gone, provider: dead}}
""", env={})
    app = create_app(config)
    running = await start(app)
    yield app, running.url, up
    await running.stop()


def test_every_served_route_is_documented():
    app = create_app(parse_config("", env={}))
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        canonical = route.resource.canonical
        assert canonical in SPEC["paths"], f"{route.method} {canonical} is served but not in router/openapi.yaml"
        assert route.method.lower() in SPEC["paths"][canonical], f"{route.method} {canonical} is not documented"


async def test_real_responses_match_the_documented_schemas(served):
    _, url, up = served
    auth = {"Authorization": f"Bearer {KEY}"}
    chat = {"model": "m", "messages": [{"role": "user", "content": "ok:1 schema"}]}
    validate(chat, "ChatCompletionRequest")
    async with aiohttp.ClientSession() as s:
        ans = await request(s, "GET", url + "/health")
        assert ans.status == 200 and ans.json() == {"status": "ok"}
        ans = await request(s, "GET", url + "/ready", headers=auth)
        validate(ans.json(), "Ready")
        ans = await request(s, "GET", url + "/v1/models", headers=auth)
        validate(ans.json(), "ModelList")
        ans = await request(s, "POST", url + "/v1/chat/completions", json_body=chat, headers=auth)
        assert ans.status == 200
        validate(ans.json(), "ChatCompletion")
        ans = await request(s, "POST", url + "/v1/chat/completions", json_body={**chat, "stream": True},
                            headers=auth)
        assert ans.status == 200 and ans.headers["content-type"].startswith("text/event-stream")
        payloads = sse_payloads(ans.body)
        assert payloads[-1] == b"[DONE]"
        for p in payloads[:-1]:
            validate(json.loads(p), "ChatCompletionChunk")
        up.push(Step(json={"id": "cmpl", "object": "text_completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}))
        body = {"model": "m", "prompt": "x"}
        validate(body, "CompletionRequest")
        ans = await request(s, "POST", url + "/v1/completions", json_body=body, headers=auth)
        validate(ans.json(), "Completion")
        up.push(Step(json={"object": "list", "model": "m", "data": [{"object": "embedding", "index": 0,
                                                                     "embedding": [0.5]}]}))
        body = {"model": "m", "input": "x"}
        validate(body, "EmbeddingRequest")
        ans = await request(s, "POST", url + "/v1/embeddings", json_body=body, headers=auth)
        validate(ans.json(), "EmbeddingList")
        ans = await request(s, "GET", url + "/openapi.yaml", headers=auth)
        assert ans.status == 200 and ans.body == SPEC_PATH.read_bytes()
        assert ans.headers["content-type"].startswith("application/yaml")


async def test_error_responses_match_the_documented_error_schema(served):
    app, url, up = served
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "ok:1 x"}]}).encode()
    op = SPEC["paths"]["/v1/chat/completions"]["post"]["responses"]
    async with aiohttp.ClientSession() as s:
        cases: list[tuple[int, bytes, dict[str, str], str]] = [
            (400, b"{nope", auth, "/v1/chat/completions"),
            (400, b'{"model": 1}', auth, "/v1/chat/completions"),
            (401, chat, {}, "/v1/chat/completions"),
            (401, b"", {}, "/openapi.yaml"),
            (404, b'{"model": "unknown-model"}', auth, "/v1/chat/completions"),
            (413, b'{"model": "m", "pad": "' + b"x" * 20000 + b'"}', auth, "/v1/chat/completions"),
            (502, json.dumps({"model": "gone", "messages": []}).encode(), auth, "/v1/chat/completions"),
            (503, json.dumps({"model": "gone", "messages": []}).encode(), auth, "/v1/chat/completions"),
            (504, json.dumps({"model": "m", "messages": [{"role": "user", "content": "stall x"}]}).encode(),
             auth, "/v1/chat/completions"),
        ]
        for status, body, headers, path in cases:
            method = "GET" if path == "/openapi.yaml" else "POST"
            ans = await request(s, method, url + path, data=body or None, headers=headers)
            assert ans.status == status, (status, ans.status, ans.body[:200])
            validate(ans.json(), "Error")
            if path == "/v1/chat/completions":
                assert str(status) in op, f"{status} is answered but not documented"
            if status == 503:
                assert "retry-after" in ans.headers
        served_paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
        for path, schema in (("/v1/messages", "AnthropicError"), ("/v1/messages/count_tokens", "AnthropicError"),
                             ("/v1/responses", "Error")):
            if path not in served_paths:
                continue
            for status, body, headers in ((401, b"{}", {}), (400, b"{nope", auth), (413, b"x" * 20000, auth)):
                ans = await request(s, "POST", url + path, data=body, headers=headers)
                assert ans.status == status, (path, status, ans.status)
                validate(ans.json(), schema)
                assert str(status) in SPEC["paths"][path]["post"]["responses"], (path, status)
        # 429: the only slot is held
        up.push(Step(json=completion("held", "m"), gate=up.release))
        held = asyncio.create_task(request(s, "POST", url + "/v1/chat/completions", data=chat, headers=auth))
        await up.wait_requests(len(up.requests) + 1)
        ans = await request(s, "POST", url + "/v1/chat/completions", data=chat, headers=auth)
        assert ans.status == 429 and "retry-after" in ans.headers
        validate(ans.json(), "Error")
        up.release.set()
        assert (await held).status == 200
