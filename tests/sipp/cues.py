"""Cues for a SIPp caller: the test says when to key, instead of SIPp guessing from prompt lengths.

SIPp's 3PCC mode connects a scenario to a "twin" over TCP: ``<sendCmd>`` sends it a message,
``<recvCmd>`` waits for one. Here the test is the twin. Before each cued step
(``Key(..., cue=...)`` in scenario.py) the scenario says it is ready for that cue and waits; the
test, having seen the IVR ask (a prompt in Asterisk's log, a payment state), sends the cue. Twin
messages are SIP-like header blocks naming the call's Call-ID, each ended by an ESC byte.

    cues = Cues()                                   # listening before SIPp starts
    sipp ... -3pcc 127.0.0.1:<cues.port>            # SIPp connects at once
    cues.connected(); ...; cues.send("PIN prompt")  # the call's next cued step runs
"""

from __future__ import annotations

import re
import socket

__all__ = ["Cues"]

_END = b"\x1b"  # SIPp ends each twin message with ESC


class Cues:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._twin: socket.socket | None = None
        self._pending = b""

    def connected(self, timeout: float = 15) -> None:
        """Wait for SIPp to connect (it does as it starts, before it places the call)."""
        self._server.settimeout(timeout)
        self._twin, _ = self._server.accept()

    def send(self, cue: str, timeout: float = 120) -> None:
        """Let the call's next cued step run, once SIPp says it waits for ``cue``."""
        if self._twin is None:
            raise RuntimeError("SIPp has not connected: call connected() first")
        ready = self._receive(timeout)
        call_id, waiting_for = self._header(ready, "Call-ID"), self._header(ready, "X-Ready")
        if waiting_for != cue:
            raise AssertionError(f"SIPp waits for the cue {waiting_for!r}, not {cue!r}")
        self._twin.sendall(f"Call-ID: {call_id}\r\nX-Cue: {cue}\r\n\r\n".encode() + _END)

    def _receive(self, timeout: float) -> bytes:
        assert self._twin is not None
        self._twin.settimeout(timeout)
        while _END not in self._pending:
            chunk = self._twin.recv(4096)
            if not chunk:
                raise ConnectionError("SIPp closed the cue connection (the call ended or failed)")
            self._pending += chunk
        message, _, self._pending = self._pending.partition(_END)
        return message

    @staticmethod
    def _header(message: bytes, name: str) -> str:
        found = re.search(rb"^" + name.encode() + rb":[ \t]*(.+?)\s*$", message,
                          flags=re.MULTILINE | re.IGNORECASE)
        if not found:
            raise ValueError(f"SIPp's message has no {name} header")
        return found.group(1).decode("ascii")

    def close(self) -> None:
        for sock in (self._twin, self._server):
            if sock is not None:
                sock.close()
