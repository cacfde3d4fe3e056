"""A no-server demo: ``python -m callcenter.sim --calls 200 --concurrency 50``.

Starts the engine's FastAGI server with a tiny IVR, the simulator on 127.0.0.1, places scripted
inbound calls and one outbound call through AMI, and prints what happened with the AGI
command round-trip times (p50/p99) as the engine measured them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections import Counter

from callcenter.sim import Caller, SimConfig, Simulator
from callcenter.telephony.agi import AgiChannel, AgiServer
from callcenter.telephony.ami import AmiClient, AmiMessage
from callcenter.telephony.stats import RttStats


async def demo(calls: int, concurrency: int, time_scale: float) -> None:
    outcomes: Counter[str] = Counter()
    stats = RttStats()
    agi = AgiServer("127.0.0.1", 0, on_command=stats.record)

    @agi.route("ivr")
    async def ivr(call: AgiChannel) -> None:
        await call.answer()
        choice = await call.get_data("/prompts/ar/menu", 3000, 1)
        if choice == "1":
            number = await call.get_data("/prompts/ar/national_id", 5000, 12)
            await call.set_variable("NATIONAL_ID", number)
        await call.say_digits("1415")
        outcomes[f"menu {choice or 'timeout'}"] += 1
        await call.hangup()

    await agi.start()
    config = SimConfig(agi_port=agi.port, time_scale=time_scale)
    async with Simulator(config) as sim:
        callers = [
            Caller.keys(random.choice(["1", "2", None]), f"{random.randrange(10**11):012d}#")
            for _ in range(calls)
        ]
        await sim.run_callers(callers, concurrency=concurrency)

        answered = asyncio.Event()
        ami = AmiClient("127.0.0.1", sim.ami_port, "engine", "s3cret", ping_interval=None)

        def on_response(event: AmiMessage) -> None:
            print(f"OriginateResponse: Reason {event['Reason']} on {event['Channel']}")
            answered.set()

        ami.on("OriginateResponse", on_response)
        async with ami:
            await ami.originate(channel="PJSIP/0912345678@trunk", context="inbound-1415",
                                exten="1415", caller_id="1415 <1415>")  # fmt: skip
            await asyncio.wait_for(answered.wait(), 30)
            await sim.wait_idle()
    await agi.close()
    print(dict(outcomes))
    for name, row in stats.summary().items():
        p50, p99 = row["p50"] or 0.0, row["p99"] or 0.0
        times = f"p50 {p50 * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms"
        print(f"{name:>14}: {row['count']:6} commands  {times}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.0, help="1 = real durations")
    args = parser.parse_args()
    asyncio.run(demo(args.calls, args.concurrency, args.time_scale))


if __name__ == "__main__":
    main()
