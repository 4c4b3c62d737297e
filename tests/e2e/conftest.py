"""The real stack for end-to-end tests: Redis, acquirer, Asterisk and the ivr service, plus SIPp.

Nothing here skips: a missing Asterisk, Redis, SIPp or tshark fails the run, because a suite
that quietly tests less than it says is worse than a red one.

Set VOICEPAY_E2E_USE_RUNNING=1 to run against a stack already started with `make run`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.config import load_settings
from devstack.stack import Stack
from simulators.acquirer.server import journal_path
from simulators.acquirer.settings import load_acquirer_settings
from tests.sipp.scenario import Call, Callee, write_scenario, write_uas_scenario

REAL_PARTS = ["sipp", "redis-server", "bwrap", "tshark"]


@dataclass
class E2E:
    settings: object
    work_dir: Path
    api: str
    # The stack's processes, for fault-injection tests (None: VOICEPAY_E2E_USE_RUNNING).
    processes: Stack | None = None

    def get(self, path: str) -> dict:
        """GET as the operator, with the bearer token the service generated at first start."""
        token_file = self.settings.keys_dir / "operator.token"  # type: ignore[attr-defined]
        request = urllib.request.Request(
            self.api + path, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def health(self) -> dict:
        """/healthz's body, whether it answers 200 or 503."""
        try:
            with urllib.request.urlopen(self.api + "/healthz", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)

    def payment_for_mobile(self, mobile: str) -> dict:
        """The newest payment whose top-up number is ``mobile`` (each test uses its own)."""
        for payment in self.get("/v1/payments?limit=200")["payments"]:
            if payment.get("topup_mobile") == mobile:
                return self.get(f"/v1/payments/{payment['id']}")
        raise AssertionError(f"no payment for mobile {mobile}")

    def payments_for_mobile(self, mobile: str) -> list[dict]:
        return [p for p in self.get("/v1/payments?limit=200")["payments"]
                if p.get("topup_mobile") == mobile]

    def journal(self) -> list[dict]:
        path = journal_path(load_acquirer_settings(var_dir=self.settings.var_dir))  # type: ignore[attr-defined]
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def call(self, call: Call, *, timeout: float = 150) -> subprocess.CompletedProcess:
        """Place one SIP call with SIPp; returns SIPp's result (exit 0: scenario completed)."""
        scenario = write_scenario(call, self.work_dir)
        return self.run_sipp(self.work_dir, scenario.name, timeout=timeout)

    def run_sipp(self, directory: Path, scenario: str, *, timeout: float = 150
                 ) -> subprocess.CompletedProcess:
        """Run one SIPp scenario file from ``directory`` (its captures are relative to it)."""
        log = self.work_dir / f"{Path(scenario).stem}.sipp.log"
        argv = ["sipp", "127.0.0.1:5060", "-sf", scenario, "-m", "1", "-l", "1",
                "-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1", "-mp", "16000",
                "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
                "-trace_err", "-error_file", str(log)]
        return subprocess.run(argv, cwd=directory, capture_output=True, text=True,
                              timeout=timeout + 30)


    # ---- callbacks: the merchant's side and the cardholder's phone ----
    def merchant_request(self, method: str, path: str, body: dict | None = None, *,
                         merchant: str = "M100001") -> tuple[int, dict]:
        """A request signed as ``merchant``; returns (HTTP status, JSON body)."""
        from ivr.api.merchant_auth import signed_headers
        from ivr.merchants import MerchantRegistry
        key = MerchantRegistry.load(self.settings).get(merchant).key  # type: ignore[arg-type]
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json",
                   **signed_headers(merchant, key, method, path, raw)}
        request = urllib.request.Request(self.api + path, data=raw if body is not None else None,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def phone(self, callee: Callee, number: str) -> subprocess.Popen:
        """Start SIPp as the phone of test cardholder ``number`` (1380013810N, port 507N)."""
        slot = int(number[-1])
        return self.uas(callee, 5070 + slot, 17000 + 100 * slot)

    def agent(self, callee: Callee, agent_id: str) -> subprocess.Popen:
        """Start SIPp as test agent ``agent_id`` (710N answers on port 508N, media 1750N0)."""
        slot = int(agent_id[-1])
        return self.uas(callee, 5080 + slot, 17500 + 10 * slot)

    def start_call(self, call: Call, *, media_port: int = 16000) -> subprocess.Popen:
        """Like call(), but in the background."""
        scenario = write_scenario(call, self.work_dir)
        log = self.work_dir / f"{call.name}.sipp.log"
        argv = ["sipp", "127.0.0.1:5060", "-sf", scenario.name, "-m", "1", "-l", "1",
                "-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1", "-mp", str(media_port),
                "-nostdin", "-timeout", "240s", "-timeout_error", "-trace_err", "-error_file", str(log)]
        return subprocess.Popen(argv, cwd=self.work_dir, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def uas(self, callee: Callee, port: int, media_port: int) -> subprocess.Popen:
        directory = self.work_dir / f"callee-{callee.name}"
        scenario = write_uas_scenario(callee, directory)
        log = self.work_dir / f"{callee.name}.sipp.log"
        argv = ["sipp", "-sf", scenario.name, "-m", str(callee.calls), "-i", "127.0.0.1",
                "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port),
                "-nostdin", "-timeout", "240s", "-timeout_error", "-trace_err",
                "-error_file", str(log)]
        process = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)  # listening before the platform dials
        return process

    def wait_for(self, payment_id: str, states: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            payment = self.get(f"/v1/payments/{payment_id}")
            if payment["status"] in states or time.monotonic() > deadline:
                return payment
            time.sleep(0.3)


def _require_real_parts() -> None:
    missing = [tool for tool in REAL_PARTS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"end-to-end tests need {', '.join(missing)}: run `make test`, which installs them",
                    pytrace=False)


# Callback retry policy for the tests: quick retries, short rings (set before the stack starts,
# whose processes read them from the environment).
CALLBACK_TIMING = {
    "VOICEPAY_CALLBACK_RETRY_SPACING_S": "2",
    "VOICEPAY_CALLBACK_RING_TIMEOUT_S": "6",
    "VOICEPAY_CALLBACK_MAX_ATTEMPTS": "3",
}


def _set_aside_old_logs(var_dir: Path) -> None:
    """Logs of earlier runs go to var/log/previous/: the leak check judges this run's logs."""
    previous = var_dir / "log" / "previous"
    previous.mkdir(parents=True, exist_ok=True)
    for log in [*(var_dir / "log").glob("*.log"), *(var_dir / "asterisk" / "log").glob("*")]:
        if log.is_file() and log.name != "test-output.log":
            log.rename(previous / f"{log.parent.name}-{log.name}")


@pytest.fixture(scope="session")
def stack() -> Iterator[E2E]:
    _require_real_parts()
    for name, value in CALLBACK_TIMING.items():
        os.environ.setdefault(name, value)
    settings = load_settings()
    work_dir = settings.var_dir / "e2e"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    capture_dir = settings.var_dir / "capture"
    capture_dir.mkdir(parents=True, exist_ok=True)
    # Everything the ivr service and Asterisk say to each other over AMI, for the leak check.
    ami_capture = capture_dir / "ami.pcapng"
    ami_capture.unlink(missing_ok=True)
    tshark = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", f"tcp port {settings.ami_port}", "-w", str(ami_capture)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not ami_capture.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not ami_capture.exists():
        pytest.fail("tshark did not start capturing AMI traffic", pytrace=False)
    real_stack = None
    try:
        if os.environ.get("VOICEPAY_E2E_USE_RUNNING") != "1":
            _set_aside_old_logs(settings.var_dir)
            real_stack = Stack(settings)
            real_stack.start()
        yield E2E(settings=settings, work_dir=work_dir,
                  api=f"http://{settings.http_host}:{settings.http_port}", processes=real_stack)
    finally:
        if real_stack is not None:
            real_stack.stop()
        time.sleep(0.5)
        os.killpg(tshark.pid, signal.SIGINT)
        tshark.wait(timeout=10)
