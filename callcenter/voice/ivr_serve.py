"""``python -m callcenter.voice.ivr``: the FastAGI server alone, in its own process.

Prints ``listening <host>:<port>`` on stdout once bound (``--port 0`` picks a free port),
serves until SIGTERM/SIGINT, lets running calls finish, and then, with ``--rtt-file``,
writes the engine-side AGI round-trip times (:class:`RttStats` summary, seconds) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from callcenter.db import make_engine
from callcenter.settings import Settings
from callcenter.telephony.stats import RttStats


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m callcenter.voice.ivr", description=__doc__)
    parser.add_argument("--host", default=None, help="default: settings.agi_host")
    parser.add_argument("--port", type=int, default=None, help="default: settings.agi_port")
    parser.add_argument("--database-url", default=None, help="default: CALLCENTER_DATABASE_URL")
    parser.add_argument("--pool-size", type=int, default=20, help="database connections")
    parser.add_argument("--rtt-file", type=Path, default=None, help="write AGI RTT stats here at exit")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    from callcenter.voice.ivr import make_agi_server

    settings = Settings() if args.database_url is None else Settings(database_url=args.database_url)
    engine = make_engine(settings, pool_size=args.pool_size)
    stats = RttStats()
    server = make_agi_server(settings, engine, host=args.host, port=args.port, on_command=stats.record)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            print(f"listening {server.host}:{server.port}", flush=True)
            await stop.wait()
    finally:
        await engine.dispose()
        if args.rtt_file is not None:
            args.rtt_file.write_text(json.dumps(stats.summary()), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(parse(argv)))


if __name__ == "__main__":
    main()
