"""The real stack for end-to-end tests: Redis, acquirer, Asterisk and the ivr service, plus SIPp.

Nothing here skips: a missing Asterisk, Redis, SIPp or tshark fails the run, because a suite
that quietly tests less than it says is worse than a red one.

Set VOICEPAY_E2E_USE_RUNNING=1 to run against a stack already started with `make run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml

from ivr.config import REPO_ROOT, load_settings
from ivr.risk.velocity import COUNTERS
from devstack.sip_edge import udp_bound
from devstack.stack import Stack
from simulators.acquirer.server import journal_path
from simulators.acquirer.settings import load_acquirer_settings
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Callee, write_scenario, write_uas_scenario

REAL_PARTS = ["sipp", "redis-server", "bwrap", "tshark", "baresip", "linphonec"]


@dataclass
class E2E:
    settings: object
    work_dir: Path
    api: str
    # SIPp processes started in the background, stopped after each test if still running.
    started: list[subprocess.Popen] = field(default_factory=list)
    # The stack's processes, for fault-injection tests (None: VOICEPAY_E2E_USE_RUNNING).
    processes: Stack | None = None
    # The session's capture of AMI, FastAGI and acquirer-link traffic, for the leak check.
    links_capture: Path | None = None

    def get(self, path: str) -> dict:
        """GET as the operator, with the bearer token the service generated at first start."""
        token_file = self.settings.keys_dir / "operator.token"  # type: ignore[attr-defined]
        request = urllib.request.Request(
            self.api + path, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    @contextlib.contextmanager
    def ivr_restarted_with(self, why: str, **env: str) -> Iterator[None]:
        """The ivr service restarted with ``env`` over the stack's settings, and restarted with
        the settings the other tests expect when the block ends, however it ends. ``why`` names
        the test in the failure when the stack is not the tests' own (nothing to restart)."""
        processes = self.processes
        if processes is None:
            pytest.fail(f"{why} restart the ivr service with other settings: they need the stack "
                        "the tests start (unset VOICEPAY_E2E_USE_RUNNING)", pytrace=False)
        processes.run_component(processes.ivr_spec(**env))
        try:
            yield
        finally:
            processes.run_component(processes.ivr_spec())

    def health(self) -> dict:
        """/healthz's body, whether it answers 200 or 503."""
        try:
            with urllib.request.urlopen(self.api + "/healthz", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)

    def payment_ids(self) -> set[str]:
        """The payments there are now: what a test places next is not among them."""
        return {p["id"] for p in self.get("/v1/payments?limit=200")["payments"]}

    def new_payment(self, topup_number: str, before: set[str]) -> dict:
        """The one payment for ``topup_number`` created since ``before`` (payment_ids()): this
        test's own, never one an earlier test or run left behind with the same number."""
        new = [p for p in self.get("/v1/payments?limit=200")["payments"]
               if p["id"] not in before and p.get("topup_number") == topup_number]
        assert len(new) == 1, f"{len(new)} new payments for {topup_number}, expected 1"
        return self.get(f"/v1/payments/{new[0]['id']}")

    # ---- what Asterisk did, from its own log (verbose 3: dials, dialplan steps, prompts) ----
    def asterisk_mark(self) -> int:
        """A place in Asterisk's log: later reads see only what happened after it."""
        return len(self._asterisk_log())

    def asterisk_lines(self, since: int = 0) -> list[str]:
        """Asterisk's log lines since the mark (asterisk_mark())."""
        return self._asterisk_log()[since:]

    def _asterisk_log(self) -> list[str]:
        path = self.settings.var_dir / "asterisk" / "log" / "messages.log"  # type: ignore[attr-defined]
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def dial_attempts(self, number: str, since: int) -> int:
        """How many times Asterisk dialled ``number`` (one per AMI Originate) since the mark."""
        return sum(1 for line in self._asterisk_log()[since:]
                   if re.search(rf"dial\.c: Called {re.escape(number)}$", line))

    def ringing(self, number: str, since: int) -> bool:
        return any(re.search(rf"PJSIP/{re.escape(number)}-\w+ is ringing", line)
                   for line in self._asterisk_log()[since:])

    def prompts_played(self, noop_marker: str, since: int = 0) -> list[str]:
        """The sound files played to the channel whose dialplan logged ``NoOp(<noop_marker>)``
        (e.g. "voicepay callback pay_..."), from that line on: what that party heard (nothing
        yet if the channel has not got there). Each is the file's path and, as its extension,
        the format Asterisk played it in (the channel's write format: ``ulaw`` when the .ulaw
        file beside the WAV was played as is, ``slin`` when a WAV was transcoded). ``since`` (asterisk_mark()) skips earlier calls
        with the same marker."""
        lines = self._asterisk_log()[since:]
        index, channel = _noop_line(lines, noop_marker)
        if channel is None:
            return []
        return [m.group(1) for later in lines[index:]
                if (m := re.search(rf"<{re.escape(channel)}> Playing '([^']+)'", later))]

    def channel_of(self, noop_marker: str, since: int = 0) -> str | None:
        """The channel whose dialplan logged ``NoOp(<noop_marker>)``, or None if none has yet."""
        return _noop_line(self._asterisk_log()[since:], noop_marker)[1]

    def prompt_names(self, noop_marker: str, since: int = 0) -> list[str]:
        """``prompts_played`` by prompt name only ("enter_pin"), whatever the file's format."""
        return [PurePosixPath(path).stem for path in self.prompts_played(noop_marker, since)]

    def wait_for_prompt(self, noop_marker: str, prompt: str, *, count: int = 1,
                        timeout: float = 60, since: int = 0) -> None:
        """Wait until that channel has been played ``prompt`` ``count`` times: the IVR is asking."""
        def played() -> int:
            return sum(PurePosixPath(p).stem == prompt
                       for p in self.prompts_played(noop_marker, since))
        assert self.wait_until(lambda: played() >= count, timeout), \
            f"the IVR never played {prompt} to the channel of {noop_marker!r}"

    def journal(self) -> list[dict]:
        path = journal_path(load_acquirer_settings(var_dir=self.settings.var_dir))  # type: ignore[attr-defined]
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def call(self, call: Call, *, timeout: float = 150, caller_ip: str = "127.0.0.1"
             ) -> subprocess.CompletedProcess:
        """Place one SIP call with SIPp; returns SIPp's result (exit 0: scenario completed).
        ``caller_ip``: the address it calls from, which names its endpoint (dtmf_modes.py)."""
        scenario = write_scenario(call, self.work_dir)
        return self.run_sipp(self.work_dir, scenario.name, timeout=timeout, caller_ip=caller_ip)

    def run_sipp(self, directory: Path, scenario: str, *, timeout: float = 150,
                 caller_ip: str = "127.0.0.1") -> subprocess.CompletedProcess:
        """Run one SIPp scenario file from ``directory`` (its captures are relative to it)."""
        log = self.work_dir / f"{Path(scenario).stem}.sipp.log"
        argv = ["sipp", "127.0.0.1:5060", "-sf", scenario, "-m", "1", "-l", "1",
                "-i", caller_ip, "-p", "0", "-mi", caller_ip, "-mp", "16000",
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

    def agent(self, callee: Callee, agent_id: str, *, cues: Cues | None = None) -> subprocess.Popen:
        """Start SIPp as test agent ``agent_id`` (710N answers on port 508N, media 1750N0); an
        agent whose keys are cued (Key(cue=...)) talks to ``cues``, and so does one that hangs up
        on a cue (Callee.hang_up_on_cue)."""
        slot = int(agent_id[-1])
        return self.uas(callee, 5080 + slot, 17500 + 10 * slot, cues=cues)

    def start_call(self, call: Call, *, media_port: int = 16000, cues: Cues | None = None,
                   caller_ip: str = "127.0.0.1") -> subprocess.Popen:
        """Like call(), but in the background; a cued call talks to ``cues`` (SIPp's 3PCC twin)."""
        scenario = write_scenario(call, self.work_dir)
        log = self.work_dir / f"{call.name}.sipp.log"
        argv = ["sipp", "127.0.0.1:5060", "-sf", scenario.name, "-m", "1", "-l", "1",
                "-i", caller_ip, "-p", "0", "-mi", caller_ip, "-mp", str(media_port),
                "-nostdin", "-timeout", "240s", "-timeout_error", "-trace_err", "-error_file", str(log)]
        if cues is not None:
            argv += ["-3pcc", f"127.0.0.1:{cues.port}"]
        if call.transport == "tcp":
            argv += ["-t", "t1"]  # one TCP connection for the call
        process = subprocess.Popen(argv, cwd=self.work_dir, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        self.started.append(process)
        if cues is not None:
            cues.connected()
        return process

    def uas(self, callee: Callee, port: int, media_port: int, *,
            cues: Cues | None = None) -> subprocess.Popen:
        directory = self.work_dir / f"callee-{callee.name}"
        scenario = write_uas_scenario(callee, directory)
        log = self.work_dir / f"{callee.name}.sipp.log"
        argv = ["sipp", "-sf", scenario.name, "-m", str(callee.calls), "-i", "127.0.0.1",
                "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port),
                "-nostdin", "-timeout", "240s", "-timeout_error", "-trace_err",
                "-error_file", str(log)]
        if cues is not None:
            argv += ["-3pcc", f"127.0.0.1:{cues.port}"]
        process = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        self.started.append(process)
        if cues is not None:
            cues.connected()
        # The platform may dial as soon as the test submits an order: SIPp must be listening.
        if not self.wait_until(lambda: _udp_listening(port) or process.poll() is not None, 15) \
                or process.poll() is not None:
            out, _ = process.communicate(timeout=10)
            pytest.fail(f"SIPp phone on port {port} did not start listening:\n{out[-2000:]}")
        return process

    @staticmethod
    def wait_until(condition, timeout: float) -> bool:
        """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def wait_for(self, payment_id: str, states: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            payment = self.get(f"/v1/payments/{payment_id}")
            if payment["status"] in states or time.monotonic() > deadline:
                return payment
            time.sleep(0.3)


def _noop_line(lines: list[str], noop_marker: str) -> tuple[int, str | None]:
    """(index, channel) of the first line in which a channel's dialplan logged
    ``NoOp(<noop_marker>)``; (len(lines), None) if none did."""
    for index, line in enumerate(lines):
        found = re.search(r'NoOp\("([^"]+)", "' + re.escape(noop_marker) + '"', line)
        if found:
            return index, found.group(1)
    return len(lines), None


def _udp_listening(port: int) -> bool:
    """Is a UDP socket bound to 127.0.0.1:``port``?"""
    return udp_bound("127.0.0.1", port)


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

# The CPU guard off (ivr/cpu_guard.py): the suite's shards, browsers and SIPp share two cores and
# keep them busy; a call refused for that would fail a test of something else. Its refusal is
# tested on its own (tests/e2e/test_overload.py).
CPU_GUARD_OFF = {"VOICEPAY_ADMIT_CPU_BUSY_PERCENT": "100"}

# Asterisk at full verbosity, debug included, in var/asterisk/log/full: what the leak scan reads.
FULL_ASTERISK_LOG = {"VOICEPAY_ASTERISK_DEBUG_LEVEL": "10"}


# The SIP edge in the tests: on 127.0.0.2 only (not the host's LAN), and a ban short enough to
# wait out (tests/e2e/test_sip_edge.py).
SIP_EDGE_SETTINGS = {
    "VOICEPAY_SIP_EDGE_ADDRESSES": "127.0.0.2",
    "VOICEPAY_SIP_EDGE_BAN_AFTER": "3",
    "VOICEPAY_SIP_EDGE_BAN_S": "5",
}


def _settlement_cutoff_far_from_now() -> dict[str, str]:
    """A settlement day that cannot end during the suite: its cut-off 12 hours from the start.

    Read by the ivr and the acquirer simulator alike, so both put the suite's money in one day
    whatever the hour of the run (tests/e2e/test_settlement_day.py settles that day).
    """
    cutoff = time.gmtime(time.time() + 12 * 3600)
    return {"VOICEPAY_SETTLEMENT_CUTOFF": f"{cutoff.tm_hour:02d}:{cutoff.tm_min:02d} Etc/UTC"}


def _set_aside_old_logs(var_dir: Path) -> None:
    """Logs of earlier runs go to var/log/previous/: the leak check judges this run's logs."""
    previous = var_dir / "log" / "previous"
    previous.mkdir(parents=True, exist_ok=True)
    for log in [*(var_dir / "log").glob("*.log"), *(var_dir / "asterisk" / "log").glob("*")]:
        if log.is_file() and log.name != "test-output.log":
            log.rename(previous / f"{log.parent.name}-{log.name}")


def _e2e_rules(var_dir: Path) -> Path:
    """The shipped rules, with every rule that counts payments (velocity, a new merchant's first
    payments) in shadow: still evaluated and recorded on each payment, never acting.

    The suite places a few hundred payments in minutes with a handful of test cards, mobiles and
    one merchant: exactly the bursts those rules exist to stop. Every other rule (limits, banned
    categories, unknown BINs, lists, the police and binding answers) acts as shipped; the counting
    rules themselves are tested on real Redis in tests/integration/test_risk_engine.py."""
    counted = {counter.name for counter in COUNTERS} | {"allow:merchant"}
    document = yaml.safe_load((REPO_ROOT / "ivr" / "risk" / "rules.yaml").read_text(encoding="utf-8"))
    for rule in document["rules"]:
        if any(name in rule["when"] for name in counted):
            rule["shadow"] = True
    path = var_dir / "e2e-rules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[E2E]:
    _require_real_parts()
    for name, value in {**CALLBACK_TIMING, **SIP_EDGE_SETTINGS, **FULL_ASTERISK_LOG, **CPU_GUARD_OFF,
                        **_settlement_cutoff_far_from_now()}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("VOICEPAY_RISK_RULES_FILE", str(_e2e_rules(load_settings().var_dir)))
    settings = load_settings()
    work_dir = settings.var_dir / "e2e"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    capture_dir = settings.var_dir / "capture"
    capture_dir.mkdir(parents=True, exist_ok=True)
    # Everything the ivr service and Asterisk say to each other over AMI and FastAGI, for the
    # leak check; and the acquirer link, whose PIN blocks the leak check then looks for.
    links_capture = capture_dir / "links.pcapng"
    links_capture.unlink(missing_ok=True)
    ports = (settings.ami_port, settings.agi_port, settings.acquirer_port)
    tshark = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", " or ".join(f"tcp port {port}" for port in ports),
         "-w", str(links_capture)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not links_capture.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not links_capture.exists():
        pytest.fail("tshark did not start capturing AMI, FastAGI and acquirer traffic", pytrace=False)
    real_stack = None
    try:
        if os.environ.get("VOICEPAY_E2E_USE_RUNNING") != "1":
            _set_aside_old_logs(settings.var_dir)
            # The stack we start begins with an empty Redis: no payment of an earlier run exists.
            shutil.rmtree(settings.var_dir / "redis", ignore_errors=True)
            real_stack = Stack(settings)
            real_stack.start()
        yield E2E(settings=settings, work_dir=work_dir,
                  api=f"http://{settings.http_host}:{settings.http_port}", processes=real_stack,
                  links_capture=links_capture)
    finally:
        if real_stack is not None:
            real_stack.stop()
        time.sleep(0.5)
        os.killpg(tshark.pid, signal.SIGINT)
        tshark.wait(timeout=10)


@pytest.fixture(autouse=True)
def _no_sipp_left_running(request) -> Iterator[None]:
    """A test that fails half-way leaves its phones and callers running; they would hold the
    ports the next test needs. Stop them after every test."""
    yield
    if "stack" in request.fixturenames:
        e2e = request.getfixturevalue("stack")
        for process in e2e.started:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        e2e.started.clear()
