"""Asterisk's least privilege and injection, against the real Asterisk (issue 15).

- The service's own AMI account (its generated secret) cannot run a CLI command, cannot originate
  an application (System) nor evaluate a function (SHELL) and never receives a DTMF event while a
  caller keys a whole payment; the events it does need (Newstate, Hangup) arrive.
- After a paid call, CDR and CEL are off and have written nothing.
- A merchant named ``${SHELL(...)}``, with a hostile description, is paid for on a real
  callback: its name is spoken, nothing executes, and Asterisk never saw the text. A hostile
  mobile number or order id is refused at the edge with 400.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import PurePosixPath

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from ivr.api.merchant_auth import signed_headers
from ivr.asterisk_secrets import load_asterisk_secrets
from ivr.speech import amount_prompts
from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity
from tests.sipp import selfservice_calls
from tests.sipp.callback_calls import MARGIN_MS
from tests.sipp.scenario import Callee, Key, PromptClock

pytestmark = pytest.mark.e2e

ID_NUMBER = find_test_identity("demo").id_number  # the demo cardholder (README, "Identity services")


class AmiSession:
    """A raw AMI connection: what an attacker holding the service's secret could send."""

    def __init__(self, port: int, username: str, secret: str) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._socket.settimeout(None)  # the reader waits as long as a call lasts; close() ends it
        self._text = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._action_number = 0
        login = self.send({"Action": "Login", "Username": username, "Secret": secret,
                           "Events": "on"})
        assert "Response: Success" in login, login

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._text += data.decode("utf-8", errors="replace")

    def text(self) -> str:
        with self._lock:
            return self._text

    def send(self, headers: dict[str, str], timeout: float = 10) -> str:
        """Send one action; its response message (the block carrying its ActionID)."""
        self._action_number += 1
        action_id = f"security-{self._action_number}"
        message = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "ActionID": action_id}.items())
        self._socket.sendall((message + "\r\n").encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for block in self.text().split("\r\n\r\n"):
                if f"ActionID: {action_id}" in block and "Response:" in block:
                    return block
            time.sleep(0.05)
        raise AssertionError(f"no response to {headers['Action']}")

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv()
        self._socket.close()
        self._reader.join(timeout=10)


@pytest.fixture
def ami(stack):
    session = AmiSession(stack.settings.ami_port, stack.settings.ami_user,
                         stack.settings.ami_secret or load_asterisk_secrets(stack.settings).ami)
    yield session
    session.close()


def test_the_ami_account_cannot_run_commands_or_originate_applications(stack, ami):
    planted = stack.settings.var_dir / "asterisk" / "log" / "ami-system-ran"
    planted.unlink(missing_ok=True)
    # The control: the account logs in and may do what the service does.
    assert "Response: Success" in ami.send({"Action": "Ping"})
    assert "Response: Success" in ami.send({"Action": "CoreStatus"})

    command = ami.send({"Action": "Command", "Command": "core show version"})
    assert "Response: Error" in command and "Permission denied" in command
    originate = ami.send({"Action": "Originate", "Channel": "PJSIP/13800138109",
                          "Application": "System",
                          "Data": "touch /var/log/asterisk/ami-system-ran", "Async": "true"})
    # Refused because the account lacks the system class (manager.c checks apps only then).
    assert "Response: Error" in originate and "Originate Access Forbidden" in originate, originate
    shell = ami.send({"Action": "Getvar",
                      "Variable": "SHELL(touch /var/log/asterisk/ami-system-ran)"})
    assert "Response: Error" in shell, shell
    assert not planted.exists()


def test_the_ami_account_never_sees_a_keyed_digit(stack, ami):
    """A whole self-service payment keyed while the service's account listens with every event
    it may have: the call's Newstate and Hangup arrive, not one DTMF event."""
    before = stack.payment_ids()
    assert "Response: Success" in ami.send({"Action": "Events", "EventMask": "on"})
    result = stack.call(selfservice_calls.approved("13800138011"))
    assert result.returncode == 0, result.stdout[-2000:]
    payment = stack.new_payment("13800138011", before)
    assert payment["status"] == "approved"
    assert stack.wait_until(lambda: "Event: Hangup" in ami.text(), 10)
    events = ami.text()
    assert "Event: Newstate" in events  # the control: the call's events reach this account
    assert "Event: DTMF" not in events  # neither DTMFBegin nor DTMFEnd
    assert "Digit:" not in events


def _asterisk_cli(stack, command: str) -> str:
    if stack.processes is not None and stack.processes.asterisk is not None:
        return stack.processes.asterisk.cli(command)
    return AsteriskSandbox(stack.settings, ensure_rootfs(stack.settings)).cli(command)


def test_the_running_asterisk_generates_no_event_that_carries_a_keyed_digit(stack):
    """Not filtered per login: never generated (manager.conf disabledevents), so a login given
    the dtmf or agi class by mistake still gets no digit."""
    shown = _asterisk_cli(stack, "manager show settings")
    line = next(line for line in shown.splitlines() if "Disabled events:" in line)
    disabled = {name.strip() for name in line.split(":", 1)[1].split(",")}
    assert {"DTMFBegin", "DTMFEnd", "AGIExecEnd", "VarSet"} <= disabled
    assert not disabled & {"OriginateResponse", "Hangup", "Newstate"}  # what the service takes


def test_cdr_and_cel_hold_nothing_after_a_paid_call(stack):
    before = stack.payment_ids()
    result = stack.call(selfservice_calls.approved("13800138012"))
    assert result.returncode == 0, result.stdout[-2000:]
    assert stack.new_payment("13800138012", before)["status"] == "approved"
    assert re.search(r"\bLogging:\s+Disabled", _asterisk_cli(stack, "cdr show status"))
    assert re.search(r"CEL Logging:\s+Disabled", _asterisk_cli(stack, "cel show status"))
    state = stack.settings.var_dir / "asterisk"
    written = [p for p in state.rglob("*") if p.is_file()
               and any(part.lower().startswith(("cdr", "cel", "master.csv")) for part in p.parts)]
    assert written == []


# --- hostile text from outside, through a real callback --------------------------------------

HOSTILE_NAME = "${SHELL(touch /var/log/asterisk/pwned-name)}"
HOSTILE_DESCRIPTION = "Bill\" ${SHELL(touch /var/log/asterisk/pwned-desc)}, |&/{$}"


def _admin(stack, method: str, path: str, body: dict) -> tuple[int, dict]:
    token = stack.settings.operator_token_file.read_text().strip()
    request = urllib.request.Request(
        f"{stack.api}/v1/admin/merchants{path}", data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _signed(stack, merchant_id: str, key: bytes, body: dict) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    request = urllib.request.Request(
        f"{stack.api}/v1/payments", data=raw, method="POST",
        headers={"Content-Type": "application/json",
                 **signed_headers(merchant_id, key, "POST", "/v1/payments", raw)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _order(card, number: str, **changes: str) -> dict:
    return {"merchant_order_id": f"SEC{int(time.time() * 1000)}", "amount": "66.00",
            "description": HOSTILE_DESCRIPTION, "card_number": card.pan,
            # The name the police registry holds for this ID number: risk control passes it.
            "cardholder_name": "Zhang San", "id_number": ID_NUMBER, "mobile": number,
            "mode": "callback", "language": "en", **changes}


def test_hostile_merchant_name_and_description_execute_nothing(stack):
    var = stack.settings.var_dir
    mark = stack.asterisk_mark()
    status, admitted = _admin(stack, "POST", "", {"name_en": HOSTILE_NAME, "name_zh": HOSTILE_NAME,
                                                  "mcc": "5812", "max_amount": "800.00"})
    assert status == 201, admitted
    merchant_id, key = admitted["merchant"]["id"], bytes.fromhex(admitted["api_key"])
    card = find_test_card("approve")
    number = "13800138108"

    # A value that is invalid where it reaches the dialplan is refused at the edge, and nothing
    # is dialled.
    for field, value in [("mobile", f"{number}&PJSIP/6001"), ("mobile", f"{number}\r\nAction: x"),
                         ("mobile", "${SHELL(id)}"), ("merchant_order_id", "A,B|${SHELL(id)}")]:
        status, refused = _signed(stack, merchant_id, key, _order(card, number, **{field: value}))
        assert status == 400 and refused["details"]["parameter"] == field, refused
    assert stack.dial_attempts(number, mark) == 0

    # Free text is taken, and the call goes through with the merchant's name spoken.
    clock = PromptClock("en")
    until_menu = (clock.ms("callback_intro") + clock.spoken_name_ms(HOSTILE_NAME)
                  + clock.ms("callback_amount", *amount_prompts(6600, "en")) + MARGIN_MS)
    callee = stack.phone(Callee("cb_hostile_merchant", steps=[
        Key("1", until_menu), Key(card.pin + "#", 600, label="PIN")]), number)
    status, payment = _signed(stack, merchant_id, key, _order(card, number))
    assert status == 201, payment
    assert callee.wait(timeout=120) == 0, callee.communicate(timeout=10)[0][-2000:]
    payment = stack.wait_for(payment["id"], {"approved", "declined", "failed", "abandoned"})
    assert payment["status"] == "approved", payment["history"]
    heard = stack.prompts_played(f"voicepay callback {payment['id']}", since=mark)
    assert "voicepay-names" in PurePosixPath(heard[1]).parts, heard  # the name was spoken

    assert sorted(p.name for p in var.rglob("pwned-*")) == []
    log = "\n".join(stack._asterisk_log()[mark:])  # noqa: SLF001
    assert f"Called {number}" in log  # the control: this call is in the log read
    assert "SHELL" not in log and "pwned" not in log
