"""Real softphones as test user agents: baresip (tests/softphones/baresip.py) and Linphone's
command-line client (tests/softphones/linphone.py), each set up the way the README's "Pointing a
softphone at it" tells a user to, and driven by the tests as a cardholder or an agent would use it.

Test tooling only: nothing in ivr/ imports this. Each phone registers with digest auth through the
SIP edge (127.0.0.2 in the tests) from a loopback address of its own, so an edge ban one test
provokes never reaches another, and keys as RFC 4733 telephone-events.
"""

from __future__ import annotations

import subprocess
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Account", "Softphone", "SoftphoneError", "wait_until", "wait_or_kill", "silent_wav",
           "EDGE_ADDRESS"]

# Where a phone beyond loopback registers and calls (VOICEPAY_SIP_EDGE_ADDRESSES in the tests).
EDGE_ADDRESS = "127.0.0.2"


class SoftphoneError(AssertionError):
    """The softphone did not do what the test asked (never registered, the call never came)."""


@dataclass(frozen=True)
class Account:
    """One SIP account on one phone: who it is, its password, and where the phone listens.

    ``address`` is the phone's own (a loopback address of its own), ``sip_port`` and
    ``rtp_port`` the ports it takes SIP and its one audio stream on: what a capture of
    everything sent to the phone filters on."""
    user: str
    password: str
    address: str
    sip_port: int
    rtp_port: int
    edge: str = EDGE_ADDRESS
    # "tcp": the account says ;transport=tcp, and the phone registers and calls over TCP
    # (baresip; the linphonec driver talks UDP only).
    transport: str = "udp"

    @property
    def aor(self) -> str:
        params = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.user}@{self.edge}{params}"

    def uri(self, number: str) -> str:
        """What the phone dials for ``number``: the number at the edge (over the account's
        transport: the phone adds it)."""
        return f"sip:{number}@{self.edge}"


class Softphone:
    """What every driver does alike: ``with Phone(...) as phone:`` starts it and stops it
    (unregistered, its process gone) whatever the test did inside."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; a SoftphoneError naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SoftphoneError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def wait_or_kill(process: subprocess.Popen, timeout: float) -> None:
    """Give a phone told to quit ``timeout`` s to unregister and exit; then kill it."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def silent_wav(path: Path, seconds: int = 600) -> Path:
    """A silent 8 kHz WAV: the phone's microphone, a user who says nothing. The phone streams it
    as audio, as a phone with a microphone does: RTP keeps flowing between its keys."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8000 * seconds)
    return path
