"""Fault injection on the real stack, and the one invariant checker every fault test ends with.

A fault test breaks something (SIGKILLs the ivr service, restarts Redis...) while real calls are
in progress, then calls :meth:`Watch.check`, which judges the run from three witnesses at once:

* Redis and the API: every payment created during the test reaches a final state within the
  time the test allows, and both say the same state (nothing lost, nothing stuck);
* the acquirer's journal: every charge (0200 answered 00, not reversed by an acknowledged 0400)
  belongs to exactly one ``approved`` payment with its STAN, RRN and amount, and every
  ``approved`` payment has its charge;
* the SIP wire (a tshark capture of every INVITE sent to the test cardholders' phones): no
  cardholder was called more often than the dialer recorded attempts for that number, and no
  attempt is recorded twice for one payment.

The fixture ``faults`` (:func:`faults_fixture`, imported into each fault test module) restarts
the ivr service with short recovery deadlines (:data:`FAULT_SETTINGS`) for the module and puts
the normal settings back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from ivr.payments.store import FINAL_STATES, RECENT_KEY

__all__ = ["ATTEMPT_PLACED", "FAULT_SETTINGS", "Faults", "Watch", "Verdict", "faults_fixture",
           "wait_until", "phone_port"]

T = TypeVar("T")

# The ivr service's settings while fault tests run: the recovery sweep every second, and
# deadlines short enough to be waited for, each still longer than the live work it must not
# race (the acquirer timeout is 5 s and a live reversal is answered at once; a call state is
# never settled while its channel is alive; a dead instance's callback claim lapses after 4 s;
# a failed webhook is retried after 1, 2, 3, 3... s, and not given up on while a test waits:
# with the default doubling, a slow machine's long call pushed the next retry past the test's
# wait, and CI failed on a webhook that was merely scheduled late).
FAULT_SETTINGS = {
    "VOICEPAY_RECOVERY_PERIOD_S": "1",
    "VOICEPAY_ACQUIRER_TIMEOUT": "5",
    "VOICEPAY_RECOVERY_AUTHORIZING_DEADLINE_S": "12",
    "VOICEPAY_RECOVERY_CALL_DEADLINE_S": "3",
    "VOICEPAY_RECOVERY_RISK_PASSED_DEADLINE_S": "10",
    "VOICEPAY_CALLBACK_LEASE_S": "4",
    "VOICEPAY_WEBHOOK_BASE_DELAY": "1",
    "VOICEPAY_WEBHOOK_MAX_DELAY": "3",
    "VOICEPAY_WEBHOOK_MAX_ATTEMPTS": "1000",
}

# Test cardholder 1380013810N's phone listens on 127.0.0.1:507N (asterisk-conf/pjsip.conf).
PHONE_PORTS = "5070-5079"
# The dialer's record of an attempt placed (ivr/callback/dialer.py).
ATTEMPT_PLACED = re.compile(r"^attempt (\d+) of \d+$")
CHARGED = "00"
ORIGINAL_NOT_FOUND = "25"


def phone_port(number: str) -> int:
    return 5070 + int(number[-1])


def wait_until(what: str, probe: Callable[[], T | None], timeout: float,
               interval: float = 0.3) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class SipInvites:
    """Every INVITE sent to the test cardholders' phones, as tshark sees it on the loopback."""

    def __init__(self, out_dir: Path) -> None:
        self._out = out_dir / "phone-invites.tsv"
        self._err = out_dir / "phone-invites.err"
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> SipInvites:
        argv = ["tshark", "-l", "-n", "-i", "lo", "-f", f"udp dst portrange {PHONE_PORTS}",
                "-d", f"udp.port=={PHONE_PORTS},sip", "-Y", 'sip.Method == "INVITE"',
                "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport", "-e", "sip.Call-ID"]
        with self._out.open("w") as out, self._err.open("w") as err:
            self._process = subprocess.Popen(argv, stdout=out, stderr=err,
                                             start_new_session=True)
        wait_until("tshark to capture SIP", lambda: "Capturing on" in self._err.read_text(), 15)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=10)

    def calls(self, since: float) -> Counter[int]:
        """Distinct calls (Call-IDs: a retransmitted INVITE is one call) per phone port."""
        seen: set[tuple[int, str]] = set()
        for line in self._out.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and float(parts[0]) >= since:
                seen.add((int(parts[1]), parts[2]))
        return Counter(port for port, _ in seen)


@dataclass
class Verdict:
    """What :meth:`Watch.check` found: the test's payments as the API shows them, the journal
    entries of this test, and the calls each phone received."""

    payments: dict[str, dict]
    journal: list[dict]
    invites: Counter[int]

    def journal_for(self, stan: str) -> list[tuple[str, str | None]]:
        return [(e["mti"], e["response_code"]) for e in self.journal if e.get("stan") == stan]


@dataclass
class Watch:
    """What happened from its creation on: created by :meth:`Faults.watch` before a test's
    first call, asked once at its end."""

    faults: Faults
    started: float = field(default_factory=time.time)
    stan_before: int = 0

    def check(self, *, settle_within: float, expected: int | None = None,
              unsent: frozenset[str] = frozenset()) -> Verdict:
        """Assert the invariants; ``settle_within``: how long the slowest payment may take to
        become final from now (its recovery deadline and a sweep); ``expected``: how many
        payments the test created (None: at least one); ``unsent``: STANs the test knows never
        reached the acquirer (it was down when they were sent), which must not be in its journal."""
        f = self.faults
        ids = wait_until("the test's payments", lambda: f.payments_since(self.started), 30)
        if expected is not None:
            assert len(ids) == expected, f"{len(ids)} payments created, expected {expected}"
        self._all_final(ids, settle_within)
        payments = {pid: f.record(pid) for pid in ids}
        for pid, payment in payments.items():  # the API and Redis tell one story
            shown = f.e2e.get(f"/v1/payments/{pid}")
            assert (shown["status"], len(shown["history"])) == \
                (payment["status"], len(payment["history"])), (pid, shown, payment)
        journal = self._acquirer_settled(payments, unsent)
        self._charges_belong_to_approved_payments(payments, journal)
        invites = f.invites.calls(self.started)
        self._each_attempt_called_once(payments, invites)
        return Verdict(payments, journal, invites)

    def _all_final(self, ids: list[str], settle_within: float) -> None:
        final = {s.value for s in FINAL_STATES}
        try:
            wait_until("every payment to reach a final state",
                       lambda: all(self.faults.status(pid) in final for pid in ids), settle_within)
        except AssertionError:
            stuck = {pid: self.faults.record(pid) for pid in ids
                     if self.faults.status(pid) not in final}
            raise AssertionError("payments not final: " + "; ".join(
                f"{pid} {p['status']} {[h['reason'] for h in p['history']]}"
                for pid, p in stuck.items())) from None

    def _issued_stans(self) -> set[str]:
        """STANs handed out since the watch began (the store's counter, as next_stan formats it)."""
        now = int(self.faults.redis.get("acquirer:stan") or 0)
        return {f"{(value - 1) % 999999 + 1:06d}" for value in range(self.stan_before + 1, now + 1)}

    def _acquirer_settled(self, payments: dict[str, dict], unsent: frozenset[str]) -> list[dict]:
        """This test's journal entries, once the acquirer has decided every purchase a payment
        sent (the issuer may still be "thinking" about one): a 0200 journaled, or a reversal
        that came first (answered 25), after which that purchase can never be charged."""
        issued = self._issued_stans()
        stans = {p["stan"] for p in payments.values() if p.get("stan")}
        assert stans <= issued, f"payments carry STANs not issued during the test: {stans - issued}"
        assert unsent <= stans, f"no payment carries the unsent STANs {unsent - stans}"
        sent = stans - unsent

        def entries() -> tuple[list[dict]] | None:  # a tuple: an empty journal is an answer
            ours = [e for e in self.faults.e2e.journal() if e.get("stan") in issued
                    and datetime.fromisoformat(e["time"]).timestamp() >= self.started]
            decided = {e["stan"] for e in ours if e["mti"] == "0200" or
                       (e["mti"] == "0400" and e["response_code"] == ORIGINAL_NOT_FOUND)}
            return (ours,) if sent <= decided else None

        # Longest an issuer "thinks" (VOICEPAY_ISSUER_DELAY, 8 s) and a margin.
        journal = wait_until("the acquirer to decide every purchase sent", entries, 20)[0]
        self._unsent_not_journaled(journal, unsent)
        return journal

    @staticmethod
    def _unsent_not_journaled(journal: list[dict], unsent: frozenset[str]) -> None:
        reached = {e["stan"] for e in journal} & unsent
        assert not reached, f"STANs that could not have been sent are in the journal: {reached}"

    @staticmethod
    def _charges_belong_to_approved_payments(payments: dict[str, dict], journal: list[dict]) -> None:
        def key(entry: dict) -> tuple[str, str]:
            return entry["terminal"], entry["stan"]

        reversed_ = {key(e) for e in journal if e["mti"] == "0400" and e["response_code"] == CHARGED}
        standing = [e for e in journal if e["mti"] == "0200" and e["response_code"] == CHARGED
                    and not e["duplicate"] and key(e) not in reversed_]
        approved = [p for p in payments.values() if p["status"] == "approved"]
        for charge in standing:
            owners = [p for p in approved if p.get("stan") == charge["stan"]]
            assert len(owners) == 1, (f"charge stan {charge['stan']} rrn {charge['rrn']} belongs to "
                                      f"{len(owners)} approved payments")
            owner = owners[0]
            assert (owner.get("rrn"), int(owner["amount_minor"])) == \
                (charge["rrn"], charge["amount"]), (owner["id"], charge)
        charged = Counter(e["stan"] for e in standing)
        for payment in approved:
            assert charged[payment.get("stan")] == 1, \
                f"approved payment {payment['id']} has {charged[payment.get('stan')]} charges"

    @staticmethod
    def _each_attempt_called_once(payments: dict[str, dict], invites: Counter[int]) -> None:
        attempts: Counter[int] = Counter()
        for payment in payments.values():
            if payment.get("mode") != "callback":
                continue
            numbers = [m.group(1) for h in payment["history"]
                       if (m := ATTEMPT_PLACED.match(h.get("reason", "")))]
            # One "attempt N of M" per attempt: an attempt re-entered after a crash before its
            # call was placed may note it again, but never as a second number.
            placed = set(numbers)
            assert sorted(placed, key=int) == [str(n) for n in range(1, len(placed) + 1)], \
                (payment["id"], numbers)
            attempts[phone_port(payment["mobile"])] += len(placed)
        for port, calls in invites.items():
            assert calls <= attempts[port], (f"phone on port {port} was called {calls} times for "
                                             f"{attempts[port]} recorded attempts")


@dataclass
class Faults:
    """The running stack, with its processes and its Redis at hand."""

    e2e: object
    invites: SipInvites
    redis: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.redis = redis.Redis.from_url(self.e2e.settings.redis_url, decode_responses=True)

    @property
    def processes(self):
        return self.e2e.processes

    def watch(self) -> Watch:
        return Watch(self, stan_before=int(self.redis.get("acquirer:stan") or 0))

    def status(self, payment_id: str) -> str | None:
        """From Redis: works while the ivr service (and its API) is down."""
        return self.redis.hget(f"pay:{payment_id}", "status")

    def record(self, payment_id: str) -> dict:
        """The payment as Redis holds it (with internal fields: STAN, RRN, mode, call id) and
        its history."""
        record = {"id": payment_id, **self.redis.hgetall(f"pay:{payment_id}")}
        record["history"] = [fields for _, fields in self.redis.xrange(f"pay:{payment_id}:history")]
        return record

    def payments_since(self, started: float) -> list[str]:
        return self.redis.zrangebyscore(RECENT_KEY, started, "+inf")

    def wait_status(self, payment_id: str, states: set[str], timeout: float = 60) -> str:
        return wait_until(f"payment {payment_id} to be one of {sorted(states)}",
                          lambda: self.status(payment_id) in states and self.status(payment_id),
                          timeout)

    def payment_of_mobile(self, mobile: str, since: float, timeout: float = 60) -> str:
        """The id of the payment for top-up number ``mobile`` created since ``since``."""
        def find() -> str | None:
            for pid in self.payments_since(since):
                if self.redis.hget(f"pay:{pid}", "topup_number") == mobile:
                    return pid
            return None
        return wait_until(f"a payment for {mobile}", find, timeout)

    def phone_called(self, number: str, times: int, since: float, timeout: float = 30) -> None:
        """Wait until the phone of ``number`` has received ``times`` calls since ``since``."""
        wait_until(f"{times} call(s) to {number}",
                   lambda: self.invites.calls(since)[phone_port(number)] >= times, timeout)

    def kill_ivr(self, signum: int = signal.SIGKILL) -> None:
        """Kill the ivr service as a crash would; returns once the supervisor has it back."""
        self.processes.kill("ivr", signum)

    def healthz(self) -> tuple[int, dict]:
        """/healthz's status and body."""
        try:
            with urllib.request.urlopen(self.e2e.api + "/healthz", timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """Component ``name`` frozen (SIGSTOP) for the block: its sockets still accept
        connections, nothing answers; thawed (SIGCONT) after, with all it was sent queued."""
        group = self.processes.supervisor.pid(name)
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(group, signal.SIGCONT)


@pytest.fixture(scope="module", name="faults")
def faults_fixture(stack) -> Iterator[Faults]:
    """The stack with the ivr service on :data:`FAULT_SETTINGS` and the phones' INVITEs captured."""
    with stack.ivr_restarted_with("fault tests", **FAULT_SETTINGS), \
            SipInvites(stack.work_dir) as invites:
        yield Faults(stack, invites)
