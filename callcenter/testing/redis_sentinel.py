"""A real Redis Sentinel set on 127.0.0.1 for tests: a primary, a replica and one sentinel.

Needs ``redis-server`` (Debian ``redis-server``; ``redis-sentinel`` is the same binary in
sentinel mode, started here as ``redis-server sentinel.conf --sentinel``); without it
:class:`SentinelUnavailable` is raised. Quorum 1 and a short ``down-after-milliseconds``, so a
killed primary is replaced within a few seconds.

Usage::

    with SentinelLab(tmp_path) as lab:
        settings = lab.settings(base)  # CALLCENTER_REDIS_SENTINELS=127.0.0.1:<port>
        lab.kill_primary()  # SIGKILL
        lab.wait_promoted()  # the replica is the primary now
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from callcenter.settings import Settings
from callcenter.testing.kannel import _pdeathsig, free_ports

MASTER = "mymaster"


class SentinelUnavailable(RuntimeError):
    """``redis-server`` is not installed (Debian: ``redis-server`` / ``redis-sentinel``)."""


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found is None:
        raise SentinelUnavailable("redis-server is not installed (Debian: apt-get install redis-sentinel)")
    return Path(found)


def ask(port: int, *command: str, timeout_s: float = 1.0) -> bytes:
    """One command in RESP on a fresh socket; the raw answer (enough for tests' probes)."""
    payload = f"*{len(command)}\r\n".encode() + b"".join(
        f"${len(part.encode())}\r\n{part}\r\n".encode() for part in command
    )
    with socket.create_connection(("127.0.0.1", port), timeout_s) as s:
        s.sendall(payload)
        time.sleep(0.02)
        return s.recv(65536)


class SentinelLab:
    """Ports are chosen on start; ``monitor=False`` starts a sentinel that knows no primary yet
    (it is told with :meth:`monitor`), for the "Sentinel answering with no primary" case."""

    def __init__(self, directory: Path, *, monitor: bool = True, down_after_ms: int = 1000) -> None:
        self.dir = directory
        self.watching = monitor
        self.down_after_ms = down_after_ms
        self.primary_port, self.replica_port, self.sentinel_port = free_ports(3)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(
            update={
                "redis_url": None,
                "redis_sentinels": f"127.0.0.1:{self.sentinel_port}",
                "redis_sentinel_master": MASTER,
            }
        )

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start_server("primary", self.primary_port)
        self.start_server("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        conf = self.dir / "sentinel.conf"  # sentinel rewrites it: its own file
        lines = [f"port {self.sentinel_port}", "bind 127.0.0.1", f"dir {self.dir}"]
        if self.watching:
            lines += self._monitor_lines()
        conf.write_text("\n".join(lines) + "\n")
        self._spawn("sentinel", self.sentinel_port, [str(conf), "--sentinel"])
        if self.watching:
            self.wait_replicated()

    def _monitor_lines(self) -> list[str]:
        return [
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 1",
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER} 3000",
            f"sentinel parallel-syncs {MASTER} 1",
        ]

    def monitor(self) -> None:
        """Tell the running sentinel about the primary (SENTINEL MONITOR + SET)."""
        ask(self.sentinel_port, "SENTINEL", "MONITOR", MASTER, "127.0.0.1", str(self.primary_port), "1")
        ask(self.sentinel_port, "SENTINEL", "SET", MASTER, "down-after-milliseconds", str(self.down_after_ms))
        ask(self.sentinel_port, "SENTINEL", "SET", MASTER, "failover-timeout", "3000")
        self.watching = True

    def start_server(self, name: str, port: int, *extra: str) -> None:
        argv = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn(name, port, [*argv, "--dir", str(self.dir), "--dbfilename", f"{name}.rdb", *extra])

    def _spawn(self, name: str, port: int, args: list[str]) -> None:
        with (self.dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(redis_binary()), *args], stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig()
            )
        self.procs[name] = proc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log(name)}")
            with contextlib.suppress(OSError):
                if ask(port, "PING").startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not answer within 10 s: {self.log(name)}")

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def wait_replicated(self, timeout_s: float = 15.0) -> None:
        """Until the replica is in sync and the sentinel has found it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            synced = b"master_link_status:up" in ask(self.replica_port, "INFO", "replication")
            known = f"{self.replica_port}".encode() in ask(self.sentinel_port, "SENTINEL", "REPLICAS", MASTER)
            if synced and known:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the replica did not sync in time: {self.log('replica')}")

    def primary_now(self) -> int | None:
        """The port the sentinel names as primary (None: it knows none)."""
        answer = ask(self.sentinel_port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        parts = answer.split(b"\r\n")
        return int(parts[4]) if answer.startswith(b"*2") and len(parts) > 4 else None

    def kill_primary(self) -> None:
        proc = self.procs.pop("primary")
        proc.kill()  # SIGKILL: no goodbye to the replica or the clients
        proc.wait()

    def wait_promoted(self, timeout_s: float = 30.0) -> float:
        """Seconds until the sentinel names the replica as primary and it accepts writes."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.primary_now() == self.replica_port and b"role:master" in ask(
                self.replica_port, "INFO", "replication"
            ):
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"no failover within {timeout_s} s: {self.log('sentinel')}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
