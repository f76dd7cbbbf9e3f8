"""Open a page in headless Chromium over the DevTools protocol and report what it saw.

Chromium starts with ``--remote-debugging-port=0`` on 127.0.0.1 and prints the
browser's websocket address on stderr; the page target's websocket (from
``/json/list``) is driven with aiohttp. Console errors are read from three
protocol events: ``Runtime.consoleAPICalled`` (``console.error``),
``Runtime.exceptionThrown`` (uncaught script errors) and ``Log.entryAdded``
(the browser's own errors: failed loads, blocked resources, CSP).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["PageVisit", "chromium_binary", "visit"]

_DEVTOOLS = re.compile(rb"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")
_START_S = 30.0
_LOAD_S = 30.0
_POLL_S = 0.1
_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth})))"""


@dataclass
class PageVisit:
    """What Chromium saw when it opened the page."""

    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for (the page itself included)."""


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (or ``chromium-browser``), or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Session:
    """One DevTools websocket: commands with ids, events kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._loaded = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = message.json()
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self._loaded.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        await self._ws.send_json({"id": number, "method": method, "params": params})
        reply = await asyncio.wait_for(future, _LOAD_S)
        if "error" in reply:
            raise RuntimeError(f"DevTools {method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def loaded(self) -> None:
        await asyncio.wait_for(self._loaded.wait(), _LOAD_S)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in {
            "error",
            "assert",
        }:
            found.append(" ".join(str(a.get("value", a.get("description"))) for a in
                                  params.get("args", [])))
        elif event["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(str(details.get("exception", {}).get("description") or details))
        elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == (
            "error"
        ):
            entry = params["entry"]
            found.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
    return found


async def _drive(port: int, page: Path, screenshot: Path) -> PageVisit:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        target = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await session.send(f"{domain}.enable")
                await session.send("Page.navigate", url=page.resolve().as_uri())
                await session.loaded()
                images = await session.send(
                    "Runtime.evaluate", expression=_IMAGES_JS, returnByValue=True
                )
                title = await session.send(
                    "Runtime.evaluate", expression="document.title", returnByValue=True
                )
                metrics = await session.send("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                shot = await session.send(
                    "Page.captureScreenshot",
                    format="png",
                    captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": size["width"],
                          "height": min(size["height"], 12000), "scale": 1},
                )
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                return PageVisit(
                    console_errors=_errors(session.events),
                    images=json.loads(images["result"]["value"]),
                    title=str(title["result"]["value"]),
                    requests=[
                        e["params"]["request"]["url"]
                        for e in session.events
                        if e["method"] == "Network.requestWillBeSent"
                    ],
                )
            finally:
                await session.close()


def visit(page: Path, screenshot: Path, *, binary: str) -> PageVisit:
    """Open ``page`` in headless Chromium, save a full-page PNG to ``screenshot``."""
    # Chromium's helper processes can still be writing the profile as the
    # browser exits; the whole process group is stopped and a straggling file
    # left behind does not fail the visit.
    with tempfile.TemporaryDirectory(prefix="meshproof-chromium-",
                                     ignore_cleanup_errors=True) as profile:
        log = Path(profile, "stderr.log")
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [
                    binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                    f"--user-data-dir={profile}/data", "--window-size=1280,900", "about:blank",
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,
            )
        try:
            return asyncio.run(_drive(_devtools_port(proc, log), page, screenshot))
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop Chromium and every helper process it started (its own session)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(_POLL_S)


def _devtools_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port Chromium chose, from the ``DevTools listening on ws://...`` line it logs."""
    deadline = time.monotonic() + _START_S
    while time.monotonic() < deadline and proc.poll() is None:
        match = _DEVTOOLS.search(log.read_bytes())
        if match:
            return int(match.group(2))
        time.sleep(_POLL_S)
    raise RuntimeError(
        f"chromium did not open its DevTools port (exit {proc.poll()}): "
        f"{log.read_bytes().decode(errors='replace')[-2000:]}"
    )
