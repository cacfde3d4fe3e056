"""The gateway that sends nowhere: every message lands in a Redis stream.

It is the default in development, the demo and the benchmarks, so it must cost almost
nothing: a whole batch is one pipeline of ``XADD`` (one round trip, no per-message await).
The simulator and the tests read the stream back with ``read_outbox`` and answer through
the ``/sms/loopback/*`` webhooks, as a real operator would.

Usage::

    gateway = LoopbackGateway(redis)
    results = await gateway.send_many([OutboundSms(to="+218910000001", body="نعم؟", ref="d1")])
    items, last_id = await read_outbox(redis, "0-0", 100, None)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from callcenter.sms.gateways.base import OutboundSms, SendResult

DEFAULT_STREAM = "loopback:outbox"

OutboxItem = tuple[str, OutboundSms, str]  # (stream id, message, gateway id)


class LoopbackGateway:
    name = "loopback"

    def __init__(self, redis: Redis, *, stream: str = DEFAULT_STREAM, maxlen: int = 1_000_000) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen

    async def send_many(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """One pipeline for the whole batch; a Redis failure is a temporary error for all.

        The stream is capped approximately (``MAXLEN ~``) so a forgotten demo cannot
        fill the server's memory; trimming whole nodes is far cheaper than exact trims.
        """
        if not messages:
            return []
        ids = [f"lb-{uuid.uuid4().hex}" for _ in messages]
        # Bytes in, so redis-py's per-argument encoding takes its fast path: packing the
        # commands is most of the cost of a 100k batch.
        head = ("XADD", self._stream.encode(), b"MAXLEN", b"~", str(self._maxlen).encode(), b"*")
        results: list[SendResult | None] = [None] * len(messages)
        queued: list[int] = []  # indexes of the messages in the pipeline
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i, (msg, gateway_id) in enumerate(zip(messages, ids, strict=True)):
                    try:
                        to, body, ref = msg.to.encode(), msg.body.encode(), msg.ref.encode()
                    except UnicodeEncodeError as exc:  # a lone surrogate: no retry will help
                        results[i] = SendResult(ref=msg.ref, error=f"unencodable text: {exc}")
                        continue
                    pipe.execute_command(
                        *head,
                        b"to",
                        to,
                        b"body",
                        body,
                        b"ref",
                        ref,
                        b"id",
                        gateway_id.encode(),
                    )
                    queued.append(i)
                replies = await pipe.execute(raise_on_error=False) if queued else []
        except (RedisError, OSError) as exc:
            unavailable = f"unavailable ({type(exc).__name__}): {exc}"
            replies = [RedisError(unavailable)] * len(queued)
        for i, reply in zip(queued, replies, strict=True):
            results[i] = (
                SendResult(ref=messages[i].ref, error=f"redis: {reply}", temporary=True)
                if isinstance(reply, Exception)
                else SendResult(ref=messages[i].ref, gateway_id=ids[i])
            )
        return [r for r in results if r is not None]

    async def aclose(self) -> None:
        """Nothing to close: the Redis connection belongs to whoever passed it in."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_outbox(
    redis: Redis,
    last_id: str = "0-0",
    count: int = 100,
    block_ms: int | None = None,
    *,
    stream: str = DEFAULT_STREAM,
) -> tuple[list[OutboxItem], str]:
    """Messages after ``last_id`` (at most ``count``), and the id to continue from.

    ``block_ms`` waits that long for new entries (``None``: don't wait; ``0`` would wait
    forever, as in Redis). Works whether or not the client decodes responses.
    """
    reply = await redis.xread({stream: last_id}, count=count, block=block_ms)
    items: list[OutboxItem] = []
    new_last = last_id
    # redis-py parses RESP2 as [[stream, entries]] and RESP3 as {stream: [entries]}.
    if isinstance(reply, dict):
        streams = [entries for wrapped in reply.values() for entries in wrapped]
    else:
        streams = [entries for _stream, entries in reply or []]
    for entries in streams:
        for raw_id, raw_fields in entries:
            fields = {_text(k): _text(v) for k, v in raw_fields.items()}
            stream_id = _text(raw_id)
            sms = OutboundSms(to=fields["to"], body=fields["body"], ref=fields["ref"])
            items.append((stream_id, sms, fields["id"]))
            new_last = stream_id
    return items, new_last
