"""The agents' desks for acd_load.py, in a process of their own: one live connection per agent
(``GET /live?topic=desk:<agent>`` on ``serve``, a logged-in agent's session cookie) and the
agent at the desk, who clicks through the desk's form as a person would (``POST /desk/state``
with the session's CSRF token): Ready when the desk opens, Ready again a moment after a call
(wrap-up, with a disposition and a note) or after a missed one.

Each ``desk.agent`` event that comes from a routing event carries that event's time on Redis'
clock (``at``); its latency is the time the event's bytes were read off the connection minus
``at`` (same host: one clock). Prints ``ready`` on stdout once every agent is ready; on SIGTERM
writes the latencies and counts as JSON to ``--out`` and exits.

    python scripts/bench/_desks.py --base http://127.0.0.1:8000 --agents agents.json --out desks.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (the checkout on sys.path)
import aiohttp

from callcenter.accounts.sessions import COOKIE


class Desk:
    def __init__(self, base: str, agent: dict[str, str], results: dict[str, Any], seed: int) -> None:
        self.base = base
        self.id = agent["agent"]
        self.token = agent["token"]
        self.csrf = agent["csrf"]
        self.results = results
        self.rng = random.Random(seed)
        self.state = ""
        self.action: asyncio.Task[None] | None = None
        self.wrap_s = (float(agent.get("wrap_min_s", 1.0)), float(agent.get("wrap_max_s", 3.0)))

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(cookies={COOKIE: self.token}, timeout=timeout) as http:
            self.http = http
            while not stop.is_set():
                try:
                    async with http.get(f"{self.base}/live", params={"topic": f"desk:{self.id}"}) as r:
                        if r.status != 200:
                            self.results["errors"] += 1
                            self.results["statuses"][f"live {r.status}"] = 1
                            await asyncio.sleep(1)
                            continue
                        self.results["streams"] += 1
                        await self._read(r)
                except (TimeoutError, aiohttp.ClientError):
                    self.results["reconnects"] += 1
                    await asyncio.sleep(0.2)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        kind, data = "", ""
        async for raw in response.content:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line:
                if kind == "desk.agent" and data:
                    self._on_status(json.loads(data), time.time())
                kind, data = "", ""

    def _on_status(self, status: dict[str, Any], now: float) -> None:
        if status.get("event"):
            self.results["latencies"].append(now - float(status["at"]))
        state = str(status["state"])
        if state == self.state:
            return
        self.state = state
        if self.action is not None and not self.action.done():
            self.action.cancel()
        delay: float | None = None
        if state in ("offline", "lost_contact"):
            delay = 0.0
        elif state == "missed":
            delay = 2.0
        elif state == "wrap_up":
            delay = self.rng.uniform(*self.wrap_s)
        if delay is not None:
            self.action = asyncio.create_task(self._ready(state, delay))

    async def _ready(self, shown: str, delay: float) -> None:
        await asyncio.sleep(delay)
        form = {"to": "ready", "shown": shown, "disposition": "resolved", "notes": "bench call",
                "csrf_token": self.csrf}  # fmt: skip
        for _ in range(5):
            try:
                async with self.http.post(f"{self.base}/desk/state", data=form, allow_redirects=False) as r:
                    await r.read()
                    self.results["posts"] += 1
                    if r.status in (303, 409):  # done, or the state moved on (the next event says)
                        return
                    self.results["errors"] += 1
                    self.results["statuses"][str(r.status)] = (
                        self.results["statuses"].get(str(r.status), 0) + 1
                    )
            except aiohttp.ClientError:
                self.results["errors"] += 1
            await asyncio.sleep(0.5)


async def main(args: argparse.Namespace) -> None:
    agents = json.loads(Path(args.agents).read_text())
    results: dict[str, Any] = {
        "latencies": [], "posts": 0, "errors": 0, "streams": 0, "reconnects": 0, "statuses": {},
    }  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    desks = [Desk(args.base, agent, results, n) for n, agent in enumerate(agents)]
    tasks = [asyncio.create_task(desk.run(stop)) for desk in desks]
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        if all(d.state == "ready" for d in desks):
            break
        await asyncio.sleep(0.1)
    results["ready"] = sum(d.state == "ready" for d in desks)
    results["latencies"].clear()  # from here on: the run's events
    print("ready", results["ready"], flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    for desk in desks:
        if desk.action is not None:
            desk.action.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    Path(args.out).write_text(json.dumps(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--agents", required=True)
    parser.add_argument("--out", required=True)
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(arguments))
    except ImportError:
        asyncio.run(main(arguments))
    sys.exit(0)
