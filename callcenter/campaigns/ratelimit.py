"""A token bucket held in Redis, so every worker of every host shares one send rate per gateway.

The bucket refills continuously at ``rate`` tokens per second up to ``burst``; Redis' own
clock (TIME) is used, so workers on hosts with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import math

from redis.asyncio import Redis

from callcenter import metrics

_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if got > 0 then return {got, '0'} end
return {0, tostring((1 - tokens) / rate)}
"""


def default_burst(rate: float) -> int:
    """A tenth of a second of rate (at least 1): smooth seconds, few Redis round trips."""
    return max(1, math.ceil(rate / 10))


class TokenBucket:
    def __init__(self, redis: Redis, key: str, *, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (use no bucket for no limit)")
        self.redis = redis
        self.key = f"ratelimit:{key}"
        self.rate = rate
        self.burst = burst or default_burst(rate)
        self._script = redis.register_script(_LUA)
        self._waits = metrics.RATE_LIMIT_WAITS.labels(key)
        self._waited = metrics.RATE_LIMIT_WAIT_SECONDS.labels(key)

    async def try_take(self, want: int) -> tuple[int, float]:
        """Take up to ``want`` tokens now: (granted, seconds to wait when none were)."""
        got, wait = await self._script(keys=[self.key], args=[self.rate, self.burst, min(want, self.burst)])
        return int(got), float(wait)

    async def take(self, want: int, *, max_wait: float = 0.25) -> int:
        """Wait until at least one token is granted (sleeping at most ``max_wait`` at a time,
        so a caller can check for pause/cancel between waits); returns how many: 0 if the
        wait was cut short by ``max_wait``."""
        got, wait = await self.try_take(want)
        if got:
            return got
        pause = min(wait, max_wait)
        self._waits.inc()
        self._waited.inc(pause)
        await asyncio.sleep(pause)
        return 0
