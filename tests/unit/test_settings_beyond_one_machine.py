"""The settings for PgBouncer and Redis Sentinel: what each turns on, and bad values refused at
start with a message that names the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio.sentinel import SentinelConnectionPool

from callcenter.db import asyncpg_connect_args, pooler_connect_args
from callcenter.redis_conn import arq_settings, connect
from callcenter.routing.store import _sync_twin
from callcenter.settings import Settings


def test_settings_for_pgbouncer_turn_both_statement_caches_off() -> None:
    behind = Settings(env="test", database_pooler="pgbouncer")
    assert pooler_connect_args(behind) == {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    assert asyncpg_connect_args(behind) == {"statement_cache_size": 0}
    direct = Settings(env="test")
    assert pooler_connect_args(direct) == {} and asyncpg_connect_args(direct) == {}


def test_settings_refuse_an_unknown_pooler() -> None:
    with pytest.raises(ValidationError, match="database_pooler"):
        Settings(env="test", database_pooler="pgpool")


def test_settings_read_the_sentinels_as_host_and_port() -> None:
    settings = Settings(env="test", redis_sentinels="10.0.0.5:26379, sentinel-b:26380,[::1]:26381")
    assert settings.redis_sentinel_hosts == [("10.0.0.5", 26379), ("sentinel-b", 26380), ("::1", 26381)]
    assert Settings(env="test").redis_sentinel_hosts == []


@pytest.mark.parametrize("bad", ["10.0.0.5", "10.0.0.5:", ":26379", "host:port", "h:70000", "h:0"])
def test_settings_refuse_a_sentinel_that_is_not_host_and_port(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"redis_sentinels: .* is not host:port"):
        Settings(env="test", redis_sentinels=f"10.0.0.9:26379,{bad}")


def test_settings_with_sentinels_make_every_client_ask_them_for_the_primary() -> None:
    settings = Settings(
        env="test",
        redis_sentinels="127.0.0.1:26379,127.0.0.1:26380",
        redis_sentinel_master="calls",
        redis_url="redis://:s3cret@ignored:6379/4",
    )
    arq = arq_settings(settings)
    assert (arq.sentinel, arq.host, arq.sentinel_master) == (
        True,
        [("127.0.0.1", 26379), ("127.0.0.1", 26380)],
        "calls",
    )
    assert (arq.database, arq.password) == (4, "s3cret")
    pool = connect(settings).connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "calls"
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "s3cret"
    twin = _sync_twin(connect(settings)).connection_pool
    assert twin.service_name == "calls" and twin.connection_kwargs["db"] == 4  # type: ignore[attr-defined]


def test_settings_without_sentinels_keep_the_plain_url() -> None:
    settings = Settings(env="test", redis_url="redis://127.0.0.1:6379/3")
    arq = arq_settings(settings)
    assert (arq.sentinel, arq.host, arq.port, arq.database) == (False, "127.0.0.1", 6379, 3)
    assert not isinstance(connect(settings).connection_pool, SentinelConnectionPool)
