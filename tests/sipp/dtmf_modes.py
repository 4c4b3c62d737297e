"""The DTMF modes our test phones key in, and the Asterisk endpoint each one calls as.

Asterisk's `dtmf_mode` is per endpoint (asterisk-conf/pjsip.conf): a SIPp caller is the endpoint of
a mode by the loopback address it sends from, a called test cardholder by its number. Each entry
says how our phone keys on that endpoint: RFC 4733 events (the default), SIP INFO with either body,
in-band G.711 tones for Asterisk's detector, and `auto` with a phone that sends only tones (and so
offers no telephone-event: auto then listens in-band).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DtmfMode", "MODES", "mode"]


@dataclass(frozen=True)
class DtmfMode:
    name: str
    endpoint_mode: str  # the endpoint's dtmf_mode in pjsip.conf
    keyed_via: str  # tests.sipp.scenario.Key.via
    caller_ip: str  # a SIPp caller sending from here is that endpoint (identify by IP)
    callback_number: str  # the test cardholder the platform calls back on that endpoint
    phone_port: int  # where that cardholder's SIPp UAS listens (its AOR's contact)

    @property
    def phone_media_port(self) -> int:
        return 18000 + 100 * (self.phone_port % 10)


MODES = [
    DtmfMode("rfc4733", "rfc4733", "rfc4733", "127.0.0.1", "13800138101", 5071),
    DtmfMode("info-dtmf-relay", "info", "info", "127.0.0.21", "13800138121", 5091),
    DtmfMode("info-dtmf", "info", "info-dtmf", "127.0.0.21", "13800138121", 5091),
    DtmfMode("inband", "inband", "inband", "127.0.0.22", "13800138122", 5092),
    DtmfMode("auto-inband", "auto", "inband", "127.0.0.23", "13800138123", 5093),
]


def mode(name: str) -> DtmfMode:
    return next(m for m in MODES if m.name == name)
