"""A small Chrome DevTools Protocol client over aiohttp's websocket, enough to drive headless Chromium through a
page the way a person would (type, click, read what is shown) — a test fixture, never product code.

Chromium runs with a throw-away profile and HOME, no first-run, sync, component updates, background networking or
metrics uploads, and a proxy that goes nowhere (loopback is never proxied), so it reaches 127.0.0.1 only; the
browser test additionally runs it in its own network namespace where that is possible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--metrics-recording-only", "--disable-extensions", "--disable-default-apps", "--disable-breakpad",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-pings", "--mute-audio",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--proxy-server=http://127.0.0.1:9", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0", "--window-size=1400,1000",
)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(Exception):
    pass


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], ws: aiohttp.ClientWebSocketResponse,
                 session: aiohttp.ClientSession, profile: Path) -> None:
        self.proc = proc
        self._ws = ws
        self._session = session
        self._profile = profile
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.handlers: dict[tuple[str | None, str], Any] = {}  # (session, event) -> async callback
        self._handling: set[asyncio.Task[Any]] = set()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def launch(cls, profile: Path, timeout: float = 30.0) -> Browser:
        binary = chromium_path()
        if binary is None:
            raise CdpError("chromium is not installed")
        proc = _spawn(binary, profile)
        port_file = profile / "data" / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or loop.time() > deadline:
                _stop(proc)
                raise CdpError(f"chromium did not start (exit status {proc.poll()})")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().split("\n")[:2]
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=64 * 1024 * 1024)
        return cls(proc, ws, session, profile)

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            doc = json.loads(msg.data)
            fut = self._pending.pop(doc.get("id", -1), None)
            if fut is not None and not fut.done():
                if "error" in doc:
                    fut.set_exception(CdpError(str(doc["error"])))
                else:
                    fut.set_result(doc.get("result", {}))
            elif "method" in doc:
                self.events.append(doc)
                handler = self.handlers.get((doc.get("sessionId"), doc["method"]))
                if handler is not None:
                    task = asyncio.ensure_future(handler(doc["params"]))
                    self._handling.add(task)
                    task.add_done_callback(self._handling.discard)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CdpError("the browser went away"))

    async def send(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None,
                   timeout: float = 30.0) -> Any:
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        doc: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id:
            doc["sessionId"] = session_id
        await self._ws.send_str(json.dumps(doc))
        return await asyncio.wait_for(fut, timeout)

    async def open(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        for domain in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            await page.send(domain)
        # Answer HTTP authentication as a person at the browser's dialog would: with page.credentials, or cancel.
        self.handlers[(page.session_id, "Fetch.requestPaused")] = page._continue
        self.handlers[(page.session_id, "Fetch.authRequired")] = page._authenticate
        await page.send("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*"}]})
        await page.send("Page.navigate", {"url": url})
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        await self._ws.close()
        await self._session.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await asyncio.to_thread(_stop, self.proc)


def _spawn(binary: str, profile: Path) -> subprocess.Popen[bytes]:
    profile.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(profile), "XDG_CONFIG_HOME": str(profile / "config"),
           "XDG_CACHE_HOME": str(profile / "cache")}
    return subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile / 'data'}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(10)


class Page:
    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.credentials: tuple[str, str] | None = None  # what to type into an HTTP authentication dialog
        self.auth_prompts = 0

    async def _continue(self, params: dict[str, Any]) -> None:
        with contextlib.suppress(CdpError, asyncio.TimeoutError):
            await self.send("Fetch.continueRequest", {"requestId": params["requestId"]})

    async def _authenticate(self, params: dict[str, Any]) -> None:
        self.auth_prompts += 1
        answer: dict[str, Any] = {"response": "CancelAuth"}
        if self.credentials is not None:
            answer = {"response": "ProvideCredentials", "username": self.credentials[0],
                      "password": self.credentials[1]}
        with contextlib.suppress(CdpError, asyncio.TimeoutError):
            await self.send("Fetch.continueWithAuth", {"requestId": params["requestId"],
                                                       "authChallengeResponse": answer})

    async def reload(self) -> None:
        await self.send("Page.reload", {"ignoreCache": True})

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session_id)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session_id and e.get("method") == method]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails'].get('text')} "
                           f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0, what: str = "") -> Any:
        """Poll `expression` in the page until it is truthy; fail with what the page shows otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except CdpError:  # the page is still loading (or the element not there yet)
                value = None
            if value:
                return value
            if loop.time() > deadline:
                shown = await self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
                raise AssertionError(f"not seen within {timeout:g}s: {what or expression}\n--- page ---\n{shown}")
            await asyncio.sleep(0.1)

    async def text(self, selector: str) -> str:
        return str(await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); return e ? e.innerText : ''; }})()"))

    async def visible(self, selector: str) -> bool:
        return bool(await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "return !!e && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length); })()"))

    async def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (scrolled into view first)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null; "
            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if box is None:
            raise AssertionError(f"nothing to click: {selector}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                         "clickCount": 1})

    async def type(self, selector: str, text: str) -> None:
        await self.click(selector)
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).select && "
                            f"document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", {"text": text})

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                       "windowsVirtualKeyCode": 13, "text": "\r"})

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """Script errors, console errors (a blocked resource or CSP violation is one) and failed loads."""
        found = [f"exception: {e['exceptionDetails'].get('text')} "
                 f"{e['exceptionDetails'].get('exception', {}).get('description', '')}"
                 for e in self.events("Runtime.exceptionThrown")]
        found += [f"console.{e['type']}: {[a.get('value', a.get('description')) for a in e.get('args', [])]}"
                  for e in self.events("Runtime.consoleAPICalled") if e["type"] in ("error", "assert")]
        found += [f"log: {e['entry'].get('text')} {e['entry'].get('url', '')}" for e in self.events("Log.entryAdded")
                  if e["entry"].get("level") == "error" and "401" not in e["entry"].get("text", "")
                  and not e["entry"].get("url", "").endswith("/favicon.ico")]  # asked for by the 401 page
        return found

    def requested_urls(self) -> list[str]:
        return [e["request"]["url"] for e in self.events("Network.requestWillBeSent")]
