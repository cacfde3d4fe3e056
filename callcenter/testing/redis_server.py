"""A private ``redis-server`` on 127.0.0.1 for fault tests and the fault benchmark: restarted,
killed or flushed without touching the Redis every other test shares.

Needs ``redis-server`` (Debian ``redis-server``; see :func:`callcenter.testing.redis_sentinel.redis_binary`).
No snapshots on a schedule and no AOF: a :meth:`PrivateRedis.kill` loses everything, as a crash
of a cache-configured Redis does; :meth:`PrivateRedis.restart` saves on shutdown and loads at
start, as ``systemctl restart redis-server`` does.

Usage::

    with PrivateRedis(tmp_path / "redis") as r:
        url = r.url(0)            # redis://127.0.0.1:<port>/0
        r.restart(down_s=2)       # SHUTDOWN SAVE, down for 2 s, started again with its data
        r.kill(); r.start()       # SIGKILL: everything lost
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from callcenter.testing.kannel import _pdeathsig, free_ports
from callcenter.testing.redis_sentinel import ask, redis_binary


class PrivateRedis:
    """One server; :attr:`port` is chosen when made. ``directory`` (made if missing) holds the
    dump and the log; default: a fresh one under the system temp dir, removed by :meth:`close`."""

    def __init__(self, directory: Path | None = None, *, port: int | None = None) -> None:
        self.binary = redis_binary()
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="1415-redis-"))
        self.port = port or free_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def log(self, tail: int = 3000) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb",
            "--maxclients", "2000",
        ]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError):
                if ask(self.port, "PING").startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout_s} s: {self.log()}")

    def shutdown(self, *, save: bool = True, timeout_s: float = 30.0) -> None:
        """``SHUTDOWN SAVE`` (the data is back after :meth:`start`) or ``NOSAVE``."""
        if not self.running:
            return
        assert self.proc is not None
        with contextlib.suppress(OSError):
            ask(self.port, "SHUTDOWN", "SAVE" if save else "NOSAVE")
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash; nothing was saved (no snapshots, no AOF)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "dump.rdb").unlink()

    def restart(self, *, down_s: float = 0.0, save: bool = True) -> float:
        """Shut down, stay down ``down_s``, start again; returns the seconds it was away."""
        started = time.monotonic()
        self.shutdown(save=save)
        if not save:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "dump.rdb").unlink()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self._own_dir:
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
