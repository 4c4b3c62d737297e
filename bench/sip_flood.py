"""Legitimate calls under a SIP flood: `python -m bench.sip_flood` (figures, not assertions).

An INVITE flood and a REGISTER flood from 127.0.0.2, each at several rates, while 40 calls go
from the loopback test agent (127.0.0.1) straight to Asterisk; once with the flood sent to the
SIP edge (Kamailio on 127.0.0.2:5060, as every source beyond loopback must), once sent to Asterisk
itself (what the edge is there to prevent). Reports the share of the legitimate calls answered
and how many flood INVITEs Asterisk saw.

Starts the whole stack itself (fixed ports: run it under the e2e lock), or uses one already
running with --running (started with VOICEPAY_SIP_EDGE_ADDRESSES including 127.0.0.2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from devstack.stack import Stack
from ivr.config import load_settings
from tests.sipp.edge_calls import ASTERISK, EDGE, calls_under_flood

__all__ = ["main"]

RATES = (300, 1000, 3000, 8000)  # requests per second, per flood (INVITE and REGISTER)
CALLS, CALL_RATE = 40, 4


def _asterisk_saw(messages_log: Path, since: int) -> int:
    """Flood INVITEs Asterisk logged as refused (from user "flood") since line ``since``."""
    lines = messages_log.read_text(errors="replace").splitlines()[since:]
    return sum("sip:flood@" in line for line in lines)


def measure(messages_log: Path, work: Path) -> None:
    print(f"{'flood target':<16} {'rate/s each':>11} {'sent':>7} {'Asterisk saw':>12} "
          f"{'calls answered':>15}")
    rows = [(target, label, rate) for target, label in ((EDGE, "edge"), (ASTERISK, "Asterisk itself"))
            for rate in RATES]
    for row, (target, label, rate) in enumerate(rows):
        since = len(messages_log.read_text(errors="replace").splitlines())
        # A source of its own per row: the edge still ignoring the last row's source would
        # flatter the next one.
        outcome = calls_under_flood(work / f"row-{row}", flood_target=target, rate=rate,
                                    flood_source=f"127.0.2.{row + 1}", calls=CALLS,
                                    call_rate=CALL_RATE)
        print(f"{label:<16} {rate:>11} {outcome.flood_requests:>7} "
              f"{_asterisk_saw(messages_log, since):>12} "
              f"{outcome.answered:>6}/{outcome.placed:<3} {outcome.share:6.1%}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sip_flood")
    parser.add_argument("--running", action="store_true", help="use the stack already running")
    args = parser.parse_args(argv)
    os.environ.setdefault("VOICEPAY_SIP_EDGE_ADDRESSES", "127.0.0.2")
    settings = load_settings()
    stack = None if args.running else Stack(settings)
    work = Path(tempfile.mkdtemp(prefix="voicepay-flood-"))
    try:
        if stack is not None:
            stack.start()
        measure(settings.var_dir / "asterisk" / "log" / "messages.log", work)
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
