"""The console in a real browser: headless Chromium (Debian's package) driven over CDP, asserting what a person
would see — the browser's key prompt, engines, providers, models with why, requests as they happen, the repair
inspector, the live log, the Unload button and a probe's per-turn chart — and that the page loads nothing from
elsewhere and logs no script or CSP error.

Chromium and the router run together in a fresh network namespace with only `lo` up (`unshare --net`): the test
re-runs itself there. Where namespaces are not available it runs in place, Chromium still limited to 127.0.0.1 by
its flags. Skipped when Chromium is not installed (tests/prepare.sh installs it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import aiohttp
import pytest

from tests.console.cdp import Browser, chromium_path
from tests.console.test_swap import STATS_ENGINE
from tests.fakes.openai_upstream import Step, completion
from tests.waiting import in_own_thread

ROOT = Path(__file__).resolve().parents[2]
IN_NETNS = "AGENTGATE_TEST_IN_NETNS"
KEY = "sk-console-browser-0123456789"
PROVIDER_KEY = "sk-provider-browser-abcdefghijklmnop"
TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
    "required": ["path"]}}}]
BROKEN = "Let me look. <tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py', 'limit': '5',}}"

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (tests/prepare.sh)")


def _netns_usable() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"], capture_output=True,
                              timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NETNS = os.environ.get(IN_NETNS) != "1" and _netns_usable()


BROWSER_TESTS = ["test_console_in_a_browser", "test_inspector_follows_the_ring_in_a_browser"]


@pytest.fixture(scope="module")
async def in_netns() -> subprocess.CompletedProcess[str]:
    """The browser tests, run once together (one interpreter and pytest start for both) in a network namespace of
    their own, with only the loopback interface."""
    here = Path(__file__).relative_to(ROOT)
    script = ("ip link set lo up && exec " + " ".join([
        sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
        *(f"{here}::{test}" for test in BROWSER_TESTS)]))
    return await in_own_thread(partial(subprocess.run, ["unshare", "--net", "--", "sh", "-c", script], cwd=ROOT,
                                       env={**os.environ, IN_NETNS: "1"}, capture_output=True, text=True,
                                       timeout=240, check=False), timeout=250)


@pytest.mark.skipif(not NETNS, reason="no network namespaces here: the browser test runs in place")
@pytest.mark.parametrize("test", BROWSER_TESTS)
async def test_console_in_a_browser_without_network(test: str, in_netns: subprocess.CompletedProcess[str]) -> None:
    """Each browser test passed in the network namespace."""
    passed = f"PASSED {Path(__file__).relative_to(ROOT)}::{test}"
    assert passed in in_netns.stdout.splitlines(), in_netns.stdout[-6000:] + in_netns.stderr[-3000:]


@pytest.mark.skipif(NETNS, reason="runs inside its own network namespace (test_console_in_a_browser_without_network)")
async def test_console_in_a_browser(router, fakes, tmp_path: Path) -> None:
    logger = logging.getLogger("agentgate")
    level = logger.level
    logger.setLevel(logging.INFO)
    up = await fakes("cloud")
    r = await router(f"""
server:
  api_keys: [{{key: {KEY}, name: admin}}]
  capture: true
providers:
  cloud: {{type: openai, base_url: "{up.url}", api_key: "{PROVIDER_KEY}"}}
  lab: {{type: openai, base_url: "${{LAB_BASE_URL}}"}}
models:
  - {{name: m, provider: cloud, aliases: [gpt-4o]}}
  - {{name: coder, provider: lab}}
  - name: local
    command: ["{sys.executable}", "{STATS_ENGINE}"]
    ttl: 600
    start_timeout: 30
""")
    browser = await Browser.launch(tmp_path / "chromium")
    try:
        page = await browser.open(r.url + "/ui")
        await run_console(page, r, up)
        if os.environ.get("AGENTGATE_CONSOLE_SCREENSHOT"):  # to look at the page after the walk-through
            await page.screenshot(Path(os.environ["AGENTGATE_CONSOLE_SCREENSHOT"]))
    except BaseException:
        await page.screenshot(tmp_path / "console.png")
        raise
    finally:
        logger.setLevel(level)
        await browser.close()


async def run_console(page, r, up) -> None:  # type: ignore[no-untyped-def]
    # Keys are configured: the browser asks for one; cancelled, it shows the router's refusal and nothing else.
    await page.wait_for("document.body && document.body.innerText.includes('invalid_api_key')",
                        what="the refusal after cancelling the key prompt")
    assert page.auth_prompts >= 1 and not await page.visible("#engines")
    page.credentials = ("admin", KEY)  # typed into the browser's dialog: any user name, the key as the password
    await page.reload()
    await page.wait_for("!!document.getElementById('main') && !document.getElementById('main').hidden",
                        what="the console after giving the key")

    # Engines, providers, models with why.
    await page.wait_for("!!document.querySelector('#engines tr[data-engine=local]')", what="the local engine row")
    assert "stopped" in await page.text("#engines tr[data-engine=local]")
    providers = await page.text("#providers")
    assert "cloud" in providers and "closed" in providers
    assert "LAB_BASE_URL" in await page.text("#models tr[data-model=coder]")
    assert "alias of m" in await page.text("#models tr[data-model=gpt-4o]")

    # Traffic: the engine starts; a tool call is repaired. Both appear as they happen.
    up.push(Step(json=completion(BROKEN, "m")))
    client = r.client(KEY)
    await client.chat.completions.create(model="local", messages=[{"role": "user", "content": "hi"}])
    await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "read a.py"}],
                                         tools=TOOLS)  # type: ignore[arg-type]
    await page.wait_for("document.querySelector('#engines tr[data-engine=local]').innerText.includes('ready')",
                        what="the engine shown ready")
    engine = await page.text("#engines tr[data-engine=local]")
    assert "3 / 8" in engine and "5/7 hits" in engine, engine  # batch and prefix cache from the worker's /stats
    await page.wait_for("document.querySelectorAll('#requests tbody tr').length >= 2", what="two request rows")
    newest = await page.text("#requests tbody tr")
    assert "gpt-4o" in newest and "single_quotes" in newest and "repaired" in newest, newest

    # The repair inspector: raw text beside the repaired message, with the kinds.
    await page.wait_for("!!document.querySelector('#captures li')", what="a capture in the inspector")
    await page.click("#requests tbody tr.clickable")
    await page.wait_for("!!document.getElementById('capture-raw')", what="the capture opened from its request")
    raw, repaired = await page.text("#capture-raw"), await page.text("#capture-repaired")
    assert "<tool_call>{'name': 'read_file'" in raw, raw
    assert "tool call read_file(" in repaired and '"limit": 5' in repaired, repaired
    kinds = await page.text("#capture-kinds")
    assert all(k in kinds for k in ("single_quotes", "trailing_comma", "coerced_type")), kinds

    # The live log follows the access log.
    await page.wait_for("document.getElementById('log').innerText.includes('agentgate.access')",
                        what="access-log lines in the log view")

    # Unload from the page.
    await page.click("#engines tr[data-engine=local] button")
    await page.wait_for("document.querySelector('#engines tr[data-engine=local]').innerText.includes('stopped')",
                        what="the engine shown stopped after Unload")
    assert r.state.supervisor.states()["local"].state == "stopped"

    # A probe from the page, with its per-turn chart (the fake answers in prose: every turn is invalid).
    await page.evaluate("document.getElementById('probe-model').value = 'm'")
    await page.type("#probe-turns", "3")
    await page.click("#probe-run")
    await page.wait_for("document.getElementById('probe-status').innerText.includes('done')", timeout=60,
                        what="the probe finished")
    assert await page.evaluate("[...document.querySelectorAll('#probe-chart .turn')].map(t => t.dataset.status)") \
        == ["invalid"] * 3
    assert "0/3 valid" in await page.text("#probe-status")
    # turns the backend failed are not judged, as `agentgate probe` says: the rate is over the others
    assert await page.evaluate("validity([{status: 'valid'}, {status: 'error'}, {status: 'invalid'}], 1)") \
        == "1/2 judged turns valid (50%), 1 not judged"
    assert await page.evaluate("validity([{status: 'error'}], 0)") == "no turn judged, 1 not judged"

    # Nothing from elsewhere, no script error, no CSP violation; the provider's key never reached the page.
    urls = page.requested_urls()
    assert urls and all(u.startswith(r.url) or u.startswith(("blob:", "data:", "about:")) for u in urls), urls
    assert page.problems() == []
    assert PROVIDER_KEY not in json.dumps(await page.evaluate("document.documentElement.outerHTML"))


@pytest.mark.skipif(NETNS, reason="runs inside its own network namespace (test_console_in_a_browser_without_network)")
async def test_inspector_follows_the_ring_in_a_browser(router, fakes, tmp_path: Path) -> None:
    """The repair inspector lists every capture the ring holds (more than one answer's page of them), drops what
    the ring no longer keeps (its request map too), says so when asked for such a capture, and starts afresh when
    the ring is a new one (a restarted router numbers its captures from 1 again)."""
    from router.capture import CaptureRing
    from router.console import CONSOLE
    from router.console.rings import LogRing, RecentRequests

    logger = logging.getLogger("agentgate")
    level = logger.level
    logger.setLevel(logging.INFO)
    up = await fakes("cloud")
    r = await router(f"""
server:
  capture: {{max_entries: 120}}
providers:
  cloud: {{type: openai, base_url: "{up.url}", api_key: "{PROVIDER_KEY}"}}
models:
  - {{name: m, provider: cloud}}
  - {{name: "cloud/*", provider: cloud}}
""")
    console = r.app[CONSOLE]
    browser = await Browser.launch(tmp_path / "chromium")
    try:
        async with aiohttp.ClientSession() as session:
            async def repaired(prefix: str, n: int, model: str = "m") -> None:
                """n replies the router repairs (the fake echoes the broken call back), request ids prefix-0..."""
                async def one(i: int) -> None:
                    async with session.post(r.url + "/v1/chat/completions", headers={"x-request-id": f"{prefix}-{i}"},
                                            json={"model": model, "tools": TOOLS,
                                                  "messages": [{"role": "user", "content": BROKEN}]}) as resp:
                        assert resp.status == 200, await resp.text()

                await asyncio.gather(*(one(i) for i in range(n)))

            await repaired("a", 110)
            page = await browser.open(r.url + "/ui")
            await page.wait_for("document.querySelectorAll('#captures li').length === 110", timeout=10,
                                what="all 110 captures listed by a console opened afterwards")
            await repaired("b", 20)  # the ring keeps 120: captures 1 to 10 are gone
            shown = "[...document.querySelectorAll('#captures li')].map(li => Number(li.dataset.capture))"
            await page.wait_for(f"{shown}.length === 120 && Math.min(...{shown}) === 11", timeout=10,
                                what="the list trimmed to what the ring holds")
            assert await page.evaluate(f"{shown}.join()") == ",".join(str(i) for i in range(130, 10, -1))
            assert await page.evaluate("state.byRequest.size") == 120
            assert await page.evaluate("[...state.byRequest.values()].every((id) => id >= 11)")

            await page.evaluate("showCapture(3)")  # an entry the ring has dropped since it was listed
            await page.wait_for("document.getElementById('capture').innerText.includes('no longer kept')",
                                what="the pane saying the capture is gone")

            # what a restarted router has: a new capture ring, request list and log, each numbering from 1 again
            console.captures = CaptureRing(console.captures.config)
            console.requests = RecentRequests()
            logger.removeHandler(console.log)
            console.log = LogRing()
            logger.addHandler(console.log)
            await repaired("c", 2)
            await page.wait_for(f"{shown}.join() === '2,1'", timeout=10, what="the new ring's captures alone")
            # the new process's requests and log lines are listed (numbered 1 and 2 again, below what the page saw
            # of the old one), under a marker; the old process's rows stay
            await page.wait_for("document.querySelectorAll('#requests tr.restart').length === 1", timeout=10,
                                what="the request list's restart marker")
            order = "[...document.querySelectorAll('#requests tbody tr')].map(tr => tr.dataset.request || 'mark')"
            assert (await page.evaluate(f"{order}.slice(0, 3).sort().join()")) == "c-0,c-1,mark", \
                await page.evaluate(order)
            assert await page.evaluate(f"{order}.indexOf('mark')") == 2
            assert await page.evaluate(f"{order}.includes('b-5')")
            await page.wait_for("document.getElementById('log').innerText.includes('--- router restarted ---')",
                                what="the log's restart marker")
            await page.wait_for("document.getElementById('log').innerText.split('--- router restarted ---')[1]"
                                ".trim().length > 0", what="the new process's log lines")
            assert await page.evaluate("[...state.byRequest.keys()].sort().join()") == "c-0,c-1"
            await page.wait_for("!!document.querySelector('#requests tr[data-request=\"c-1\"]')", what="the row")
            await page.click('#requests tr[data-request="c-1"]')
            await page.wait_for("document.getElementById('capture').innerText.includes('request c-1')",
                                what="the new capture opened from its request")
            await page.click('#requests tr[data-request="b-5"]')  # the old router's request: its capture is gone
            await page.wait_for("document.getElementById('capture').innerText.includes('no longer kept')",
                                what="no capture of another request opened")

            # Text a client chose (a model name) cannot add a line to the log view, reorder the page's own text or
            # widen the page: control and bidi characters are shown escaped, the text isolated, long words wrapped.
            forged = "x\n12:00:00 PM ERROR   agentgate.engine: engine demo: crashed"
            for model in (forged, "z" * 300):
                async with session.post(r.url + "/v1/chat/completions", json={
                        "model": model, "messages": [{"role": "user", "content": "hi"}]}) as resp:
                    assert resp.status == 404
            await repaired("rtl", 1, model="cloud/x\u202e")
            await repaired("long", 1, model="cloud/" + "w" * 300)
            await page.wait_for("document.getElementById('log').innerText.includes('engine demo: crashed')",
                                what="the request with the forged model in the log")
            await page.wait_for(f"{shown}.length === 4", what="the captures of both models")
            await page.wait_for("!!document.querySelector('#requests tr[data-request=\"long-0\"]')", what="the rows")
            page_width = "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            width = await page.evaluate(page_width)
            assert width[0] <= width[1], width  # the 300-character model names wrap
            log = (await page.text("#log")).split("\n")
            assert not [line for line in log if line.startswith("12:00:00 PM ERROR")], log
            assert any("x\\n12:00:00 PM ERROR   agentgate.engine: engine demo: crashed" in line for line in log), log
            body = await page.evaluate("document.body.innerText")
            assert "\u202e" not in body and "cloud/x\\u202e" in body
            order = await page.evaluate("""(() => {
              const span = document.querySelector('#captures li[data-capture="3"] .small'), t = span.firstChild;
              const r = document.createRange();
              r.setStart(t, 0); r.setEnd(t, 1); const first = r.getBoundingClientRect().left;
              r.setStart(t, 1); r.setEnd(t, 2); return [first, r.getBoundingClientRect().left];
            })()""")
            assert order[0] < order[1], order  # the time after the model still reads left to right
            await page.click('#requests tr[data-request="rtl-0"]')
            await page.wait_for("document.getElementById('capture').innerText.includes('request rtl-0')",
                                what="the capture of the model with the bidi control")
            assert "cloud/x\\u202e" in await page.text("#capture p")
            await page.click('#captures li[data-capture="4"]')
            await page.wait_for("document.getElementById('capture').innerText.includes('wwwwwwww')",
                                what="the capture of the long model name")
            width = await page.evaluate(page_width)
            assert width[0] <= width[1], width
            assert page.problems() == []
    except BaseException:
        if "page" in locals():
            await page.screenshot(tmp_path / "console.png")
        raise
    finally:
        logger.setLevel(level)
        await browser.close()
