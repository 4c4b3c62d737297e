"""Two ivr service instances on one Redis and one Asterisk (issue 14, fault suite).

Only the first instance's FastAGI port is in the dialplan, so the phones here never answer: what
is under test is the dialling, each attempt placed by exactly one instance, and the work of an
instance killed mid-run taken over by the other once its leases lapse.
"""

from __future__ import annotations

import signal
import time

import pytest

from simulators.acquirer.testcards import find_test_card
from ivr.payments.store import FINAL_STATES
from tests.e2e.faults import ATTEMPT_PLACED, FAULT_SETTINGS, faults_fixture, phone_port  # noqa: F401  (the fixture)
from tests.e2e.test_callback_calls import order, submit
from tests.sipp import callback_calls as phone

pytestmark = pytest.mark.e2e

SECOND = "ivr-b"
SECOND_ENV = {"VOICEPAY_HTTP_PORT": "18080", "VOICEPAY_AGI_PORT": "14573",
              "VOICEPAY_INSTANCE_ID": SECOND}
NUMBERS = [f"1380013810{n}" for n in range(1, 6)]
PER_NUMBER = 4
ATTEMPTS = 3  # VOICEPAY_CALLBACK_MAX_ATTEMPTS in the e2e stack (tests/e2e/conftest.py)


def test_twenty_callbacks_each_placed_once_and_a_killed_instance_taken_over(stack, faults):
    processes = faults.processes
    processes.run_component(processes.ivr_spec(SECOND, **FAULT_SETTINGS, **SECOND_ENV))
    card = find_test_card("approve")
    first_down = False
    try:
        phones = [stack.phone(phone.never_answers(f"two_instances_{n[-1]}",
                                                  calls=PER_NUMBER * ATTEMPTS), n)
                  for n in NUMBERS]
        watch = faults.watch()
        payments = [submit(stack, order(number, card, amount=f"{60 + i}.00", language="en",
                                        merchant_order_id=f"TWO{time.time_ns()}{i:02d}"))
                    for i in range(PER_NUMBER) for number in NUMBERS]
        # Every first attempt rings: the first instance holds the claims of those it placed.
        for number in NUMBERS:
            faults.phone_called(number, PER_NUMBER, watch.started)
        owners = {p["id"]: faults.redis.hget(f"pay:{p['id']}:callback", "owner") for p in payments}
        held_by_first = {pid for pid, owner in owners.items() if owner and owner != SECOND}
        assert held_by_first, owners  # the kill must hit claimed work, or it proves nothing
        processes.stop_component("ivr", signal.SIGKILL)  # and kept down: the second finishes
        first_down = True

        final = {s.value for s in FINAL_STATES}
        for payment in payments:
            faults.wait_status(payment["id"], final, timeout=120)
        for process in phones:
            assert process.wait(timeout=60) == 0, process.stdout.read()
    finally:
        processes.stop_component(SECOND)
        if first_down:
            processes.start_component("ivr")  # its API answers the checker

    verdict = watch.check(settle_within=10, expected=len(payments))
    for number in NUMBERS:
        assert verdict.invites[phone_port(number)] == PER_NUMBER * ATTEMPTS
    for pid, payment in verdict.payments.items():
        assert payment["status"] == "expired", (pid, payment["history"])
        attempts = [h["reason"] for h in payment["history"]
                    if ATTEMPT_PLACED.match(h.get("reason", ""))]
        assert attempts == [f"attempt {n} of {ATTEMPTS}" for n in range(1, ATTEMPTS + 1)], attempts
    # The first instance's ringing attempts were settled by the second once their leases lapsed.
    for pid in held_by_first:
        assert "attempt 1: no result (its instance stopped)" in \
            [h.get("reason") for h in verdict.payments[pid]["history"]], pid
