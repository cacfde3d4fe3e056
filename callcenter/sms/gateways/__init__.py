"""SMS gateways: one module per provider, chosen by ``settings.sms_gateway``.

Providers are imported lazily so a deployment only loads (and only needs working
configuration for) the one it uses.

Usage: ``gateway = make_gateway(settings, redis)``; ``await gateway.aclose()`` at shutdown.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from callcenter.sms.gateways.base import Gateway

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from callcenter.settings import Settings


def make_gateway(settings: Settings, redis: Redis) -> Gateway:
    """The gateway ``settings.sms_gateway`` names; ``redis`` is only used by loopback."""
    if settings.sms_gateway == "twilio":
        from callcenter.sms.gateways.twilio import TwilioGateway

        return TwilioGateway(settings)
    if settings.sms_gateway == "kannel":
        kannel = importlib.import_module("callcenter.sms.gateways.kannel")
        gateway: Gateway = kannel.KannelGateway(settings)
        return gateway
    from callcenter.sms.gateways.loopback import LoopbackGateway

    return LoopbackGateway(redis)
