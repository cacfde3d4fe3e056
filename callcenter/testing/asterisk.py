"""A real Asterisk 22 and SIPp on 127.0.0.1 for tests and benchmarks, on the project's dialplans.

The builds come as tarballs (``CALLCENTER_ASTERISK_DIR``, else ``../shared/asterisk`` next to
the repository); they are unpacked once into ``~/.cache/1415/`` and reused. Without them
:class:`AsteriskUnavailable` is raised: tests skip, or fail when ``CI=true``.

Usage::

    tools = toolchain()
    async with AgiServer("127.0.0.1", 0) as agi, AsteriskInstance(
        tools, tmp_path, agi_port=agi.port
    ) as pbx:
        result = await pbx.sipp_uac(keys="3")                  # a SIP call to 1415 pressing 3
        async with await pbx.ami() as ami:                     # AMI, logged in as "engine"
            event = await ami.originate("Local/0912345678@robot-citizens",
                                        context="outbound-campaign", variables={"ROBOT_KEYS": "W5"})
        uas = await pbx.sipp_uas(UasBehaviour.BUSY)            # the trunk's far end
        print(await pbx.cli("core show channels"))

The configuration is ``dialplans/*.conf`` copied as is, then rewritten only where a test must
differ (:meth:`AsteriskInstance.overrides`): free SIP/AMI ports and an RTP range, the trunk's
contact on a local SIPp UAS, the AGI_* globals on the test's FastAGI server, and the robot
citizens of ``dialplans/test/`` (with the modules they need). Asterisk runs in the foreground;
it is killed on :meth:`AsteriskInstance.stop`, when the instance is garbage-collected, and
with the thread that started it (``PR_SET_PDEATHSIG``): a failing test leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
DIALPLANS_DIR = REPO_ROOT / "dialplans"
SIPP_TEMPLATES_DIR = REPO_ROOT / "tests" / "sipp"
#: Modules the robot citizens need on top of dialplans/modules.conf.
ROBOT_MODULES = ("app_senddtmf.so", "app_playtones.so")
#: The number citizens dial (the SIPp UAC's Request-URI user).
SERVICE_NUMBER = "1415"

_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_KEY_MS = 160  # tone length of each RFC 2833 key
_KEY_GAP_MS = 300  # silence after each key
_PAUSES_MS = {"w": 500, "W": 1000}  # the same pause letters as SendDTMF


class AsteriskUnavailable(RuntimeError):
    """The Asterisk / SIPp builds are missing or cannot run on this machine."""


class AsteriskError(RuntimeError):
    """Asterisk did not boot, or a CLI command failed (the message ends with the log's tail)."""


# -- the builds ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Toolchain:
    """Unpacked Asterisk and SIPp trees."""

    asterisk_home: Path
    sipp_home: Path

    @property
    def asterisk_run(self) -> Path:
        return self.asterisk_home / "bin" / "asterisk-run"

    @property
    def asterisk_cli(self) -> Path:
        return self.asterisk_home / "bin" / "asterisk-run-cli"

    @property
    def sipp(self) -> Path:
        return self.sipp_home / "bin" / "sipp"


def tarball_dir() -> Path:
    """Where the tarballs are: ``$CALLCENTER_ASTERISK_DIR`` or ``../shared/asterisk``."""
    env = os.environ.get("CALLCENTER_ASTERISK_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "asterisk"


def cache_dir() -> Path:
    """``$CALLCENTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/1415``, else ``~/.cache/1415``."""
    env = os.environ.get("CALLCENTER_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "1415"


@cache
def toolchain(source: Path | None = None, cache: Path | None = None) -> Toolchain:
    """Unpack (once) and check the builds; :class:`AsteriskUnavailable` if impossible."""
    source = source or tarball_dir()
    cache = cache or cache_dir()
    asterisk = _unpack(_one_tarball(source, "asterisk-*.tar.xz"), cache)
    sipp = _unpack(_one_tarball(source, "sipp-*.tar.xz"), cache)
    tools = Toolchain(asterisk, sipp)
    library_path = str(asterisk / "lib")
    _check_runs([str(asterisk / "sbin" / "asterisk"), "-V"], {"LD_LIBRARY_PATH": library_path})
    _check_runs([str(tools.sipp), "-v"], {})
    return tools


def _one_tarball(source: Path, pattern: str) -> Path:
    found = sorted(source.glob(pattern))
    if not found:
        raise AsteriskUnavailable(
            f"no {pattern} in {source} (set CALLCENTER_ASTERISK_DIR to the folder of the "
            "Asterisk 22 and SIPp builds)"
        )
    return found[-1]


def _unpack(tarball: Path, cache: Path) -> Path:
    """Unpack into ``cache/<top folder>``; concurrent test runs race safely (rename)."""
    stamp = f"{tarball.name} {tarball.stat().st_size} {int(tarball.stat().st_mtime)}"
    with tarfile.open(tarball) as archive:
        first = archive.next()
        if first is None:
            raise AsteriskUnavailable(f"{tarball} is empty")
        top = first.name.split("/", 1)[0]
        target = cache / top
        marker = target / ".unpacked-from"
        if marker.is_file() and marker.read_text() == stamp:
            return target
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{top}-", dir=cache))
        try:
            if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4
                archive.extractall(scratch, filter="tar")  # safe paths, executables kept
            else:
                archive.extractall(scratch)
            (scratch / top / ".unpacked-from").write_text(stamp)
            if target.exists():  # stale (another tarball) or a half-finished older copy
                shutil.rmtree(target, ignore_errors=True)
            with contextlib.suppress(OSError):  # lost the race to another process: fine
                (scratch / top).rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if not (marker.is_file() and marker.read_text() == stamp):
        raise AsteriskUnavailable(f"could not unpack {tarball} into {target}")
    return target


def _check_runs(argv: list[str], env: Mapping[str, str]) -> None:
    try:
        done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=20, check=False)
    except OSError as exc:
        raise AsteriskUnavailable(f"cannot run {argv[0]}: {exc}") from exc
    if done.returncode not in (0, 99):  # sipp -v exits 99
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise AsteriskUnavailable(f"{argv[0]} does not run here (missing libraries?): {output}")


# -- configuration files ------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(?:\(([^)]*)\))?")
_OPTION = re.compile(r"^\s*([^=;#\[\s][^=]*?)\s*=>?\s*(.*?)\s*$")
_INCLUDE = re.compile(r'^\s*#(try)?include\s+"?([^"]+?)"?\s*$')


@dataclass(slots=True)
class ConfSection:
    """One ``[name](options)`` section of an Asterisk configuration file, comments removed."""

    name: str
    options: tuple[str, ...]
    items: list[tuple[str, str]]
    source: Path
    line: int

    @property
    def is_template(self) -> bool:
        return "!" in self.options

    @property
    def type(self) -> str | None:
        return self.get("type")

    def get(self, key: str) -> str | None:
        values = self.get_all(key)
        return values[-1] if values else None

    def get_all(self, key: str) -> list[str]:
        return [value for k, value in self.items if k == key]


def _strip_comment(line: str) -> str:
    """Cut at the first ``;`` that is not escaped as ``\\;``."""
    match = re.search(r"(?<!\\);", line)
    return line[: match.start()] if match else line


def parse_conf(path: Path, *, base: Path | None = None) -> list[ConfSection]:
    """Sections of ``path`` in order, ``#include``/``#tryinclude`` followed (relative names
    resolve against ``base``, the configuration folder: Asterisk's ``astetcdir``)."""
    base = base or path.parent
    sections: list[ConfSection] = []
    current: ConfSection | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        include = _INCLUDE.match(raw)
        if include:
            target = Path(include.group(2))
            target = target if target.is_absolute() else base / target
            if target.exists() or not include.group(1):
                sections.extend(parse_conf(target, base=base))
                current = None  # Asterisk would continue the open section; we never rely on it
            continue
        line = _strip_comment(raw).strip()
        if not line:
            continue
        header = _SECTION.match(line)
        if header:
            options = tuple(o.strip() for o in (header.group(2) or "").split(",") if o.strip())
            current = ConfSection(header.group(1).strip(), options, [], path, number)
            sections.append(current)
            continue
        option = _OPTION.match(line)
        if option and current is not None:
            current.items.append((option.group(1), option.group(2)))
    return sections


def override_conf(text: str, section: str, values: Mapping[str, str], *, type: str | None = None) -> str:
    """``text`` with ``key = value`` set in every ``[section]`` (of ``type``, if given):
    existing lines replaced in place, missing keys added at the end of the section.
    KeyError when no section matches, so a rename in dialplans/ fails loudly here."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _SECTION.match(_strip_comment(line))]
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    matched = False
    for start, end in reversed(bounds):  # bottom-up: insertions keep earlier indexes valid
        header = _SECTION.match(lines[start])
        assert header is not None
        body = range(start + 1, end)
        if header.group(1).strip() != section:
            continue
        options = {i: _OPTION.match(_strip_comment(lines[i])) for i in body}
        found = {i: m.group(1) for i, m in options.items() if m}
        kind = next((m.group(2) for m in options.values() if m and m.group(1) == "type"), None)
        if type is not None and kind != type:
            continue
        matched = True
        seen: set[str] = set()
        for i, key in found.items():
            if key in values:
                lines[i] = f"{key} = {values[key]}"
                seen.add(key)
        last = max([start, *found])
        missing = [f"{key} = {value}" for key, value in values.items() if key not in seen]
        lines[last + 1 : last + 1] = missing
    if not matched:
        raise KeyError(f"no [{section}]{f' of type {type}' if type else ''} to override")
    return "\n".join(lines) + "\n"


# -- ports and processes ------------------------------------------------------------------------


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 a moment ago (TCP by default, ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _udp_bound(port: int) -> bool:
    """True once something (SIPp) holds the UDP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that has the child killed when the spawning thread dies (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever still runs (also the finalizer: no event loop needed)."""
    for proc in procs:
        _kill(proc)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


# -- Asterisk -----------------------------------------------------------------------------------


class AsteriskInstance:
    """One Asterisk on the project's dialplans, on free loopback ports.

    ``agi_host``/``agi_port``: the test's FastAGI server (the AGI_* globals).
    ``amd_enabled``: the AMD_ENABLED global. ``extra_globals``: more [globals] values.
    ``robots``: include ``dialplans/test/robots.conf`` and :data:`ROBOT_MODULES`.
    ``verbosity``: Asterisk's ``-v`` level in ``run/log/messages.log`` (0 for load tests).
    """

    def __init__(
        self,
        tools: Toolchain,
        workdir: Path,
        *,
        agi_port: int,
        agi_host: str = "127.0.0.1",
        amd_enabled: bool = False,
        extra_globals: Mapping[str, str] | None = None,
        robots: bool = True,
        dialplans: Path = DIALPLANS_DIR,
        boot_timeout: float = 30.0,
        verbosity: int = 3,
    ) -> None:
        self.tools = tools
        self.workdir = workdir
        self.conf_dir = workdir / "conf"
        run = workdir / "run"
        # The control socket's path must fit in sockaddr_un (108 bytes).
        self._own_run = len(str(run / "run" / "asterisk.ctl")) > 100
        self.run_dir = Path(tempfile.mkdtemp(prefix="ast-")) if self._own_run else run
        self.agi_host = agi_host
        self.agi_port = agi_port
        self.amd_enabled = amd_enabled
        self.extra_globals = dict(extra_globals or {})
        self.robots = robots
        self.dialplans = dialplans
        self.boot_timeout = boot_timeout
        self.verbosity = verbosity
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.uas_port = free_port(socket.SOCK_DGRAM)  # where the "trunk" endpoint sends calls
        self.ami_port = free_port()
        base = random.randrange(20000, 50000, 2)
        self.rtp_ports = (base, base + 399)
        self.ami_username = "engine"
        self.ami_secret = ""
        self.boot_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)
        self._sipp_runs = 0
        self._sipps: list[SippProcess] = []

    # -- configuration ----------------------------------------------------------------------

    def overrides(self) -> dict[str, list[tuple[str, str | None, dict[str, str]]]]:
        """What differs from dialplans/: file -> [(section, type, {key: value})]."""
        low, high = self.rtp_ports
        globals_ = {
            "AGI_HOST": self.agi_host,
            "AGI_PORT": str(self.agi_port),
            "AMD_ENABLED": "1" if self.amd_enabled else "0",
            **self.extra_globals,
        }
        return {
            "extensions.conf": [("globals", None, globals_)],
            "pjsip.conf": [
                ("transport-udp", "transport", {"bind": f"127.0.0.1:{self.sip_port}"}),
                ("trunk", "aor", {"contact": f"sip:127.0.0.1:{self.uas_port}"}),
            ],
            "manager.conf": [
                ("general", None, {"bindaddr": "127.0.0.1", "port": str(self.ami_port)}),
            ],
            "rtp.conf": [
                ("general", None, {"rtpstart": str(low), "rtpend": str(high)}),
            ],
        }

    def write_conf(self) -> Path:
        """Fill ``conf_dir`` from dialplans/ plus :meth:`overrides` (and the robots)."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for source in sorted(self.dialplans.glob("*.conf")):
            shutil.copyfile(source, self.conf_dir / source.name)
        for name, changes in self.overrides().items():
            path = self.conf_dir / name
            text = path.read_text(encoding="utf-8")
            for section, kind, values in changes:
                text = override_conf(text, section, values, type=kind)
            path.write_text(text, encoding="utf-8")
        if self.robots:
            for source in sorted((self.dialplans / "test").glob("*.conf")):
                shutil.copyfile(source, self.conf_dir / source.name)
                with (self.conf_dir / "extensions.conf").open("a", encoding="utf-8") as ext:
                    ext.write(f'\n; test only: robots\n#include "{source.name}"\n')
            with (self.conf_dir / "modules.conf").open("a", encoding="utf-8") as modules:
                modules.write("\n; test only: robots\n")
                modules.writelines(f"load => {module}\n" for module in ROBOT_MODULES)
        for block in parse_conf(self.conf_dir / "manager.conf"):
            if block.name == self.ami_username:
                self.ami_secret = block.get("secret") or ""
        return self.conf_dir

    # -- start and stop ---------------------------------------------------------------------

    @property
    def messages_log(self) -> Path:
        return self.run_dir / "log" / "messages.log"

    @property
    def console_log(self) -> Path:
        return self.workdir / "asterisk-console.log"

    def log_tail(self, lines: int = 40) -> str:
        """The end of Asterisk's messages log and console, for assertion messages."""
        return (
            f"--- {self.messages_log} ---\n{_tail(self.messages_log, lines)}\n"
            f"--- {self.console_log} ---\n{_tail(self.console_log, 10)}"
        )

    async def start(self) -> None:
        """Write the configuration, start Asterisk, wait until it is fully booted."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_conf()
        started = time.monotonic()
        verbose = ["-" + "v" * self.verbosity] if self.verbosity else []
        with self.console_log.open("wb") as console:
            # Popen, not asyncio: it returns at once, spawns in this thread (PR_SET_PDEATHSIG
            # follows the thread) and the finalizer can kill it without an event loop.
            self._proc = subprocess.Popen(  # noqa: ASYNC220
                [str(self.tools.asterisk_run), str(self.conf_dir), str(self.run_dir),
                 "--", "-f", "-q", *verbose],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig(), start_new_session=True,
            )  # fmt: skip
        self._procs.append(self._proc)
        booted = False
        try:
            await self._wait_booted(started + self.boot_timeout)
            booted = True
        finally:
            if not booted:
                await self.stop()
        self.boot_seconds = time.monotonic() - started

    async def _wait_booted(self, deadline: float) -> None:
        socket_path = self.run_dir / "run" / "asterisk.ctl"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise AsteriskError(f"Asterisk exited during boot\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AsteriskError(f"Asterisk did not boot in {self.boot_timeout:g}s\n{self.log_tail()}")
            if socket_path.exists():
                with contextlib.suppress(AsteriskError):
                    left = max(0.5, deadline - time.monotonic())
                    await self.cli("core waitfullybooted", timeout_s=left)
                    return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Kill running SIPps; SIGTERM Asterisk (its fast shutdown), SIGKILL after 5 s."""
        sipps, self._sipps = self._sipps, []
        for sipp in sipps:
            await sipp.stop()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 5)
            except TimeoutError:
                _kill(proc)
        _kill_all(self._procs)
        if self._own_run:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- control ----------------------------------------------------------------------------

    async def cli(self, command: str, *, timeout_s: float = 10.0) -> str:
        """Run one CLI command (``asterisk -rx``) and return its output."""
        proc = await asyncio.create_subprocess_exec(
            str(self.tools.asterisk_cli), str(self.run_dir), command,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AsteriskError(f"CLI {command!r} timed out after {timeout_s:g}s") from None
        text = output.decode(errors="replace")
        if proc.returncode != 0:
            raise AsteriskError(f"CLI {command!r} failed ({proc.returncode}): {text.strip()}")
        return text

    async def ami(self, *, events: str = "on") -> AmiSession:
        """A logged-in AMI session as the ``engine`` user of manager.conf."""
        return await AmiSession.connect(
            "127.0.0.1", self.ami_port, self.ami_username, self.ami_secret, events=events
        )

    # -- SIPp -------------------------------------------------------------------------------

    def _scenario(self, template: str, **values: str) -> Path:
        self._sipp_runs += 1
        path = self.workdir / f"sipp-{self._sipp_runs}-{template}"
        path.write_text(render_scenario(template, values), encoding="utf-8")
        return path

    async def sipp_uac(
        self,
        *,
        keys: str = "",
        calls: int = 1,
        concurrent: int | None = None,
        rate: float = 10.0,
        delay_ms: int = 1500,
        caller: str = "0910000000",
        timeout_s: float = 30.0,
    ) -> SippResult:
        """``calls`` SIP calls to 1415 as the ``citizen`` endpoint, ``concurrent`` at a time,
        started at ``rate`` per second; each answers, waits ``delay_ms``, plays ``keys``
        (RFC 2833; ``w``/``W`` pause 0.5/1 s) and then waits for Asterisk's BYE."""
        scenario = self._scenario(
            "uac_1415.xml", DTMF=dtmf_xml(keys, self.workdir), DELAY_MS=str(delay_ms), CALLER=caller
        )
        argv = [
            f"127.0.0.1:{self.sip_port}", "-sf", str(scenario), "-s", SERVICE_NUMBER,
            "-p", str(free_port(socket.SOCK_DGRAM)), "-m", str(calls),
            "-l", str(concurrent or calls), "-r", f"{rate:g}",
        ]  # fmt: skip
        proc = await SippProcess.spawn(self.tools, argv, self.workdir, timeout_s=timeout_s)
        self._sipps.append(proc)
        return await proc.wait()

    async def sipp_uas(
        self,
        behaviour: UasBehaviour,
        *,
        calls: int = 1,
        keys: str = "",
        delay_ms: int = 1000,
        hangup_after_ms: int = 2000,
        timeout_s: float = 30.0,
    ) -> SippProcess:
        """Start the trunk's far end: a SIPp UAS on :attr:`uas_port` handling ``calls`` calls
        with ``behaviour``; await :meth:`SippProcess.wait` for its result."""
        template = f"uas_{behaviour.value}.xml"
        scenario = self._scenario(
            template, DTMF=dtmf_xml(keys, self.workdir), DELAY_MS=str(delay_ms),
            HANGUP_AFTER_MS=str(hangup_after_ms),
        )  # fmt: skip
        argv = ["-sf", str(scenario), "-p", str(self.uas_port), "-m", str(calls)]
        proc = await SippProcess.spawn(self.tools, argv, self.workdir, timeout_s=timeout_s)
        self._sipps.append(proc)
        deadline = time.monotonic() + 5
        while not _udp_bound(self.uas_port):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise AsteriskError(f"SIPp UAS did not bind {self.uas_port}: {await proc.wait()}")
            await asyncio.sleep(0.02)
        return proc


# -- SIPp ---------------------------------------------------------------------------------------


class UasBehaviour(StrEnum):
    """What the SIPp UAS behind the ``trunk`` endpoint does with an INVITE."""

    ANSWER = "answer"  # 200 OK, waits DELAY_MS, plays the keys, waits for Asterisk's BYE
    BUSY = "busy"  # 486 Busy Here (OriginateResponse Reason 5)
    NO_ANSWER = "no_answer"  # 180 Ringing until CANCEL (Reason 3 on the Originate timeout)
    HANGUP = "hangup"  # 200 OK, plays the keys, sends BYE after HANGUP_AFTER_MS


def dtmf_xml(keys: str, directory: Path) -> str:
    """SIPp steps that press ``keys`` (0-9 * #; ``w``/``W`` pause 0.5/1 s like SendDTMF).

    The keys go into one pcap written to ``directory`` (:func:`write_dtmf_pcap`) and played
    with ``play_pcap_audio`` by absolute path (SIPp cannot take a variable there), followed by
    a pause as long as the pcap. SIPp's own ``dtmf_2833_<key>.pcap`` files cannot be chained:
    they were cut from one recording, so replaying ``4`` then ``2`` sends sequence numbers and
    timestamps that go backwards, and Asterisk drops the second key.
    """
    if not keys:
        return ""
    body = keys.lstrip("wW")
    lead_ms = _pause_ms(keys[: len(keys) - len(body)])
    steps = [f'<pause milliseconds="{lead_ms}"/>'] if lead_ms else []
    if body.strip("wW"):
        digest = hashlib.sha1(body.encode()).hexdigest()[:12]
        pcap = (directory / f"dtmf-{digest}.pcap").resolve()
        length_ms = write_dtmf_pcap(pcap, body)
        steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        steps.append(f'<pause milliseconds="{length_ms}"/>')
    else:
        steps.append(f'<pause milliseconds="{_pause_ms(body)}"/>')
    return "\n  ".join(steps)


def _pause_ms(pauses: str) -> int:
    return sum(_PAUSES_MS[p] for p in pauses)


def write_dtmf_pcap(path: Path, keys: str, *, payload_type: int = 101) -> int:
    """Write RFC 4733 telephone-events for ``keys`` as a pcap SIPp can replay; returns its
    length in ms. Each key: a 160 ms event (a packet every 20 ms, the end packet three
    times), then 300 ms of silence; ``w``/``W`` add 0.5/1 s. One SSRC, rising sequence
    numbers and timestamps, so Asterisk takes every key, repeated ones included."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    now_ms = seq = 0
    ssrc = 0x1415_0000

    def packet(at_ms: int, rtp: bytes) -> None:
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                   bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))  # fmt: skip
        ip[10:12] = struct.pack(">H", _ip_checksum(bytes(ip)))
        frame = bytes(12) + b"\x08\x00" + bytes(ip) + udp
        out.extend(struct.pack("<IIII", at_ms // 1000, at_ms % 1000 * 1000, len(frame), len(frame)))
        out.extend(frame)

    for key in keys:
        if key in _PAUSES_MS:
            now_ms += _PAUSES_MS[key]
            continue
        if key not in _DTMF_EVENTS:
            raise ValueError(f"cannot press {key!r}: keys are 0-9 * # (w, W pause)")
        timestamp = now_ms * 8  # 8 kHz clock
        steps = _KEY_MS // 20
        for i in range(1, steps + 1):
            end = i == steps
            for _ in range(3 if end else 1):  # the end packet three times, same sequence
                header = struct.pack(">BBHII", 0x80, (0x80 if i == 1 else 0) | payload_type,
                                     seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)  # fmt: skip
                event = struct.pack(">BBH", _DTMF_EVENTS[key], (0x80 if end else 0) | 10, i * 160)
                packet(now_ms + (i - 1) * 20, header + event)
            seq += 1
        now_ms += _KEY_MS + _KEY_GAP_MS
    path.write_bytes(bytes(out))
    return now_ms


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def render_scenario(template: str, values: Mapping[str, str], *, templates: Path = SIPP_TEMPLATES_DIR) -> str:
    """``tests/sipp/<template>`` with every ``@NAME@`` replaced (ValueError if one is left)."""
    text = (templates / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    return text


_COUNTER = re.compile(r"^\s*(Successful|Failed) call\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SippResult:
    """How a SIPp run ended: exit code 0 = every call went through its scenario."""

    returncode: int
    successful: int
    failed: int
    output: str = field(repr=False)
    errors: str = field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SippProcess:
    """A running ``sipp`` (UAC or UAS) on 127.0.0.1, killed with its test."""

    def __init__(self, proc: asyncio.subprocess.Process, error_file: Path, timeout_s: float) -> None:
        self._proc = proc
        self._error_file = error_file
        self._timeout = timeout_s
        self._result: SippResult | None = None

    @classmethod
    async def spawn(
        cls, tools: Toolchain, argv: Sequence[str], workdir: Path, *, timeout_s: float
    ) -> SippProcess:
        error_file = Path(tempfile.mkstemp(prefix="sipp-errors-", suffix=".log", dir=workdir)[1])
        proc = await asyncio.create_subprocess_exec(
            str(tools.sipp), *argv, "-i", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM)),
            "-ci", "127.0.0.1", "-cp", str(free_port(socket.SOCK_DGRAM)), "-nostdin",
            "-timeout", f"{timeout_s:g}s", "-timeout_error",
            "-trace_err", "-error_file", str(error_file),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig(), cwd=workdir,
        )  # fmt: skip
        return cls(proc, error_file, timeout_s)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> SippResult:
        """Wait for SIPp to finish (its own ``-timeout`` plus 10 s, then it is killed)."""
        if self._result is None:
            done = False
            try:
                output, _ = await asyncio.wait_for(self._proc.communicate(), self._timeout + 10)
                done = True
            finally:
                if not done:
                    await self.stop()
            text = output.decode(errors="replace")
            counts = {kind: int(n) for kind, n in _COUNTER.findall(text)}
            self._result = SippResult(
                returncode=self._proc.returncode if self._proc.returncode is not None else -1,
                successful=counts.get("Successful", 0),
                failed=counts.get("Failed", 0),
                output=text,
                errors=_tail(self._error_file, 60),
            )
        return self._result

    async def stop(self) -> None:
        if self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


# -- AMI ----------------------------------------------------------------------------------------

AmiMessage = dict[str, str]


class AmiSession:
    """A bare AMI connection for tests and benchmarks, independent of the engine's client.

    Every message received is kept in :attr:`messages` (a dict per message; a repeated header
    such as ``ChanVariable`` holds its values joined by newlines); :meth:`wait_for` finds one.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.messages: list[AmiMessage] = []
        self._changed = asyncio.Condition()
        self._ids = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, host: str, port: int, username: str, secret: str, *, events: str = "on"
    ) -> AmiSession:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        session = cls(reader, writer)
        try:
            await asyncio.wait_for(reader.readline(), 10)  # "Asterisk Call Manager/11.0.0"
            session._task = asyncio.create_task(session._read(), name="ami-session-reader")
            reply = await session.action("Login", {"Username": username, "Secret": secret, "Events": events})
            if reply.get("Response") != "Success":
                raise AsteriskError(f"AMI login refused: {reply}")
        except BaseException:
            await session.close()
            raise
        return session

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _read(self) -> None:
        message: AmiMessage = {}
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                value = value.strip()
                # Repeated headers (ChanVariable: one per variable) are joined by newlines.
                message[key] = f"{message[key]}\n{value}" if key in message else value
                continue
            if message:
                async with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
                message = {}

    async def send(self, action: str, headers: Mapping[str, str | Sequence[str]] | None = None) -> str:
        """Send an action without waiting; returns its ActionID."""
        self._ids += 1
        action_id = f"t{self._ids}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in (headers or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            lines.extend(f"{key}: {item}" for item in values)
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return action_id

    async def action(
        self,
        action: str,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        *,
        timeout_s: float = 10.0,
    ) -> AmiMessage:
        """Send an action and return its response."""
        action_id = await self.send(action, headers)
        return await self.wait_for(
            lambda m: m.get("ActionID") == action_id and "Response" in m, timeout_s=timeout_s
        )

    async def wait_for(self, match: Callable[[AmiMessage], bool], *, timeout_s: float = 10.0) -> AmiMessage:
        """The first message (since connecting) for which ``match`` is true."""

        def find() -> AmiMessage | None:
            return next((m for m in self.messages if match(m)), None)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: find() is not None), timeout_s)
            except TimeoutError:
                raise AsteriskError(f"no matching AMI message within {timeout_s:g}s") from None
        found = find()
        assert found is not None
        return found

    async def originate(
        self,
        channel: str,
        *,
        context: str,
        exten: str = "s",
        priority: int = 1,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int = 30000,
    ) -> AmiMessage:
        """An async Originate; returns its OriginateResponse event (Reason 4 answered,
        5 busy, 3 no answer, 8 congestion, 0 failed)."""
        headers: dict[str, str | Sequence[str]] = {
            "Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority),
            "Timeout": str(timeout_ms), "Async": "true",
        }  # fmt: skip
        if caller_id:
            headers["CallerID"] = caller_id
        if variables:
            headers["Variable"] = [f"{key}={value}" for key, value in variables.items()]
        reply = await self.action("Originate", headers)
        if reply.get("Response") != "Success":
            raise AsteriskError(f"Originate refused: {reply}")
        action_id = reply["ActionID"]
        return await self.wait_for(
            lambda m: m.get("Event") == "OriginateResponse" and m.get("ActionID") == action_id,
            timeout_s=timeout_ms / 1000 + 10,
        )

    async def close(self) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError, asyncio.TimeoutError, AsteriskError):
                await asyncio.wait_for(self.send("Logoff"), 2)
            self._writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._task
