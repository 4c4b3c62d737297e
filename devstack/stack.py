"""The whole stack on one machine: Redis, the acquirer simulator, Asterisk and the ivr service.

``make run`` runs ``python -m devstack.stack run`` (foreground until Ctrl-C); the end-to-end tests start
the same :class:`Stack`. Every process is started in its own process group and stopped in
reverse order, so Ctrl-C leaves no stray process, socket or mount behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from simulators.acquirer.server import prepare_acquirer
from simulators.acquirer.settings import load_acquirer_settings
from devstack.asterisk_sandbox import AsteriskSandbox, ProvisionError, ensure_rootfs
from ivr.config import REPO_ROOT, Settings, load_settings
from ivr.crypto.keys import generate_dev_keys
from ivr.prompts import build_sounds
from ivr.merchants import ensure_merchant_keys
from ivr.callback.merchant_prompts import manifest_with_merchants

__all__ = ["Stack", "StackError", "main"]


class StackError(RuntimeError):
    """A part of the stack did not start; the message names it and its log file."""


@dataclass
class Managed:
    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    process: subprocess.Popen | None = field(default=None, repr=False)


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


class Stack:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.acquirer_settings = load_acquirer_settings(var_dir=self.settings.var_dir)
        self.log_dir = self.settings.var_dir / "log"
        self.processes: list[Managed] = []
        self.asterisk: AsteriskSandbox | None = None

    # ---- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything before processes start: keys, prompts, Asterisk's root filesystem."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if generate_dev_keys(self.settings.keys_dir):
            print(f"keys: generated a development key set in {self.settings.keys_dir}")
        prepare_acquirer(self.acquirer_settings)
        ensure_merchant_keys(self.settings)
        build_sounds(manifest_with_merchants(self.settings), REPO_ROOT / "sounds")
        self.asterisk = AsteriskSandbox(self.settings, ensure_rootfs(self.settings))
        self.asterisk.prepare()

    # ---- processes ----------------------------------------------------------------------------
    def _components(self) -> list[Managed]:
        s = self.settings
        redis = urlparse(s.redis_url)
        redis_dir = s.var_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        assert self.asterisk is not None
        return [
            Managed("redis", ["redis-server", "--bind", redis.hostname or "127.0.0.1",
                              "--port", str(redis.port or 6379), "--dir", str(redis_dir),
                              "--save", "60 1", "--appendonly", "no", "--protected-mode", "yes"],
                    self.log_dir / "redis.log",
                    lambda: _port_open(redis.hostname or "127.0.0.1", redis.port or 6379)),
            Managed("acquirer", [python, "-m", "simulators.acquirer.server"], self.log_dir / "acquirer.log",
                    lambda: _port_open(s.acquirer_host, s.acquirer_port)),
            Managed("asterisk", self.asterisk.server_command(), self.log_dir / "asterisk.log",
                    self._asterisk_booted),
            Managed("ivr", [python, "-m", "ivr.service"], self.log_dir / "ivr.log",
                    lambda: _http_status(f"http://{s.http_host}:{s.http_port}/healthz") == 200),
        ]

    def _asterisk_booted(self) -> bool:
        assert self.asterisk is not None
        if not _port_open(self.settings.ami_host, self.settings.ami_port):
            return False
        return "fully booted" in self.asterisk.cli("core waitfullybooted", timeout=10).lower()

    def _check_ports_free(self) -> None:
        s = self.settings
        busy = [f"{name} {port}" for name, host, port in [
            ("redis", urlparse(s.redis_url).hostname, urlparse(s.redis_url).port),
            ("acquirer", s.acquirer_host, s.acquirer_port), ("AMI", s.ami_host, s.ami_port),
            ("FastAGI", s.agi_host, s.agi_port), ("HTTP", s.http_host, s.http_port),
        ] if _port_open(host or "127.0.0.1", port or 0)]
        if busy:
            raise StackError("ports already in use (is another stack running?): " + ", ".join(busy))

    def start(self, timeout: float = 90) -> None:
        self.prepare()
        self._check_ports_free()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for component in self._components():
            log = component.log_path.open("ab")
            component.process = subprocess.Popen(
                component.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, env=env, start_new_session=True)
            log.close()
            self.processes.append(component)
            self._wait_ready(component, timeout)

    def _wait_ready(self, component: Managed, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert component.process is not None
            if component.process.poll() is not None:
                raise StackError(f"{component.name} exited with {component.process.returncode}; "
                                 f"see {component.log_path}")
            if component.ready():
                return
            time.sleep(0.2)
        raise StackError(f"{component.name} not ready after {timeout:.0f}s; see {component.log_path}")

    def stop(self) -> None:
        for component in reversed(self.processes):
            process = component.process
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()
        if self.asterisk is not None:
            self.asterisk.remove_runtime_files()

    # ---- what a user needs to know ------------------------------------------------------------
    def banner(self) -> str:
        s = self.settings
        return "\n".join([
            "voicepay is running.",
            "",
            f"  HTTP API      http://{s.http_host}:{s.http_port}  (/healthz open; /v1/payments with",
            f"                the bearer token in {s.keys_dir}/operator.token or a merchant signature)",
            "  SIP           udp 5060 on this machine (PJSIP, codecs ulaw/alaw, DTMF RFC 4733)",
            "  Softphones    user 6001 password voicepay-6001",
            "                user 6002 password voicepay-6002",
            "  Numbers       8000  self-service phone top-up (English)",
            "                8001  self-service phone top-up (Mandarin)",
            "  Callbacks     register a softphone as 13900000001 / voicepay-13900000001, then",
            "                .venv/bin/python -m devstack.merchant_cli pay --mobile 13900000001 \\",
            "                  --card 6221881000000011 --amount 88.00",
            "  Contact centre 8100 rings agents 7001 / voicepay-7001, 7002 / voicepay-7002",
            "  SIPp          calls from 127.0.0.1 need no account: see tests/sipp/README.md",
            f"  Logs          {self.log_dir}/ and {self.settings.var_dir}/asterisk/log/",
            "  Test cards    README.md, 'Test cards'",
            "",
            "Ctrl-C stops everything.",
        ])


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
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
        print(stack.banner(), flush=True)
        signal.signal(signal.SIGINT, request_stop)
        while not stop_requested:
            for component in stack.processes:
                assert component.process is not None
                if component.process.poll() is not None:
                    print(f"{component.name} exited; see {component.log_path}", file=sys.stderr)
                    stop_requested = True
            time.sleep(0.5)
    except (StackError, ProvisionError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
