"""What the real-Asterisk harness modules share: paths, key timings, errors, the unpacked
toolchain, and child processes that die with the test."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DIALPLANS_DIR = REPO_ROOT / "dialplans"
SIPP_TEMPLATES_DIR = REPO_ROOT / "tests" / "sipp"
#: Modules the robot citizens need on top of dialplans/modules.conf.
ROBOT_MODULES = ("app_senddtmf.so", "app_playtones.so")
#: The number citizens dial (the SIPp UAC's Request-URI user).
SERVICE_NUMBER = "1415"

_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_KEY_MS = 160  # tone length of each RFC 2833 key
_KEY_GAP_MS = 300  # silence after each key
_PAUSES_MS = {"w": 500, "W": 1000}  # the same pause letters as SendDTMF


class AsteriskUnavailable(RuntimeError):
    """The Asterisk / SIPp builds are missing or cannot run on this machine."""


class AsteriskError(RuntimeError):
    """Asterisk did not boot, or a CLI command failed (the message ends with the log's tail)."""


# -- the builds ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Toolchain:
    """Unpacked Asterisk and SIPp trees."""

    asterisk_home: Path
    sipp_home: Path

    @property
    def asterisk_run(self) -> Path:
        return self.asterisk_home / "bin" / "asterisk-run"

    @property
    def asterisk_cli(self) -> Path:
        return self.asterisk_home / "bin" / "asterisk-run-cli"

    @property
    def sipp(self) -> Path:
        return self.sipp_home / "bin" / "sipp"


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 a moment ago (TCP by default, ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _udp_bound(port: int) -> bool:
    """True once something (SIPp) holds the UDP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that has the child killed when the spawning thread dies (Linux)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever still runs (also the finalizer: no event loop needed)."""
    for proc in procs:
        _kill(proc)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


# -- Asterisk -----------------------------------------------------------------------------------
