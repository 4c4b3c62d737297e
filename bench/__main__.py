"""Benchmarks: `make bench`. Numbers, not assertions: the README records what they showed.

- pin_exposure: how long a keyed PIN exists in clear in the ivr process — from the bytearray the
  AGI reply lands in to the zeroed buffer after the ISO 9564 format 4 block is built.
- authorization_rtt: one ISO 8583 0200/0210 round trip to the acquirer simulator over TCP.
- transition: one atomic payment state transition in Redis (Lua script).
- recovery: from the start of a recovery sweep until N stranded payments (approved and charged
  at the acquirer, the process dead before settling them) are reversed and failed.
- risk_decision / risk_rules_only / synthetic traffic: the risk engine (bench/risk_engine.py,
  bench/risk_traffic.py).
- list_newest_50 / list_declined_50: GET /v1/payments's store query with 1,000,000 payments stored
  (bench/listing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis

from ivr.hostlink.acquirer_client import AcquirerClient
from simulators.acquirer.server import AcquirerServer, build_simulator
from simulators.acquirer.testcards import find_test_card
from ivr.config import load_settings
from simulators.acquirer.settings import load_acquirer_settings
from ivr.crypto.keys import generate_dev_keys, load_ivr_keys
from ivr.crypto.pan_vault import PanVault
from ivr.crypto.pinblock import encipher_pinblock_iso_4, pinblock_from_digits
from ivr.hostlink.messages import PurchaseRequest
from ivr.paying.authorization import Authorizer
from ivr.payments.recovery import RecoverySweep
from ivr.payments.store import PaymentState, PaymentStore, new_payment_id
from bench.listing import bench_listing
from bench.risk_engine import bench_risk


def percentile(ordered: list[float], percent: int) -> float:
    """The nearest-rank percentile of sorted samples: the smallest sample with at least
    ``percent`` % of all samples at or below it (rank ceil(percent/100 * n), counted from 1)."""
    rank = -(-percent * len(ordered) // 100)  # integer ceiling: no float rounding at the edge
    return ordered[max(rank, 1) - 1]


def report(name: str, samples_s: list[float], unit: str = "µs", scale: float = 1e6) -> None:
    ordered = sorted(samples_s)
    p50 = percentile(ordered, 50) * scale
    p99 = percentile(ordered, 99) * scale
    print(f"{name:<22} n={len(ordered):<6} p50={p50:9.1f} {unit}  p99={p99:9.1f} {unit}  "
          f"mean={statistics.fmean(ordered) * scale:9.1f} {unit}")


def bench_pin_exposure(pek: bytes, pan: str, pin: str, n: int = 5000) -> None:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        digits = bytearray(pin.encode())
        pinblock_from_digits(pek, digits, pan)
        samples.append(time.perf_counter() - start)
        assert not any(digits)
    report("pin_exposure", samples)


async def bench_authorization(settings, pan: str, pin: str, pek: bytes, n: int = 300) -> None:
    server = AcquirerServer(build_simulator(load_acquirer_settings(var_dir=settings.var_dir)), "127.0.0.1", 0)
    async with server:
        client = AcquirerClient("127.0.0.1", server.port, timeout=5)
        samples = []
        for i in range(n):
            request = PurchaseRequest.create(pan=pan, amount=100, stan=f"{i + 1:06d}",
                                             pin_block=encipher_pinblock_iso_4(pek, pin, pan),
                                             terminal_id="BENCH001", merchant_id="898100048160001")
            start = time.perf_counter()
            response = await client.authorize(request)
            samples.append(time.perf_counter() - start)
            assert response.response_code == "00"
        report("authorization_rtt", samples, "ms", 1e3)


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[aioredis.Redis]:
    """A throwaway redis-server and a client on it."""
    with tempfile.TemporaryDirectory() as data:
        port = 6399
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--dir", data, "--save", ""],
                                stdout=subprocess.DEVNULL)
        try:
            await asyncio.sleep(0.5)
            client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
            try:
                yield client
            finally:
                await client.aclose()
        finally:
            proc.terminate()
            proc.wait()


async def bench_transitions(n: int = 2000) -> None:
    async with _redis() as client:
        store = PaymentStore(client)
        samples = []
        for _ in range(n // 2):
            payment = await store.create({"amount_minor": 100})
            for target in (PaymentState.PIN_ENTRY, PaymentState.AUTHORIZING):
                start = time.perf_counter()
                await store.transition(payment.id, target)
                samples.append(time.perf_counter() - start)
        report("transition", samples, "ms", 1e3)


async def bench_recovery(settings, pan: str, pin: str, pek: bytes, n: int = 200, rounds: int = 3) -> None:
    keys = load_ivr_keys(settings.ivr_keys_file)
    vault = PanVault(keys.pan_key)
    server = AcquirerServer(build_simulator(load_acquirer_settings(var_dir=settings.var_dir)), "127.0.0.1", 0)
    async with server, _redis() as client:
        store = PaymentStore(client)
        acquirer = AcquirerClient("127.0.0.1", server.port, timeout=5)
        authorizer = Authorizer(acquirer, store, terminal_id="BENCH001", merchant_id="898100048160001",
                                cvv_key=keys.cvv_key)
        sweep = RecoverySweep(store, client, acquirer, vault,
                              {PaymentState.AUTHORIZING: 0.0})
        samples = []
        for _ in range(rounds):
            stranded = []
            for _ in range(n):
                payment_id = new_payment_id()
                payment = await store.create({"amount_minor": 100}, payment_id=payment_id,
                                             pan_token=vault.encrypt(pan, payment_id))
                await store.transition(payment.id, PaymentState.PIN_ENTRY)
                await store.transition(payment.id, PaymentState.AUTHORIZING)
                outcome = await authorizer.authorize(payment, pan,
                                                     pin_block=encipher_pinblock_iso_4(pek, pin, pan))
                assert outcome.state is PaymentState.APPROVED  # charged, then "the process died"
                stranded.append(payment.id)
            start = time.perf_counter()
            settled = await sweep.sweep()
            samples.append(time.perf_counter() - start)
            assert settled == n
            assert [(await store.get(pid)).status for pid in stranded] == ["failed"] * n
        report(f"recovery({n} stranded)", samples, "ms", 1e3)


def main() -> int:
    card = find_test_card("approve")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(var_dir=Path(tmp))
        generate_dev_keys(settings.keys_dir)
        pek = load_ivr_keys(settings.ivr_keys_file).pek
        print(f"voicepay benchmarks (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
        bench_pin_exposure(pek, card.pan, card.pin)
        asyncio.run(bench_authorization(settings, card.pan, card.pin, pek))
        asyncio.run(bench_transitions())
        asyncio.run(bench_recovery(settings, card.pan, card.pin, pek))
        asyncio.run(bench_risk(report, _redis))
        asyncio.run(bench_listing(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
