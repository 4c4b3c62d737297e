"""The callback dialer under a burst: how fast it places callbacks through real Asterisk (AMI
Originate) to a phone that answers, once many become due at the same moment.

A SIPp UAS answers as test cardholder 13800138101 (asterisk-conf/pjsip.conf: 127.0.0.1:5071),
and the stack dials ``PJSIP/{mobile}@13800138101`` (``DIAL_PATTERN``, set by bench.load before
the stack starts): each order's own mobile number goes in the INVITE's Request-URI to that one
phone, so every INVITE is matched to its order. The phone answers at once, stays on the line a
second and hangs up (the payment ends ``abandoned``).

Due at once, with operator actions only: an established seed merchant's orders, one number
each, are made while the operator holds that merchant's payments for review (the review list),
then the operator approves them all, ``concurrency`` approvals at a time. An approval is a
state change and the callback's scheduling, far less work than an order, so the callbacks
become due within a short window and the burst measures the dialer, not the order path.

Reported: numbers rung per second (from the first approval sent to the last INVITE), each
callback's approval→INVITE time p50/p99, and the CPU per callback of Asterisk, the ivr service
and Redis over the release and the calls.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.load.api import Api, order_body
from bench.load.measure import DialerResult, dialer_result, sipp_invites
from bench.load.steps import Probes
from devstack.sip_edge import udp_bound
from ivr.config import Settings
from tests.sipp.scenario import Callee, write_uas_scenario

__all__ = ["DIAL_PATTERN", "run_dialer", "dialer_row"]

PHONE = "13800138101"
PHONE_PORT, PHONE_MEDIA_PORT = 5071, 17100
DIAL_PATTERN = "PJSIP/{mobile}@" + PHONE
MERCHANT = "M100001"  # allow-listed as established by devstack.stack.establish_seed_merchants
_COMPONENTS = ("asterisk", "ivr", "redis")
_ON_LINE_MS = 1000
# Longer than a ring timeout: every call the burst places has rung, been answered and hung up.
_SIPP_TIMEOUT_S = 90


def _phone(work: Path, calls: int) -> tuple[subprocess.Popen, Path]:
    directory = work / "dialer"
    scenario = write_uas_scenario(Callee("bench-dialer", ring_ms=0, hang_up_after_ms=_ON_LINE_MS,
                                         calls=calls), directory)
    messages = directory / "messages.log"
    process = subprocess.Popen(
        ["sipp", "-sf", scenario.name, "-m", str(calls), "-l", str(calls), "-i", "127.0.0.1",
         "-p", str(PHONE_PORT), "-mi", "127.0.0.1", "-mp", str(PHONE_MEDIA_PORT), "-nostdin",
         "-timeout", f"{_SIPP_TIMEOUT_S}s", "-trace_msg", "-message_file", str(messages),
         "-trace_err", "-error_file", str(directory / "errors.log")],
        cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not udp_bound("127.0.0.1", PHONE_PORT):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the bench phone (SIPp) did not listen on {PHONE_PORT}")
        time.sleep(0.1)
    return process, messages


@dataclass
class _Burst:
    payments: dict[str, str] = field(default_factory=dict)    # mobile -> payment held for review
    sent: dict[str, float] = field(default_factory=dict)      # mobile -> its approval sent
    released: dict[str, float] = field(default_factory=dict)  # mobile -> its approval answered
    outcomes: Counter[str] = field(default_factory=Counter)   # "order 201 risk_review"...


async def _hold(api: Api, burst: _Burst, mobiles: list[str], gate: asyncio.Semaphore,
                run: str) -> None:
    """One order per mobile, each held for review: due for nobody yet."""

    async def order(n: int, mobile: str) -> None:
        async with gate:
            status, body = await api.send(api.signed(
                MERCHANT, "POST", "/v1/payments", order_body(f"D{run}N{n:05d}", mobile, "approve")))
        if status != 201:
            burst.outcomes[f"order {status}"] += 1
            return
        payment = json.loads(body)
        burst.outcomes[f"order 201 {payment['status']}"] += 1
        if payment["status"] == "risk_review":
            burst.payments[mobile] = payment["id"]

    async with api.held_for_review(MERCHANT):
        await asyncio.gather(*(order(n, mobile) for n, mobile in enumerate(mobiles)))


async def _release(api: Api, burst: _Burst, gate: asyncio.Semaphore) -> None:
    """The operator approves every held payment: each callback due from its approval on."""

    async def approve(mobile: str, payment_id: str) -> None:
        async with gate:
            request = api.operator("POST", f"/v1/admin/payments/{payment_id}/review",
                                   {"decision": "approve", "note": "load benchmark"})
            burst.sent[mobile] = time.time()
            status, _ = await api.send(request)
        burst.outcomes[f"approval {status}"] += 1
        if status == 200:
            burst.released[mobile] = time.time()

    await asyncio.gather(*(approve(mobile, payment_id)
                           for mobile, payment_id in burst.payments.items()))


async def _cancel(api: Api, payment_ids: list[str]) -> None:
    """Cancel what the burst left unrung, so that no later stack calls it."""
    for payment_id in payment_ids:
        await api.send(api.signed(MERCHANT, "POST", f"/v1/payments/{payment_id}/cancel"))


def run_dialer(settings: Settings, probes: Probes, work: Path, orders: int,
               concurrency: int) -> DialerResult:
    run = f"{int(time.time()) % 1000:03d}"
    mobiles = [f"137{run}{n:05d}" for n in range(orders)]
    burst = _Burst()
    process, messages = _phone(work, orders)
    try:

        async def hold_then_release() -> dict[str, float]:
            gate = asyncio.Semaphore(concurrency)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                api = Api(settings, session)
                await _hold(api, burst, mobiles, gate, run)
                before = probes.cpu(_COMPONENTS)
                await _release(api, burst, gate)
                return before

        before = asyncio.run(hold_then_release())
        process.wait(timeout=_SIPP_TIMEOUT_S + 30)
        after = probes.cpu(_COMPONENTS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    invites = sipp_invites(messages.read_text(errors="replace")) if messages.exists() else []
    result = dialer_result(burst.sent, burst.released, invites, before, after, burst.outcomes)
    rung = {number for _, number in invites}
    unrung = [payment for mobile, payment in burst.payments.items() if mobile not in rung]
    if unrung:

        async def cancel() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                await _cancel(Api(settings, session), unrung)

        asyncio.run(cancel())
    return result


def dialer_row(result: DialerResult) -> str:
    def ms(value: float | None) -> str:
        return f"{value:.0f}" if value is not None else "-"
    cpu = ", ".join(f"{name} {value:.1f}" for name, value in result.cpu_ms_per_callback.items())
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in result.outcomes.items())
    return (f"dialer: {outcomes}; {result.released} callbacks due within {result.releasing_s:.2f} s, "
            f"{result.invited} rung within {result.dialling_s:.2f} s: "
            f"{result.originates_per_s:.1f} originates/s; approval→INVITE p50 "
            f"{ms(result.due_invite_p50_ms)} ms, p99 {ms(result.due_invite_p99_ms)} ms; "
            f"CPU ms per callback: {cpu}")
