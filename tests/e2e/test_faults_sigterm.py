"""The ivr service stopped with SIGTERM during a call (issue 14, fault suite).

SIGTERM is a graceful stop (ivr/service.py ``serve``): the service drains (API writes 503
``service-stopping``, /healthz 503, no new calls) while the call in progress finishes, then exits
on its own. The supervisor did not ask for that exit, so it restarts the service as it would any
process that ended by itself (devstack/supervisor.py): ``Stack.kill`` sends the signal and
returns once the service is back, and runs here in a thread so the test can act during the drain.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.faults import faults_fixture, wait_until  # noqa: F401  (the fixture)
from tests.e2e.test_callback_calls import order
from tests.sipp import selfservice_calls as calls
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Key

pytestmark = pytest.mark.e2e

# After the drain: the supervisor's back-off and the service's start.
RESTART_S = 120


def test_sigterm_lets_the_call_at_the_pin_prompt_finish_then_the_service_comes_back(stack, faults):
    card = find_test_card("approve")
    supervisor = faults.processes.supervisor
    watch = faults.watch()
    mobile = "13600000051"
    cues = Cues()
    caller = stack.start_call(Call("sigterm_at_pin", calls.NUMBER, [
        *calls.order(mobile, card.pan + "#"),
        Key(card.pin + "#", cue="PIN prompt", label="PIN"),
    ]), cues=cues)
    payment_id = faults.payment_of_mobile(mobile, watch.started)
    faults.wait_status(payment_id, {"pin_entry"})
    old_pid = supervisor.pid("ivr")
    exits_before = len(supervisor.exits)

    with ThreadPoolExecutor(1) as background:
        back = background.submit(faults.processes.kill, "ivr", signal.SIGTERM)
        # Draining: a load balancer is told to go elsewhere, and a merchant's order is refused
        # rather than taken by a service that could not call the cardholder back.
        status, health = wait_until("/healthz to say the service is stopping",
                                    lambda: (h := faults.healthz())[1].get("stopping") and h, 15)
        assert status == 503 and health["ok"] is False, health
        status, refused = stack.merchant_request(
            "POST", "/v1/payments", order("13800138105", card, amount="12.00", language="en"))
        assert (status, refused["error_id"]) == (503, "service-stopping"), refused
        # The call in progress goes on: the caller keys the PIN and hears the approval.
        cues.send("PIN prompt")
        out, _ = caller.communicate(timeout=90)
        assert caller.returncode == 0, out[-2000:]
        new_pid = back.result(timeout=RESTART_S)

    # The service ended by itself (exit 0 after its drain) and the supervisor started it again.
    assert new_pid != old_pid
    ended = [e for e in supervisor.exits[exits_before:] if e.name == "ivr"]
    assert [(e.pid, e.returncode, e.requested) for e in ended] == [(old_pid, 0, False)], ended
    assert supervisor.restarts[-1].name == "ivr" and supervisor.restarts[-1].exit == "exit code 0"

    verdict = watch.check(settle_within=10, expected=1)  # the refused order created nothing
    payment = verdict.payments[payment_id]
    assert payment["status"] == "approved", payment["history"]
    assert [h["state"] for h in payment["history"]][-3:] == ["pin_entry", "authorizing",
                                                             "approved"]
    assert [(e["mti"], e["response_code"]) for e in verdict.journal] == [("0200", "00")]
