"""`agentgate probe MODEL --base-url http://host:port`, the /v1 left out (as `serve` prints the address): every
server answers 404 for /chat/completions and the probe stopped with `HTTP 404: 404: Not Found`, which reads as an
unknown model; it now says the base URL probably lacks its /v1."""

from __future__ import annotations

from tests.probe.test_probe import cli


async def test_a_404_at_a_base_url_without_v1_says_so(fakes, capsys) -> None:
    up = await fakes()
    bare = up.url.removesuffix("/v1")
    assert await cli("probe", "m", "--base-url", bare, "--turns", "2") == 2
    out, err = capsys.readouterr()
    hint = f"(--base-url has no /v1: did you mean {bare}/v1?)"
    assert hint in err and hint in out


async def test_a_404_at_a_base_url_with_v1_has_no_such_hint(fakes, router, capsys) -> None:
    up = await fakes()
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}'}}\nmodels:\n"
                     "  - {name: m, provider: lab}\n")
    assert await cli("probe", "unknown-model", "--base-url", r.url + "/v1", "--turns", "2") == 2
    out, err = capsys.readouterr()
    assert "unknown-model" in err and "has no /v1" not in out + err
