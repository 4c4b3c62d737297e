"""The acquirer's daily reconciliation file for the platform: what it settled on one day.

The layout is the platform's (ivr/settlement/zm_file.py, one field table for writer and reader).
The day is the acquirer's settlement day by the same cut-off as the platform's (the contract
between them, ``VOICEPAY_SETTLEMENT_CUTOFF``), taken at the moment the acquirer received each
message. The merchant category and Chinese name come from the acquirer's merchant register, here
the platform's merchant seed (the acquirer registered the sub-merchants from it).

The acquirer charges the platform ``ACQUIRER_RATE`` per purchase (by the platform's rounding rule,
ivr/settlement/fees.py); a void gives its purchase's fee back, a refund gives none back.

The simulator's records live in memory, so the file covers what this run of the simulator saw;
the server rewrites the current day's file half a second after a message, once for all messages of
that half second, and less often as the day's file grows slower to rebuild (at most a twentieth
of its time: ``DailyFilePublisher``, simulators/acquirer/server.py), so the file of a day is
final once its cut-off has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

from ivr.files import write_private
from ivr.merchants import load_seed
from ivr.payments.settlement_day import Cutoff
from ivr.settlement.fees import FeeRate, fee_of
from ivr.settlement.zm_file import TxnCode, ZmFile, ZmRecord, file_name
from simulators.acquirer.simulator import AcquirerSimulator, SettledTxn

__all__ = ["ACQUIRER_ID", "ACQUIRER_RATE", "daily_file", "DailyFilePublisher"]

ACQUIRER_ID = "48020000"  # the simulated acquirer's institution code (as in field 32)
ACQUIRER_RATE = FeeRate(rate_bp=35, min_fen=0)
_CODES = {"purchase": TxnCode.PURCHASE, "void": TxnCode.VOID, "refund": TxnCode.REFUND}


def merchant_register() -> dict[str, tuple[str, str]]:
    """Merchant code -> (MCC, Chinese name), from the merchant seed."""
    return {m.id: (m.mcc, m.name_zh) for m in load_seed()}


def daily_file(settled: list[SettledTxn], day: date, cutoff: Cutoff,
               register: dict[str, tuple[str, str]], *, now: datetime | None = None) -> ZmFile:
    records = []
    for txn in settled:
        if cutoff.day_of(txn.at) != day:
            continue
        code = txn.merchant_code.strip()
        mcc, name = register.get(code, ("0000", ""))
        if txn.kind == "purchase":
            fee = fee_of(txn.amount, ACQUIRER_RATE)
        elif txn.kind == "void":
            fee = fee_of(txn.original_amount, ACQUIRER_RATE)
        else:
            fee = 0
        records.append(ZmRecord(_CODES[txn.kind], txn.stan, txn.transmission, txn.masked_pan,
                                txn.amount, mcc, txn.rrn, code, txn.terminal, fee,
                                txn.amount - fee, txn.original_stan, txn.original_transmission,
                                txn.original_rrn, name))
    created = (now or datetime.now(timezone.utc)).astimezone(cutoff.zone)
    return ZmFile(day, ACQUIRER_ID, created.replace(tzinfo=None), tuple(records))


class DailyFilePublisher:
    """Writes the current settlement day's file into ``directory`` (atomically: the platform
    never reads half a file)."""

    def __init__(self, simulator: AcquirerSimulator, directory: Path, cutoff: Cutoff, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._simulator = simulator
        self._directory = Path(directory)
        self._cutoff = cutoff
        self._clock = clock
        self._register = merchant_register()

    def publish(self, day: date | None = None) -> Path:
        now = self._clock()
        day = day or self._cutoff.day_of(now)
        path = self._directory / file_name(day)
        data = daily_file(self._simulator.settled(), day, self._cutoff, self._register, now=now)
        write_private(path, data.encode(), mode=0o640)
        return path
