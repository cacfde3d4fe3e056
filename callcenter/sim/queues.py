"""Queue members as app_queue keeps them: QueueAdd/QueuePause/QueueRemove/QueueStatus and
the agent events, in the formats of ``ami-session-1.txt`` and ``ami-session-2.txt``."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sim.core import Pairs, SimAsterisk, event


@dataclass
class Member:
    queue: str
    name: str
    interface: str
    state_interface: str
    penalty: int
    login_time: int
    paused: bool = False
    reason: str = ""
    last_pause: int = 0
    status: int = 4  # AST_DEVICE_INVALID until the device is used (as recorded)

    def pairs(self, *, listing: bool = False) -> Pairs:
        """Event form (``QueueMember*``), or the ``QueueStatus`` listing form."""
        who = (
            [("Name", self.name), ("Location", self.interface)]
            if listing
            else [("MemberName", self.name), ("Interface", self.interface)]
        )
        pairs = [("Queue", self.queue), *who, ("StateInterface", self.state_interface)]
        pairs += [
            ("Membership", "dynamic"), ("Penalty", str(self.penalty)), ("CallsTaken", "0"),
            ("LastCall", "0"), ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)), ("InCall", "0"), ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"), ("PausedReason", self.reason),
        ]  # fmt: skip
        if not listing:
            pairs.append(("Ringinuse", "1"))
        pairs.append(("Wrapuptime", "0"))
        return pairs


class Queues:
    def __init__(self, hub: SimAsterisk, strategies: dict[str, str]) -> None:
        self.hub = hub
        self.strategies = dict(strategies)
        self.members: dict[tuple[str, str], Member] = {}

    def _now(self) -> int:
        return int(self.hub.clock.wall())

    def _pause_device(self, member: Member, *, deferred: bool) -> None:
        device = f"Queue:{member.queue}_pause_{member.interface}"
        self.hub.device_state(device, "INUSE" if member.paused else "NOT_INUSE", deferred=deferred)

    def add(self, queue: str, interface: str, name: str, penalty: int, paused: bool) -> str | None:
        """None, or the error message Asterisk gives."""
        if queue not in self.strategies:
            return "Unable to add interface: No such queue"
        if (queue, interface) in self.members:
            return "Unable to add interface to queue: Already there"
        member = Member(queue, name or interface, interface, interface, penalty, self._now())
        member.paused = paused
        self.members[(queue, interface)] = member
        self.hub.publish(event("QueueMemberAdded", "agent", member.pairs()), deferred=True)
        self._pause_device(member, deferred=False)
        return None

    def remove(self, queue: str, interface: str) -> str | None:
        member = self.members.pop((queue, interface), None)
        if member is None:
            return "Unable to remove interface: Not there"
        self.hub.publish(event("QueueMemberRemoved", "agent", member.pairs()), deferred=True)
        return None

    def pause(self, queue: str | None, interface: str, paused: bool, reason: str) -> str | None:
        found = [m for m in self.members.values() if m.interface == interface]
        found = [m for m in found if queue in (None, "", m.queue)]
        if not found:
            return "Interface not found"
        for member in found:
            member.paused, member.reason = paused, reason if paused else ""
            member.last_pause = self._now()
            self._pause_device(member, deferred=True)
            self.hub.publish(event("QueueMemberPause", "agent", member.pairs()), deferred=True)
        return None

    def device_status(self, interface: str, status: int) -> None:
        """An agent's device changed (2 in use, 1 not in use): QueueMemberStatus per queue."""
        for member in self.members.values():
            if member.state_interface == interface:
                member.status = status
                self.hub.publish(event("QueueMemberStatus", "agent", member.pairs()))

    def status(self, action_id: str | None, queue: str | None) -> list[Pairs]:
        """The events of a QueueStatus listing (without the response and the Complete)."""
        tail = [("ActionID", action_id)] if action_id else []
        listing: list[Pairs] = []
        for name, strategy in self.strategies.items():
            if queue and queue != name:
                continue
            listing.append(
                [("Event", "QueueParams"), ("Queue", name), ("Max", "0"), ("Strategy", strategy)]
                + [(key, "0") for key in ("Calls", "Holdtime", "TalkTime", "Completed")]
                + [("Abandoned", "0"), ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0")]
                + [("ServicelevelPerf2", "0.0"), ("Weight", "0"), *tail]
            )
            for member in self.members.values():
                if member.queue == name:
                    listing.append([("Event", "QueueMember"), *member.pairs(listing=True), *tail])
        return listing
