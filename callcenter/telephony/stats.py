"""Round-trip times of FastAGI commands as the engine sees them (write → final reply line)."""

from __future__ import annotations

import math
from collections import defaultdict, deque


class RttStats:
    """Keeps the last ``maxlen`` samples, overall and per command name.

    Pass ``stats.record`` as ``AgiServer(on_command=...)``; read ``stats.p50``/``stats.p99``
    (seconds) or ``stats.percentile(0.95, "GET DATA")``.
    """

    def __init__(self, maxlen: int = 200_000) -> None:
        self._maxlen = maxlen
        self._all: deque[float] = deque(maxlen=maxlen)
        self._by_command: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=maxlen))

    def record(self, command: str, seconds: float) -> None:
        self._all.append(seconds)
        self._by_command[command].append(seconds)

    @property
    def count(self) -> int:
        return len(self._all)

    def commands(self) -> list[str]:
        return sorted(self._by_command)

    def percentile(self, q: float, command: str | None = None) -> float | None:
        """Nearest-rank percentile (``q`` in 0..1), or None without samples."""
        samples = self._all if command is None else self._by_command.get(command, ())
        if not samples:
            return None
        ordered = sorted(samples)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    @property
    def p50(self) -> float | None:
        return self.percentile(0.50)

    @property
    def p99(self) -> float | None:
        return self.percentile(0.99)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per command (and ``"*"`` for all): count, p50, p99 — for a benchmark report."""
        names = ["*", *self.commands()]
        return {
            name: {
                "count": len(self._all if name == "*" else self._by_command[name]),
                "p50": self.percentile(0.5, None if name == "*" else name),
                "p99": self.percentile(0.99, None if name == "*" else name),
            }
            for name in names
        }
