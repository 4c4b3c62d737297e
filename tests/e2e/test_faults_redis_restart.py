"""Redis killed and restarted by the supervisor during a call, with webhooks queued (issue 14,
fault suite). Redis keeps an append-only file written on every command (fsynced each second),
so a killed redis-server loses nothing: the call goes on, the queued webhooks are delivered.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from simulators.acquirer.testcards import find_test_card
from tests.e2e.faults import faults_fixture, wait_until  # noqa: F401  (the fixture)
from tests.e2e.test_callback_calls import order, submit
from tests.sipp import selfservice_calls as calls
from tests.sipp.scenario import Call

pytestmark = pytest.mark.e2e

RECEIVER_PORT = 18099
NOTIFY_URL = f"http://127.0.0.1:{RECEIVER_PORT}/voicepay"
# Nobody answers on this number: the dialer's attempt fails at once (cancel comes first anyway).
UNANSWERED = "13800138108"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []
    kept_in: Path | None = None  # every body as received, one a line: the leak check reads it

    def do_POST(self) -> None:  # noqa: N802  (the http.server name)
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.kept_in is not None:
            with self.kept_in.open("ab") as kept:
                kept.write(raw + b"\n")
        self.received.append(json.loads(raw))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def webhook_receiver(kept_in: Path) -> Iterator[list[dict]]:
    """A merchant's webhook endpoint that answers 204 and keeps what it was sent (also in the
    file ``kept_in``)."""
    server = ThreadingHTTPServer(("127.0.0.1", RECEIVER_PORT), _Receiver)
    _Receiver.received = []
    _Receiver.kept_in = kept_in
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_redis_killed_during_a_call_and_with_webhooks_queued(stack, faults):
    card = find_test_card("approve")
    watch = faults.watch()
    # Three cancelled callbacks whose webhooks fail (no receiver yet) and wait for their retry.
    cancelled = []
    for i in range(3):
        payment = submit(stack, order(UNANSWERED, card, amount=f"7{i}.00", notify_url=NOTIFY_URL,
                                      merchant_order_id=f"REDIS{time.time_ns()}{i}"))
        status, body = stack.merchant_request("POST", f"/v1/payments/{payment['id']}/cancel", {})
        assert (status, body["status"]) == (200, "cancelled"), body
        cancelled.append(payment["id"])
    for pid in cancelled:
        wait_until(f"a failed webhook attempt of {pid}",
                   lambda: faults.redis.llen(f"pay:{pid}:webhooks") >= 1, 30)

    # A self-service call that keys its PIN late: Redis dies while the PIN prompt plays.
    mobile = "13600000043"
    caller = stack.start_call(Call("redis_killed", calls.NUMBER, [
        *calls.order(mobile, card.pan + "#"), calls.pin(card.pin, wait_ms=6000)]))
    payment_id = faults.payment_of_mobile(mobile, watch.started)
    faults.wait_status(payment_id, {"pin_entry"})
    faults.processes.kill("redis", signal.SIGKILL)  # returns once it is back and ready
    assert caller.wait(timeout=90) == 0, caller.stdout.read()

    # Each queued webhook is still waiting for a retry that falls inside the wait below
    # (FAULT_SETTINGS caps the back-off); neither given up on nor pushed out of reach.
    for pid in cancelled:
        last = json.loads(faults.redis.lindex(f"pay:{pid}:webhooks", -1))
        assert last["next_retry_at"] is not None, last
    with webhook_receiver(stack.work_dir / "webhooks.jsonl") as received:
        wait_until("the queued webhooks to be delivered",
                   lambda: {w["payment"]["id"] for w in received} >= set(cancelled), 60)
    verdict = watch.check(settle_within=20, expected=4)
    assert verdict.payments[payment_id]["status"] == "approved"
    assert sorted(w["payment"]["id"] for w in received if w["payment"]["id"] in cancelled) \
        == sorted(cancelled)  # each once
    assert {w["event"] for w in received} == {"payment.cancelled"}
