"""The whole stack on one machine: Redis, the acquirer and identity simulators, Asterisk, the SIP
edge in front of it (Kamailio, devstack/sip_edge.py) and the ivr service.

``make run`` runs ``python -m devstack.stack run`` (foreground until Ctrl-C); the end-to-end tests start
the same :class:`Stack`. devstack/supervisor.py does the supervising: every process in its own
process group, a process that dies restarted with back-off, Ctrl-C stopping them in reverse order
so no stray process, socket or mount is left behind. devstack/systemd/ runs the same processes
under systemd.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlparse

from simulators.acquirer.server import prepare_acquirer
from simulators.acquirer.settings import load_acquirer_settings
from devstack.asterisk_sandbox import AsteriskSandbox, ProvisionError, ensure_rootfs
from devstack.sip_edge import SIP_PORT, edge_addresses, udp_bound
from devstack.supervisor import ProcessSpec, Supervisor, SupervisorError
from ivr.config import REPO_ROOT, Settings, load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.log import configure_logging
from ivr.prompts import Manifest, build_hold_music, build_sounds, link_agent_sounds
from ivr.admin import call_api
from ivr.merchants import ensure_merchant_keys, load_seed
from ivr.console.agents import ensure_agent_credentials

__all__ = ["Stack", "StackError", "main"]


class StackError(RuntimeError):
    """A part of the stack did not start; the message names it and its log file."""


# Redis arguments apart from where it listens and keeps its data; devstack/systemd/ says the same
# in redis.conf terms. Payments must survive a Redis restart: every write goes to the append-only
# file, fsynced once a second (at most a second of writes lost if the machine itself dies; a
# killed redis-server loses none). RDB snapshots are off: they would be a second copy on disk of
# the same (personal) data and a fork a minute, and with the AOF on Redis never reads them.
REDIS_PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
# The ivr service and Redis run ahead of Asterisk and the rest under contention (their sessions'
# nice value: devstack/supervisor.py). Each serves every call from one thread; Asterisk runs a
# thread or more per call. At equal weight, on a saturated machine, the ivr service waited for a
# core 30 % of a load step and half the payments lost their PIN to a question asked late; a late
# Asterisk thread delays only its own call (`make bench-load`, README). Raising these two rather
# than lowering Asterisk leaves Asterisk level with everything else (lowered, it yielded to the
# load generator too and its 503s took 18 s). -5 weighs each at three times another process;
# their systemd units say the same. Needs root (the suite's namespaces do too); without it they
# keep the supervisor's own.
AHEAD_NICE = -5
# The development stack's settings of the ivr service, unless the environment says otherwise:
# webhooks may reach loopback, where the end-to-end tests' (and a developer's) receivers listen.
IVR_DEV_ENV = {"VOICEPAY_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"}

# Margin on top of the ivr service's drain time for closing its connections before SIGKILL.
IVR_STOP_MARGIN_S = 5


def ivr_stop_timeout(settings: Settings) -> float:
    """SIGTERM lets calls in progress finish for the service's drain time (VOICEPAY_DRAIN_SECONDS,
    30 s where the setting does not exist yet); it is SIGKILLed only after that and a margin."""
    return getattr(settings, "drain_seconds", 30) + IVR_STOP_MARGIN_S


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def _identity_ready(url: str) -> Callable[[], bool]:
    """An identity simulator is ready when its /healthz answers (whatever failure mode it is in)."""
    endpoint = urlparse(url)
    return lambda: _http_status(f"{endpoint.scheme}://{endpoint.netloc}/healthz") == 200


class Stack:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.acquirer_settings = load_acquirer_settings(var_dir=self.settings.var_dir)
        self.log_dir = self.settings.var_dir / "log"
        self.supervisor = Supervisor()
        self.asterisk: AsteriskSandbox | None = None

    # ---- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything before processes start: keys, prompts, Asterisk's root filesystem."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if generate_dev_keys(self.settings.keys_dir):
            print(f"keys: generated a development key set in {self.settings.keys_dir}")
        prepare_acquirer(self.acquirer_settings)
        ensure_merchant_keys(self.settings)
        ensure_agent_credentials(self.settings)  # the console's agents: passwords to read at once
        build_sounds(Manifest.load(), REPO_ROOT / "sounds")
        build_hold_music(REPO_ROOT / "sounds")
        link_agent_sounds(REPO_ROOT / "sounds")
        self.asterisk = AsteriskSandbox(self.settings, ensure_rootfs(self.settings))
        self.asterisk.prepare()

    # ---- processes ----------------------------------------------------------------------------
    def _components(self) -> list[ProcessSpec]:
        s = self.settings
        redis = urlparse(s.redis_url)
        redis_dir = s.var_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        assert self.asterisk is not None
        return [
            ProcessSpec("redis", ["redis-server", "--bind", redis.hostname or "127.0.0.1",
                                  "--port", str(redis.port or 6379), "--dir", str(redis_dir),
                                  *REDIS_PERSISTENCE, "--protected-mode", "yes"],
                        self.log_dir / "redis.log",
                        lambda: _port_open(redis.hostname or "127.0.0.1", redis.port or 6379),
                        cwd=REPO_ROOT, env=env, nice=AHEAD_NICE),
            ProcessSpec("acquirer", [python, "-m", "simulators.acquirer.server"],
                        self.log_dir / "acquirer.log",
                        lambda: _port_open(s.acquirer_host, s.acquirer_port), cwd=REPO_ROOT, env=env),
            *self.identity_specs(),
            # A killed Asterisk leaves its control socket behind: removed before every start.
            ProcessSpec("asterisk", self.asterisk.server_command(), self.log_dir / "asterisk.log",
                        self._asterisk_booted, before_start=self.asterisk.remove_runtime_files,
                        cwd=REPO_ROOT, env=env),
            self.sip_edge_spec(),
            self.ivr_spec(),
        ]

    def sip_edge_spec(self) -> ProcessSpec:
        """Kamailio, the SIP edge in front of Asterisk (devstack/sip_edge.py): ready when it is
        bound on every address it listens on."""
        addresses = edge_addresses(self.settings)
        return ProcessSpec("sip-edge", [sys.executable, "-m", "devstack.sip_edge"],
                           self.log_dir / "sip-edge.log",
                           lambda: all(udp_bound(address, SIP_PORT) for address in addresses),
                           cwd=REPO_ROOT, env=dict(os.environ))

    def ivr_spec(self, name: str = "ivr", **env: str) -> ProcessSpec:
        """An ivr service instance named ``name``, with ``env`` over the stack's environment
        (fault tests: short recovery deadlines, a second instance on its own ports)."""
        s = self.settings
        http_port = int(env.get("VOICEPAY_HTTP_PORT", s.http_port))
        return ProcessSpec(name, [sys.executable, "-m", "ivr.service"], self.log_dir / f"{name}.log",
                           lambda: _http_status(f"http://{s.http_host}:{http_port}/healthz") == 200,
                           stop_timeout=ivr_stop_timeout(s), cwd=REPO_ROOT, nice=AHEAD_NICE,
                           env={**IVR_DEV_ENV, **os.environ, "PYTHONUNBUFFERED": "1", **env})

    def identity_specs(self) -> list[ProcessSpec]:
        """The police and binding simulators, listening where the ivr service posts to."""
        s = self.settings
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return [ProcessSpec(name, [sys.executable, "-m", f"simulators.identity.{name}"],
                            self.log_dir / f"{name}.log", _identity_ready(url), cwd=REPO_ROOT, env=env)
                for name, url in (("police", s.police_url), ("binding", s.binding_url))]

    def _asterisk_booted(self) -> bool:
        assert self.asterisk is not None
        if not _port_open(self.settings.ami_host, self.settings.ami_port):
            return False
        if "fully booted" not in self.asterisk.cli("core waitfullybooted", timeout=10).lower():
            return False
        # Ready once its modules' debug is raised (the e2e suite's full log), before any call.
        self.asterisk.raise_module_debug()
        return True

    def _check_ports_free(self) -> None:
        s = self.settings
        busy = [f"{name} {port}" for name, host, port in [
            ("redis", urlparse(s.redis_url).hostname, urlparse(s.redis_url).port),
            ("acquirer", s.acquirer_host, s.acquirer_port), ("AMI", s.ami_host, s.ami_port),
            ("police", urlparse(s.police_url).hostname, urlparse(s.police_url).port),
            ("binding", urlparse(s.binding_url).hostname, urlparse(s.binding_url).port),
            ("FastAGI", s.agi_host, s.agi_port), ("HTTP", s.http_host, s.http_port),
        ] if _port_open(host or "127.0.0.1", port or 0)]
        if busy:
            raise StackError("ports already in use (is another stack running?): " + ", ".join(busy))

    def start(self, timeout: float = 90) -> None:
        self.prepare()
        self._check_ports_free()
        try:
            for component in self._components():
                self.supervisor.start(dataclasses.replace(component, start_timeout=timeout))
        except SupervisorError as exc:
            raise StackError(str(exc)) from None

    def stop(self) -> None:
        """Stop everything, the ivr service first (with its drain time), Redis last."""
        self.supervisor.stop()
        if self.asterisk is not None:
            self.asterisk.remove_runtime_files()

    # ---- one component at a time (fault-injection tests) ------------------------------------
    def kill(self, name: str, signum: int = signal.SIGKILL) -> int:
        """Send ``signum`` to component ``name`` and wait until the supervisor has it back and
        ready; returns its new pid."""
        return self.supervisor.kill(name, signum)

    def wait_ready(self, name: str, timeout: float | None = None) -> None:
        self.supervisor.wait_ready(name, timeout)

    def stop_component(self, name: str, signum: int = signal.SIGTERM) -> None:
        """Stop ``name`` and keep it down until :meth:`start_component` (e.g. Redis restarted,
        the acquirer unreachable for a while)."""
        self.supervisor.stop_component(name, signum)

    def start_component(self, name: str) -> None:
        self.supervisor.start_component(name)

    def run_component(self, spec: ProcessSpec) -> None:
        """Start ``spec`` and wait until it is ready; a component of that name already running
        is stopped first and replaced (an ivr service restarted with other settings, say)."""
        if spec.name in self.supervisor.names():
            self.supervisor.stop_component(spec.name)
        self.supervisor.start(spec)

    # ---- what a user needs to know ------------------------------------------------------------
    def banner(self) -> str:
        s = self.settings
        return "\n".join([
            "voicepay is running.",
            "",
            f"  HTTP API      http://{s.http_host}:{s.http_port}  (/healthz open; /v1/payments with",
            f"                the bearer token in {s.keys_dir}/operator.token or a merchant signature)",
            "  SIP           udp 5060: Asterisk on 127.0.0.1 (PJSIP, codecs ulaw/alaw, DTMF RFC 4733);",
            "                phones elsewhere through the SIP edge on "
            + ", ".join(edge_addresses(s)[:-1]) + " (Kamailio)",
            "  Softphones    users 6001, 6002; passwords: .venv/bin/python -m devstack.secrets show",
            "  Numbers       8000  self-service phone top-up (Mandarin; 8 Cantonese, 9 English)",
            "                8001  the same line, Mandarin set by the dialplan",
            "  Callbacks     register a softphone as 13900000001, then",
            "                .venv/bin/python -m devstack.merchant_cli pay --mobile 13900000001 \\",
            "                  --card 6221881000000011 --amount 88.00",
            "  Contact centre 8100 rings agents 7001, 7002 (softphones, passwords as above)",
            "  Merchants     .venv/bin/python -m ivr.admin list   (admit, suspend, limits, rotate-key...)",
            f"  Agent console http://{s.http_host}:{s.http_port}/console  (agents 7001, 7002: passwords in",
            f"                {s.keys_dir}/agent-passwords.json)",
            "  SIPp          calls from 127.0.0.1 need no account: see tests/sipp/README.md",
            f"  Logs          {self.log_dir}/ and {self.settings.var_dir}/asterisk/log/",
            "  Test cards    README.md, 'Test cards'",
            f"  Identity      police {s.police_url}",
            f"                binding {s.binding_url}",
            "                test registry and failure modes: README.md, 'Identity services (simulated)'",
            "",
            "Ctrl-C stops everything.",
        ])



def establish_seed_merchants(settings: Settings) -> None:
    """Development only: the seeded merchants count as established merchants, so a fresh
    `make run` calls the demo cardholder back at once instead of holding the first payments of
    each "new" merchant for review (rule merchant_new_or_dormant). Through the operator's risk
    API, like an operator would: the entries are in the audit and can be removed."""
    token = settings.operator_token_file.read_text(encoding="utf-8").strip()
    base = f"http://{settings.http_host}:{settings.http_port}/v1/admin/risk/lists/allow/merchant"
    for merchant in load_seed():
        body = json.dumps({"value": merchant.id, "note": "development seed merchant"}).encode()
        status, answer = call_api(base, "POST", {"Authorization": f"Bearer {token}"}, body)
        if status >= 300:
            print(f"stack: could not allow-list {merchant.id}: {status} {answer}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack")
    parser.add_argument("command", choices=["run", "prepare", "health"])
    args = parser.parse_args(argv)
    stack = Stack()
    if args.command == "prepare":
        stack.prepare()
        return 0
    if args.command == "health":
        url = f"http://{stack.settings.http_host}:{stack.settings.http_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            print(json.dumps(json.load(response), indent=2))
        return 0
    configure_logging(stack.settings.log_level)  # the supervisor's restart lines
    stop = threading.Event()

    def request_stop(*_: object) -> None:
        stop.set()

    # While starting, SIGTERM interrupts like Ctrl-C; once up, either asks the main thread to stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start()
        establish_seed_merchants(stack.settings)
        print(stack.banner(), flush=True)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        stop.wait()
    except (StackError, ProvisionError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the ordered stop short and leave processes behind.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        print("stopping...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
