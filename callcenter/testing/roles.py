"""The engine's processes (``callcenter serve``, ``worker``, ``agi``) as real subprocesses that a
fault test or the fault benchmark starts, kills with SIGKILL mid-work and starts again.

Each role gets its health port: ``serve`` its HTTP port, ``worker`` and ``agi`` their metrics
port (``CALLCENTER_METRICS_PORT``); :meth:`Role.wait_ready` polls ``/readyz`` there (PostgreSQL,
Redis, and for ``agi`` with the dialer the AMI session). Output goes to ``<log_dir>/<name>.log``,
appended across restarts. A role dies with the process that started it.

Usage::

    worker = Role("worker", env, log_dir=tmp_path)
    worker.start()
    await worker.wait_ready()
    worker.kill()                    # SIGKILL: no clean-up of any kind
    worker.start(); await worker.wait_ready()
    worker.stop()                    # SIGTERM, then SIGKILL after a grace
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import httpx

from callcenter.testing.kannel import _pdeathsig, free_ports

RoleName = Literal["serve", "worker", "agi"]
ROOT = Path(__file__).resolve().parents[2]


class RoleDied(RuntimeError):
    """The process exited while it was being waited for (its log's tail in the message)."""


class Role:
    """One engine process; ``name`` tells apart several of a role (logs, messages)."""

    def __init__(
        self,
        role: RoleName,
        env: Mapping[str, str],
        *,
        log_dir: Path,
        name: str | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.role = role
        self.name = name or role
        self.port = port or free_ports(1)[0]
        self.log_path = log_dir / f"{self.name}.log"
        self.args = args
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CALLCENTER_METRICS_HOST": "127.0.0.1",
            **env,
        }
        if role == "serve":
            self.env["CALLCENTER_API_HOST"] = "127.0.0.1"
            self.env["CALLCENTER_API_PORT"] = str(self.port)
        else:
            self.env["CALLCENTER_METRICS_PORT"] = str(self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def start(self) -> None:
        if self.alive:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "callcenter.cli", self.role, *self.args]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} of {self.name} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig()
            )
        self.starts += 1

    async def wait_ready(self, timeout_s: float = 60.0, *, path: str = "/readyz") -> float:
        """Seconds until ``path`` answers 200 (``/healthz``: the process is up, whatever its
        dependencies say). Raises :class:`RoleDied` if the process exits meanwhile."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=3.0) as http:
            while time.monotonic() - started < timeout_s:
                if not self.alive:
                    code = self.proc.returncode if self.proc is not None else None
                    raise RoleDied(f"{self.name} exited with {code}:\n{self.log()}")
                try:
                    if (await http.get(self.base_url + path)).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready on {path} within {timeout_s} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM (a clean stop), SIGKILL after ``grace_s``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
