"""A private PostgreSQL cluster on 127.0.0.1 for fault tests and the fault benchmark: its own
data directory and port, so it can be stopped, crashed and restarted without touching the
server every other test shares.

Needs the server binaries (Debian ``postgresql``: ``/usr/lib/postgresql/<version>/bin``); without
them :class:`PostgresUnavailable` is raised. PostgreSQL refuses to run as root, so under root the
cluster belongs to the ``postgres`` user (the child drops to it before ``exec``). The postmaster
is this process's own child and dies with it (a benchmark killed by a timeout leaves no cluster
behind). Durability as on a real server for what matters here: ``fsync`` is off (the machine
does not crash, only the server does), commits still wait for their WAL to be written.

Usage::

    with PrivatePostgres() as pg:
        url = pg.url("postgres")      # postgresql://postgres@127.0.0.1:<port>/postgres
        pg.stop(mode="immediate")     # a crash: backends killed, no checkpoint
        pg.start()                    # recovery, then accepting again on the same port
        pg.restart(down_s=3)          # a restart the engine lives through
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from callcenter.testing.kannel import free_ports

StopMode = Literal["smart", "fast", "immediate"]
#: the postmaster's signal for each shutdown mode (see ``pg_ctl stop -m``)
_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (Debian: ``postgresql``)."""


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with ``initdb``, else ``initdb`` on the PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("initdb")
    if on_path is None:
        raise PostgresUnavailable("PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)")
    return Path(on_path).parent


def _as_owner(uid: int | None, gid: int | None) -> Callable[[], None]:
    """A preexec_fn: drop to the cluster's owner (under root), and die with our process."""

    def preexec() -> None:
        if gid is not None and uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                # SIGINT is a fast shutdown: the postmaster takes its backends with it
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG

    return preexec


class PrivatePostgres:
    """One cluster; :attr:`port` is chosen when made. Its data directory, socket and log live
    in a fresh directory under the system temp dir (the ``postgres`` user must reach it, which a
    test's private temp dir does not allow), removed by :meth:`close`."""

    def __init__(self, *, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="1415-pg-"))
        self.port = port or free_ports(1)[0]
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:  # "root" execution of the PostgreSQL server is not permitted
            owner = pwd.getpwnam("postgres")
            self._uid, self._gid = owner.pw_uid, owner.pw_gid

    # -- addresses ----------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    # -- life cycle ---------------------------------------------------------------------------

    def init(self) -> None:
        """``initdb`` (trust on loopback, UTF-8) once; a cluster already there is kept."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._uid is not None and self._gid is not None:
            os.chown(self.dir, self._uid, self._gid)
        if (self.data / "PG_VERSION").exists():
            return
        argv = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync"]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, preexec_fn=_as_owner(self._uid, self._gid), check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')}")

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the postmaster (after a crash it recovers first) and wait until it answers."""
        if self.running:
            return
        self.init()
        argv = [
            str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
            "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_as_owner(self._uid, self._gid)
            )
        finally:
            log.close()
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Seconds until the server accepts connections and queries (recovery done)."""
        started = time.monotonic()
        probe = [
            str(self.bindir / "pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
        ]
        while time.monotonic() - started < timeout_s:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log()}")
            if subprocess.run(probe, check=False).returncode == 0:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {timeout_s} s: {self.log()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, mode: StopMode = "fast", timeout_s: float = 30.0) -> None:
        """Shut down: ``fast`` (clients disconnected, a checkpoint: a planned restart),
        ``immediate`` (every process killed at once, recovery at the next start: a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(_SIGNALS[mode])
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._wait_port_free()

    def restart(self, *, down_s: float = 0.0, mode: StopMode = "fast") -> float:
        """Stop, stay down ``down_s``, start again; returns the seconds it was not answering."""
        started = time.monotonic()
        self.stop(mode=mode)
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    def _wait_port_free(self, timeout_s: float = 10.0) -> None:
        """The backends of a killed postmaster may hold on a moment: the next start needs the port."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    time.sleep(0.05)

    def close(self) -> None:
        """Stop (fast) and remove the cluster."""
        self.stop(mode="fast")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()
