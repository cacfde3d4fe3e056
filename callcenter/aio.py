"""Small asyncio helpers the long-running roles share.

Usage::

    await wait_any(stop, appended, seconds=1.0)   # a poll that a signal cuts short
"""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event | None, seconds: float | None) -> None:
    """Until one of ``events`` (``None``s are skipped) is set, or ``seconds`` have
    passed. Why not ``asyncio.wait_for(event.wait(), ...)``: a loop that sleeps between polls
    must also wake for a stop or a new-work signal, and must leave no waiter task behind
    (each one left pending would be a warning at shutdown and a leak in a long run)."""
    waiters = {asyncio.ensure_future(e.wait()) for e in events if e is not None}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
