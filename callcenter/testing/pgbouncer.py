"""A real PgBouncer on 127.0.0.1 for tests: transaction pooling in front of a PostgreSQL.

Needs the Debian package ``pgbouncer``; without it :class:`PgBouncerUnavailable` is raised.
PgBouncer refuses to run as root, so under root it is started with ``-u nobody`` in a
directory ``nobody`` owns (a fresh one under the system temp dir, removed by :meth:`stop`).

Usage::

    with PgBouncer(pool_size=2) as bouncer:
        url = bouncer.url("cc_test")  # postgresql://postgres@127.0.0.1:<port>/cc_test
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from callcenter.testing.kannel import _pdeathsig, free_ports


class PgBouncerUnavailable(RuntimeError):
    """The ``pgbouncer`` binary is not installed (Debian: ``pgbouncer``)."""


def pgbouncer_binary() -> Path:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PgBouncerUnavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    return Path(found)


def render_ini(
    *, port: int, upstream_host: str, upstream_port: int, pool_size: int, pool_mode: str, auth_file: Path
) -> str:
    """Every database name is passed through to the upstream server, user ``postgres`` with
    trust (the auth file only has to name the user). ``default_pool_size`` server connections
    per database and user: fewer than the engine's client connections, so transactions of one
    client connection land on different server connections, as in production."""
    return f"""\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
server_round_robin = 1
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""


class PgBouncer:
    """One pgbouncer process; :attr:`port` is free and chosen on start."""

    def __init__(
        self,
        *,
        pool_size: int = 2,
        pool_mode: str = "transaction",
        upstream_host: str = "127.0.0.1",
        upstream_port: int = 5432,
    ) -> None:
        self.pool_size = pool_size
        self.pool_mode = pool_mode
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str, *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def log(self) -> str:
        """What pgbouncer wrote (its errors name the statements it saw fail)."""
        if self.dir is None or not (self.dir / "pgbouncer.log").exists():
            return ""
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def start(self, timeout_s: float = 10.0) -> None:
        binary = pgbouncer_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="1415-pgbouncer-"))
        self.port = free_ports(1)[0]
        auth = self.dir / "userlist.txt"
        auth.write_text('"postgres" ""\n')
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            render_ini(
                port=self.port,
                upstream_host=self.upstream[0],
                upstream_port=self.upstream[1],
                pool_size=self.pool_size,
                pool_mode=self.pool_mode,
                auth_file=auth,
            )
        )
        argv = [str(binary), str(ini)]
        if os.geteuid() == 0:  # "PgBouncer should not run as root"
            nobody = pwd.getpwnam("nobody")
            for path in (self.dir, auth, ini):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            argv[1:1] = ["-u", "nobody"]
        with (self.dir / "pgbouncer.log").open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, preexec_fn=_pdeathsig()
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen within {timeout_s} s:\n{self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()  # SIGTERM: immediate shutdown
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
