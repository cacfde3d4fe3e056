"""Login throttling in Redis, per account and per client address.

After ``max_failures`` failures an account is locked for ``base_s``, doubling with each
further failure up to ``max_s``; a success clears the account's count. Addresses get a
larger allowance (offices share one address behind NAT). The account key is the e-mail as
typed, whether or not such a user exists, so the answer does not tell which ones do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

WINDOW_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Throttle:
    redis: Redis
    max_failures: int = 5
    base_s: float = 30.0
    max_s: float = 3600.0
    address_max_failures: int = 50

    @staticmethod
    def _key(kind: str, value: str) -> str:
        return f"login:{kind}:" + hashlib.sha256(value.strip().casefold().encode()).hexdigest()[:32]

    async def locked_for(self, email: str, address: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        pipe = self.redis.pipeline()
        pipe.pttl(self._key("lock", email))
        pipe.pttl(self._key("lock-ip", address))
        ttls = await pipe.execute()
        return max([0.0] + [float(t) / 1000 for t in ttls if t and t > 0])

    async def failed(self, email: str, address: str) -> float:
        """Count a failure; returns the lock it set (0: none yet)."""
        lock = 0.0
        for kind, value, allowance in (
            ("acct", email, self.max_failures),
            ("ip", address, self.address_max_failures),
        ):
            key = self._key(kind, value)
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, WINDOW_S)
            count = int((await pipe.execute())[0])
            if count >= allowance:
                seconds = min(self.max_s, self.base_s * 2 ** (count - allowance))
                await self.redis.set(
                    self._key("lock" if kind == "acct" else "lock-ip", value), 1, px=int(seconds * 1000)
                )
                lock = max(lock, seconds)
        return lock

    async def succeeded(self, email: str) -> None:
        await self.redis.delete(self._key("acct", email), self._key("lock", email))
