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
import os
import random
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Self

from callcenter.testing.asterisk_ami import AmiMessage, AmiSession
from callcenter.testing.asterisk_base import (
    DIALPLANS_DIR,
    REPO_ROOT,
    ROBOT_MODULES,
    SERVICE_NUMBER,
    AsteriskError,
    AsteriskUnavailable,
    Toolchain,
    _kill,
    _kill_all,
    _pdeathsig,
    _tail,
    _udp_bound,
    free_port,
)
from callcenter.testing.sipp import (
    Audio,
    Media,
    SippProcess,
    SippResult,
    UasBehaviour,
    dtmf_xml,
    render_scenario,
)

__all__ = [
    "DIALPLANS_DIR", "REPO_ROOT", "AmiMessage", "AmiSession", "AsteriskError", "AsteriskInstance",
    "AsteriskUnavailable", "Audio",
    "SippProcess", "SippResult", "Toolchain", "UasBehaviour", "free_port", "parse_conf", "toolchain",
]  # fmt: skip


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
        with self.console_log.open("ab") as console:  # a restart appends
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
        await self.stop_sipps()
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

    async def stop_sipps(self) -> None:
        """Kill the SIPps this instance started (calls a crash left waiting for a BYE)."""
        sipps, self._sipps = self._sipps, []
        for sipp in sipps:
            await sipp.stop()

    async def crash(self) -> None:
        """SIGKILL Asterisk alone, as a crash would end it: no BYE to SIP peers, no hangup to
        FastAGI sessions, AMI sockets closed by the kernel; SIPps keep running. :meth:`start`
        again boots it on the same configuration and ports (an operator's restart)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(_kill, proc)

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
        keys: Media = "",
        calls: int = 1,
        concurrent: int | None = None,
        rate: float = 10.0,
        delay_ms: int = 1500,
        caller: str = "0910000000",
        timeout_s: float = 30.0,
        hangup_after_ms: int | None = None,
    ) -> SippResult:
        """``calls`` SIP calls to 1415 as the ``citizen`` endpoint, ``concurrent`` at a time,
        started at ``rate`` per second; each answers, waits ``delay_ms``, plays ``keys``
        (RFC 2833; ``w``/``W`` pause 0.5/1 s; a list may put :class:`Audio` between them: what
        the caller says) and then waits for Asterisk's BYE — or, with
        ``hangup_after_ms``, hangs up itself that long after the keys (a caller who gives up)."""
        values = {"DTMF": dtmf_xml(keys, self.workdir), "DELAY_MS": str(delay_ms), "CALLER": caller}
        if hangup_after_ms is None:
            scenario = self._scenario("uac_1415.xml", **values)
        else:
            scenario = self._scenario("uac_1415_hangup.xml", **values, HANGUP_AFTER_MS=str(hangup_after_ms))
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
        port: int | None = None,
    ) -> SippProcess:
        """Start the trunk's far end: a SIPp UAS on :attr:`uas_port` (or ``port``: an agent's
        phone, say) handling ``calls`` calls with ``behaviour``; await
        :meth:`SippProcess.wait` for its result."""
        port = port or self.uas_port
        template = f"uas_{behaviour.value}.xml"
        scenario = self._scenario(
            template, DTMF=dtmf_xml(keys, self.workdir), DELAY_MS=str(delay_ms),
            HANGUP_AFTER_MS=str(hangup_after_ms),
        )  # fmt: skip
        argv = ["-sf", str(scenario), "-p", str(port), "-m", str(calls)]
        proc = await SippProcess.spawn(self.tools, argv, self.workdir, timeout_s=timeout_s)
        self._sipps.append(proc)
        deadline = time.monotonic() + 5
        while not _udp_bound(port):
            if proc.returncode is not None or time.monotonic() > deadline:
                raise AsteriskError(f"SIPp UAS did not bind {port}: {await proc.wait()}")
            await asyncio.sleep(0.02)
        return proc
