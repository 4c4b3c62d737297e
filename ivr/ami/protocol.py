"""AMI text off the socket: panoramisk's protocol with a bounded, linear reader and one string
per header. ``AmiClient`` hands it to panoramisk's ``Manager`` as its ``protocol_factory``.

What panoramisk 1.4's ``AMIProtocol.data_received`` does that we cannot keep:
- it keeps every byte until a blank line ends a message, without limit: a peer that never sends
  one grows the buffer until memory runs out;
- it splits the whole pending text again on every packet: one long message in small packets
  costs time quadratic in its length;
- a header sent twice becomes a list, on which its own dispatch (``regexp.match``, ``.lower()``,
  ``.endswith``) and our handlers (dictionary lookups) fail inside ``data_received``, and asyncio
  then drops the connection. None of the actions and events we use repeats a header, so the
  first value is kept and every header is a ``str``.
A message that still fails in its handler is logged and dropped; the connection stays up.
"""

from __future__ import annotations

import logging

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

__all__ = ["AmiProtocol", "MAX_MESSAGE", "parse_message"]

log = logging.getLogger(__name__)

# The longest message we wait for the end of. Ours are events and short responses, well under
# 4 KB; a peer sending more without a blank line is not an Asterisk we can talk to.
MAX_MESSAGE = 64 * 1024
_END = "\r\n\r\n"


def parse_message(text: str) -> Message | None:
    """One AMI message (its lines without the blank line that ended it), every header value a
    ``str``; None if it is neither an event nor a response (the greeting banner, noise)."""
    message = Message.from_line(text.strip())
    if message is None:
        return None
    for key, value in list(message.items()):
        if isinstance(value, list):
            message[key] = value[0]
    return message


class AmiProtocol(AMIProtocol):
    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._pending = ""

    def data_received(self, data: bytes) -> None:
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if self.version is None and not self._pending and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition("\r\n")[0].partition("/")[2].strip()
        # Only the new text, and the few characters before it, can complete an end of message.
        start = max(0, len(self._pending) - (len(_END) - 1))
        self._pending += text
        if _END in self._pending[start:]:
            *messages, self._pending = self._pending.split(_END)
        else:
            messages = []
        if len(self._pending) > MAX_MESSAGE:
            log.error("AMI: over %d bytes without the end of a message; reconnecting", MAX_MESSAGE)
            self._pending = ""
            self.transport.close()  # panoramisk's connection_lost reconnects
            return
        for raw in messages:
            message = parse_message(raw)
            if message is None:
                continue
            try:
                self.handle_message(message)
            except Exception:  # a bug in one handler must not take the connection down
                log.exception("AMI: %s dropped: its handler failed",
                              message.get("Event") or "a response")
