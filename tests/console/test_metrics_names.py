"""The names `/metrics` exposes against those README.md's Operations section and deploy/ (alert rules, dashboard)
name. Every counter and histogram series also came with a `<name>_created` gauge (prometheus_client's default),
named nowhere and doubling what a scrape stores; `/metrics` now exposes only the documented series."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from router.metrics import EngineStats, Metrics

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')
SUFFIXES = ("_bucket", "_count", "_sum")


def exposed(text: str) -> dict[str, set[str]]:
    """Metric name -> the label names its samples carry (a histogram under its own name as well)."""
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels = match.group(1), set(LABEL.findall(match.group(2) or "")) - {"le"}
        names.setdefault(name, set()).update(labels)
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                names.setdefault(name.removesuffix(suffix), set()).update(labels)
    return names


def readme_metrics() -> dict[str, set[str]]:
    """The names (and the labels in braces) README.md's **Metrics.** paragraph gives; `_queue_depth` and the
    like continue `agentgate_engine_`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("**Metrics.**")
    paragraph = text[start:text.index("\n\n", start)]
    named: dict[str, set[str]] = {}
    for name, labels in re.findall(r"`(agentgate_\w+|_\w+)(?:\{([^}]*)\})?`", paragraph):
        full = name if name.startswith("agentgate_") else "agentgate_engine" + name
        named[full] = {part.split("=")[0].strip() for part in labels.split(",") if part.strip()}
    return named


def every_series() -> str:
    """A registry with a series of every metric, as a router with an engine, keys and traffic has them."""
    m = Metrics()
    series = m.request_series("demo", "up", "chat", 200)
    series.count(1)
    series.duration(0.2)
    series.model.tokens("prompt", 3)
    series.model.ttft(0.1)
    m.record_repair("demo", "repaired", ["single_quotes"], ["no_call"])
    m.child(m.upstream_errors, "up", "status_5xx").inc()
    m.child(m.in_flight, "up").set(0)
    m.child(m.queued, "up").set(0)
    m.retried("up", "upstream")
    m.child(m.fallbacks, "demo", "other").inc()
    m.set_breaker("up", "closed")
    m.follow_engines(lambda: {"local": "ready"})
    m.track_engine("local")
    m.engine_load.labels("local").observe(3)
    m.engine_stats.update("local", EngineStats(running=1, max_batch=8, cache_bytes=1024, blas="openblas"))
    m.record_key("key0", 5, 2)
    m.record_reload(True)
    return m.render().decode()


def test_every_name_the_readme_gives_is_exposed_with_its_labels() -> None:
    names, documented = exposed(every_series()), readme_metrics()
    assert len(documented) > 20
    missing = {n: labels for n, labels in documented.items() if n not in names or not labels <= names[n]}
    assert missing == {}, {n: sorted(names.get(n, {"<absent>"})) for n in missing}


def test_every_name_deploy_uses_is_exposed() -> None:
    names = exposed(every_series())
    used = {n for f in (ROOT / "deploy").rglob("*") if f.is_file() and f.suffix in (".yml", ".yaml", ".json")
            for n in re.findall(r"agentgate_\w+", f.read_text(encoding="utf-8"))}
    assert used and sorted(used - set(names)) == []


def test_every_series_is_prefixed_and_none_is_a_created_twin() -> None:
    names = exposed(every_series())
    assert all(n.startswith("agentgate_") for n in names)
    assert sorted(n for n in names if n.endswith("_created")) == []


async def test_the_scrape_of_a_serving_router_has_no_created_series(fakes, router) -> None:
    up = await fakes()
    r = await router(f"providers:\n  up: {{type: openai, base_url: '{up.url}'}}\nmodels:\n"
                     "  - {name: demo, provider: up}\n")
    await r.client().chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    async with aiohttp.ClientSession() as http, http.get(r.url + "/metrics") as resp:
        assert resp.status == 200
        names = exposed(await resp.text())
    assert "agentgate_requests_total" in names and "agentgate_request_duration_seconds" in names
    assert all(n.startswith("agentgate_") for n in names)
    assert sorted(n for n in names if n.endswith("_created")) == []
