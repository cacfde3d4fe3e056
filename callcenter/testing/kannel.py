"""A real Kannel on 127.0.0.1 for tests and benchmarks: bearerbox, smsbox and two fakesmsc.

Needs the Debian packages ``kannel`` (bearerbox, smsbox) and ``kannel-extras``
(``/usr/lib/kannel/test/fakesmsc``); without them :class:`KannelUnavailable` is raised.

Layout (every port free, every socket on 127.0.0.1)::

    engine --sendsms--> smsbox --> bearerbox --fake SMSC "mt"--> fakesmsc (prints every MT)
    engine <--get-url-- smsbox <-- bearerbox <--fake SMSC "mo"-- fakesmsc (stdin: MO in)
    (the get-url answer, the reply SMS, goes out like any MT: through "mt")

Why two fakesmsc: a ``fake`` SMSC accepts one client, and fakesmsc either repeats the
messages of its command line or, with none, reads them from stdin, and in that mode
only looks at bearerbox's socket once a second when stdin is idle (about 4 KB/s of MT).
So one fakesmsc is a pure receiver (``-m 0``: never sends, blocks on the socket) on the
SMSC every MT goes to, replies to MO included, and the other one only injects MO lines
from its stdin, on an SMSC that ``allowed-smsc-id = never`` keeps every MT away from.

fakesmsc prints what it receives as ``Got message N: <from to type data>`` (its debug
log); :meth:`KannelLab.received` parses those lines from its log file, decoding UCS-2
(``ucs-2`` type, URL-encoded UTF-16BE) and putting concatenated parts (``udh`` type) back
together.

Usage::

    async with KannelLab(get_url=sms_service_get_url(base, secret)) as lab:
        gateway = KannelGateway(lab.settings(settings))
        await gateway.send_many([OutboundSms(to="+218910000001", body="مرحبا", ref="d1")])
        [mt] = await lab.wait_received(1)
        await lab.inject("+218910000001", "نعم")

Processes die with the thread that started them (``PR_SET_PDEATHSIG``), on :meth:`stop`,
at interpreter exit, and when the lab is garbage-collected: a failing or killed test
leaves no bearerbox behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote, urlencode

import aiohttp
import httpx
from yarl import URL

from callcenter.settings import Settings
from callcenter.sms.encoding import analyse
from callcenter.testing.fakesmsc import FakeSmscMessage, _Collector, mo_line

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")


# fakesmsc reads stdin with fgets(buffer, 256): a longer line would be cut in two messages.
class KannelUnavailable(RuntimeError):
    """Kannel's binaries are not installed (Debian: ``kannel`` and ``kannel-extras``)."""


class KannelLabError(RuntimeError):
    """Kannel did not come up, or did not do what the lab waited for in time."""


@dataclass(frozen=True, slots=True)
class LabPorts:
    admin: int
    smsbox: int
    sendsms: int
    fake_mt: int
    fake_mo: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def render_config(
    *,
    ports: LabPorts,
    username: str,
    password: str,
    admin_password: str,
    get_url: str | None,
    http_request_retry: int = 3,
    http_queue_delay: int = 1,
) -> str:
    """kannel.conf for the lab, tuned for throughput (see the comments in the text).

    ``http_request_retry`` / ``http_queue_delay``: smsbox retries a get-url or dlr-url call
    that failed that many times, that many seconds apart (the lab retries fast; the README
    gives production values).
    """
    for value in (username, password, admin_password, get_url or ""):
        if '"' in value or "\n" in value:
            raise ValueError(f"kannel.conf cannot quote {value!r}")
    service = (
        f'get-url = "{get_url}"'
        if get_url
        else 'text = ""  # no engine: MO messages are accepted and dropped'
    )
    return f"""\
# Written by callcenter.testing.kannel; every socket on 127.0.0.1.
group = core
admin-port = {ports.admin}
admin-interface = 127.0.0.1
admin-password = "{admin_password}"
status-password = "{admin_password}"
admin-allow-ip = "127.0.0.1"
smsbox-port = {ports.smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
# Errors only (the console level is set with -v too): logging each message halves the rate.
log-level = 3
# No store-type/store-file: no message store to write; DLRs are kept in memory.
dlr-storage = internal
sms-resend-freq = 1
sms-resend-retry = 3

# Every MT goes here, replies to injected MO included (the "mo" SMSC refuses them all).
group = smsc
smsc = fake
smsc-id = mt
port = {ports.fake_mt}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"
# No throughput limit: the fake SMSC passes messages on as fast as fakesmsc reads them.

# Injected MO come in here. Its fakesmsc reads bearerbox's socket once a second only, so
# nothing goes out here: no message has the smsc-id "never", and replies to MO from "mo"
# (which keep that smsc-id) fall back to "mt".
group = smsc
smsc = fake
smsc-id = mo
allowed-smsc-id = never
port = {ports.fake_mo}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports.smsbox}
sendsms-port = {ports.sendsms}
sendsms-interface = 127.0.0.1
sendsms-chars = "0123456789 +-"
# UCS-2 replies from phones reach get-url as UTF-8 (%b with %C = UTF-8).
mo-recode = true
log-level = 3
http-timeout = 30
max-pending-requests = 512
# A get-url or dlr-url call that fails (no connection, a timeout, any status but 200 or 202)
# is retried, http-queue-delay seconds apart; the retries wait in smsbox's memory. The engine
# answers 503 only when neither its database nor its spool can take a message.
http-request-retry = {http_request_retry}
http-queue-delay = {http_queue_delay}
# When every retry failed, Kannel would text the citizen its own English error: empty texts
# with omit-empty send nothing instead.
reply-couldnotfetch = ""
reply-requestfailed = ""

group = sendsms-user
username = "{username}"
password = "{password}"
user-deny-ip = "*.*.*.*"
user-allow-ip = "127.0.0.1"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
{service}
# The get-url answer body is the reply SMS; an empty body sends nothing.
omit-empty = true
max-messages = 10
concatenation = true
# X-Kannel-Coding: 2 from the engine makes an Arabic reply UCS-2, not GSM-7 '?'.
accept-x-kannel-headers = true
"""


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that makes the child die with the thread that started it (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever still runs (the finalizer: no graceful shutdown left to wait for)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()


Probe = Callable[[], bool]


class KannelLab:
    """bearerbox + smsbox + two fakesmsc, configured by :func:`render_config`.

    ``get_url``: the sms-service get-url (build it with
    :func:`callcenter.sms.kannel_webhooks.sms_service_get_url`); None drops MO messages.
    ``keep_dir``: leave the temp dir (kannel.conf, logs) for a look afterwards.
    """

    def __init__(
        self,
        *,
        get_url: str | None = None,
        username: str = "callcenter",
        password: str | None = None,
        short_code: str = "1415",
        verbosity: int = 3,
        start_timeout: float = 20.0,
        keep_dir: bool = False,
        http_request_retry: int = 3,
        http_queue_delay: int = 1,
    ) -> None:
        self.get_url = get_url
        self.http_request_retry = http_request_retry
        self.http_queue_delay = http_queue_delay
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.short_code = short_code
        self.verbosity = verbosity  # bearerbox/smsbox console: 0 debug ... 3 errors, 4 panics
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir
        self.admin_password = secrets.token_hex(8)
        self.dir: Path | None = None
        self.ports: LabPorts | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._named: dict[str, subprocess.Popen[bytes]] = {}
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)
        self._messages: list[FakeSmscMessage] = []
        self._collectors: dict[str, _Collector] = {}
        self._inject_lock = asyncio.Lock()

    # -- addresses ---------------------------------------------------------------------

    def _ports(self) -> LabPorts:
        if self.ports is None:
            raise KannelLabError("the lab is not started")
        return self.ports

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().sendsms}/cgi-bin/sendsms"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self._ports().admin}/status.txt?password={self.admin_password}"

    def settings(self, base: Settings) -> Settings:
        """``base`` with the Kannel gateway pointed at this lab."""
        return base.model_copy(
            update={
                "sms_gateway": "kannel",
                "kannel_sendsms_url": self.sendsms_url,
                "kannel_username": self.username,
                "kannel_password": self.password,
                "kannel_from": self.short_code,
                "kannel_smsc": None,
            }
        )

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until Kannel accepts sendsms (blocking)."""
        self._preflight()
        started = False
        try:
            for probe, what in self._startup():
                deadline = time.monotonic() + self.start_timeout
                while not probe():
                    if time.monotonic() > deadline:
                        raise self._timeout(what)
                    time.sleep(0.05)
            started = True
        finally:
            if not started:
                self.stop()

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop (processes start in its thread)."""
        self._preflight()
        started = False
        try:
            for probe, what in self._startup():
                deadline = time.monotonic() + self.start_timeout
                while not await asyncio.to_thread(probe):
                    if time.monotonic() > deadline:
                        raise self._timeout(what)
                    await asyncio.sleep(0.05)
            started = True
        finally:
            if not started:
                self.stop()

    def _timeout(self, what: str) -> KannelLabError:
        return KannelLabError(f"timed out waiting for {what}\n{self._diagnostics()}")

    def _preflight(self) -> None:
        missing = [str(p) for p in (BEARERBOX, SMSBOX, FAKESMSC) if not os.access(p, os.X_OK)]
        if missing:
            raise KannelUnavailable(
                f"Kannel is not installed (missing {', '.join(missing)}); "
                "install the Debian packages kannel and kannel-extras"
            )
        if self._procs:
            raise KannelLabError("the lab is already started")

    def _startup(self) -> Iterator[tuple[Probe, str]]:
        """Spawns processes between the waits it yields, so spawning stays in the caller's
        thread (PR_SET_PDEATHSIG follows the thread) while probes may run elsewhere."""
        self._messages.clear()
        self._collectors.clear()
        self.dir = Path(tempfile.mkdtemp(prefix="kannel-lab-"))
        ports = self.ports = LabPorts(*free_ports(5))
        conf = self.dir / "kannel.conf"
        conf.write_text(
            render_config(
                ports=ports,
                username=self.username,
                password=self.password,
                admin_password=self.admin_password,
                get_url=self.get_url,
                http_request_retry=self.http_request_retry,
                http_queue_delay=self.http_queue_delay,
            ),
            encoding="utf-8",
        )
        verbosity = ["-v", str(self.verbosity)]
        self._spawn("bearerbox", [str(BEARERBOX), *verbosity, str(conf)])
        yield self._smscs_listening, "bearerbox to open its admin and fake SMSC ports"
        self._spawn("smsbox", [str(SMSBOX), *verbosity, str(conf)])
        host = ["-H", "127.0.0.1"]
        # -m 0: never sends, blocks on the socket; the message is required but unused.
        mt = [str(FAKESMSC), *host, "-r", str(ports.fake_mt), "-m", "0", "0 0 text unused"]
        self._spawn("fakesmsc-mt", mt)
        # No message: interactive, MO lines from stdin; -i 0: no pause between them.
        mo = [str(FAKESMSC), *host, "-r", str(ports.fake_mo), "-i", "0"]
        self._spawn("fakesmsc-mo", mo, stdin=True)
        yield self._ready, "smsbox and both fakesmsc to connect"

    def _spawn(self, name: str, argv: list[str], *, stdin: bool = False) -> None:
        assert self.dir is not None
        with (self.dir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # a Ctrl-C at the terminal is ours to pass on
                preexec_fn=_pdeathsig(),
            )
        self._procs.append(proc)
        self._named[name] = proc
        if name.startswith("fakesmsc-"):
            smsc = name.removeprefix("fakesmsc-")
            self._collectors[smsc] = _Collector(smsc, self.dir / f"{name}.log", self._messages)

    def _check_alive(self) -> None:
        for name, proc in self._named.items():
            if proc.poll() is not None:
                raise KannelLabError(f"{name} exited with {proc.returncode}\n{self._diagnostics()}")

    def _status(self) -> str:
        try:
            with httpx.Client(trust_env=False, timeout=2.0) as client:
                response = client.get(self.status_url)
        except httpx.HTTPError:
            return ""
        return response.text if response.status_code == 200 else ""

    def _smsc_state(self, status: str, smsc: str) -> str | None:
        found = re.search(rf"^\s*{smsc}\[{smsc}\]\s+FAKE:\d+ \((\w+)", status, re.MULTILINE)
        return found.group(1) if found else None

    def _smscs_listening(self) -> bool:
        self._check_alive()
        status = self._status()
        states = [self._smsc_state(status, smsc) for smsc in ("mt", "mo")]
        if "dead" in states:
            raise KannelLabError(f"a fake SMSC could not listen\n{status}")
        return None not in states

    def _ready(self) -> bool:
        self._check_alive()
        status = self._status()
        if "smsbox:" not in status.split("SMSC connections:")[0]:
            return False
        if any(self._smsc_state(status, smsc) != "online" for smsc in ("mt", "mo")):
            return False
        try:
            with httpx.Client(trust_env=False, timeout=2.0) as client:
                client.get(self.sendsms_url)  # 403 without credentials: listening
        except httpx.HTTPError:
            return False
        return True

    def _diagnostics(self) -> str:
        """The tail of every log, for an error message."""
        if self.dir is None:
            return ""
        out = []
        for log in sorted(self.dir.glob("*.log")):
            lines = log.read_bytes().decode("utf-8", "replace").splitlines()[-15:]
            out.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 3 s) and remove the temp dir."""
        for name in ("smsbox", "fakesmsc-mo", "fakesmsc-mt", "bearerbox"):
            proc = self._named.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=3)
        _kill_all(self._procs)
        self._procs.clear()
        self._named.clear()
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- traffic -----------------------------------------------------------------------

    def received(self) -> list[FakeSmscMessage]:
        """Every MT message the fakesmsc got so far (both of them), in arrival order."""
        for collector in self._collectors.values():
            collector.poll()
        return list(self._messages)

    async def wait_received(
        self,
        count: int,
        *,
        where: Callable[[FakeSmscMessage], bool] | None = None,
        timeout_s: float = 30.0,
    ) -> list[FakeSmscMessage]:
        """At least ``count`` received messages (matching ``where``), else KannelLabError."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [m for m in self.received() if where is None or where(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise KannelLabError(
                    f"fakesmsc received {len(found)} matching messages, not {count}, "
                    f"in {timeout_s:g}s\n{self._diagnostics()}"
                )
            await asyncio.sleep(0.02)

    async def inject(self, sender: str, text: str, *, to: str | None = None, timeout_s: float = 10.0) -> None:
        """A phone's SMS into Kannel (Arabic as UCS-2); returns once fakesmsc sent it.

        One at a time: fakesmsc reads stdin with stdio buffering, and a second line that
        arrives with the first stays in its buffer until more input comes.
        """
        line = mo_line(sender, to or self.short_code, text)
        proc = self._named.get("fakesmsc-mo")
        if proc is None or proc.stdin is None:
            raise KannelLabError("the lab is not started")
        collector = self._collectors["mo"]
        async with self._inject_lock:
            collector.poll()
            target = collector.sent + 1
            proc.stdin.write(line)
            proc.stdin.flush()
            deadline = time.monotonic() + timeout_s
            while collector.sent < target:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise KannelLabError(f"fakesmsc did not send the MO\n{self._diagnostics()}")
                await asyncio.sleep(0.01)
                collector.poll()


def _gsm7(text: str) -> bool:
    return analyse(text).encoding == "gsm7"


async def raw_sendsms_rate(
    lab: KannelLab,
    texts: Sequence[str],
    concurrency: int = 64,
    *,
    pools: int = 16,
    first_number: int = 218_910_000_000,
    queries: Sequence[str] | None = None,
) -> float:
    """Messages per second of plain concurrent sendsms GETs: the benchmark's baseline.

    One request per text (to consecutive numbers from ``first_number``), at most
    ``concurrency`` in flight through one aiohttp session (as the gateway sends). Given
    ``queries`` (ready query strings, e.g. ``KannelGateway.query``), those are sent
    instead, so that Kannel does exactly the work it does for the engine (DLRs included).
    Raises KannelLabError if any request is not accepted.
    """
    if queries is not None:
        texts = list(queries)
    if not texts:
        return 0.0
    del pools  # kept for callers; one aiohttp session, as the gateway uses
    failures: list[str] = []
    base = {"username": lab.username, "password": lab.password, "from": lab.short_code}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(i: int, text: str) -> None:
            if queries is not None:
                query = text
            else:
                params = {**base, "to": f"+{first_number + i}", "text": text, "charset": "UTF-8"}
                if not _gsm7(text):
                    params["coding"] = "2"
                query = urlencode(params, quote_via=quote)
            async with session.get(URL(f"{lab.sendsms_url}?{query}", encoded=True)) as response:
                answer = await response.text()
                if response.status != 202:
                    failures.append(f"{response.status} {answer.strip()}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i, t) for i, t in enumerate(texts)))
        elapsed = time.perf_counter() - started
    if failures:
        raise KannelLabError(f"{len(failures)} sendsms requests failed, first: {failures[0]}")
    return len(texts) / elapsed
