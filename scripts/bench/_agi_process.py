"""One telephony process for acd_load.py: what ``callcenter agi`` runs (the FastAGI IVR with
the ACD, the routing rounds, the callback dialer on AMI; settings from the environment), and at
exit the routing rounds' durations as the store measured them (``ROUND_TIMES``, seconds: the
lock's hold on Redis' clock, and this process's view of reading, deciding and writing) written as
JSON to the file named by the only argument.

    CALLCENTER_... python scripts/bench/_agi_process.py rounds.json
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import _common  # noqa: F401  (the checkout on sys.path)

from callcenter.cli import tune_gc
from callcenter.cli_common import run
from callcenter.routing.store import ROUND_TIMES
from callcenter.settings import Settings
from callcenter.voice.service import run_telephony


def main(out: Path) -> None:
    async def telephony(settings: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_telephony(settings, stop, dial=True)
        finally:
            out.write_text(
                json.dumps(
                    {
                        "held": list(ROUND_TIMES.samples),
                        "parts": list(ROUND_TIMES.parts),
                        "cpu": list(ROUND_TIMES.cpu),
                    }
                )
            )

    tune_gc()  # as ``callcenter agi`` does
    run(telephony)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
