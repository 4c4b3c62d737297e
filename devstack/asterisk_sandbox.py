"""Asterisk 22 for the stack: where it comes from and the sandbox it runs in.

Debian 12 has no Asterisk package, Debian sid has Asterisk 22: so, unless a system Asterisk 22 is
installed, we build a minimal sid root filesystem once with mmdebstrap, cache it outside the repo,
and run Asterisk from it under bubblewrap. Either way the same paths are bound in, so one
``asterisk-conf/`` serves both:

    /etc/asterisk              <- asterisk-conf/        (read-only)
    /opt/voicepay/dialplan     <- dialplan/             (read-only)
    /opt/voicepay/sounds       <- sounds/               (read-only)
    /opt/voicepay/secrets      <- var/asterisk/secrets/ (read-only; devstack/secrets.py)
    /run/asterisk, /var/log/asterisk, /var/spool/asterisk <- var/asterisk/{run,log,spool}

The root filesystem itself is read-only: the cached one is every stack's on the machine, so
whatever Asterisk writes (its AstDB too: asterisk-conf/asterisk.conf) is in this stack's var/.

bubblewrap's mounts live in the sandbox's own mount namespace: when Asterisk exits, nothing is
left mounted on the host.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from devstack.secrets import SECRETS_MOUNT
from devstack.secrets import provision as provision_secrets
from ivr.config import REPO_ROOT, Settings, load_settings

__all__ = ["AsteriskSandbox", "KEY_LOGGING_MODULES", "ensure_rootfs", "modules_to_debug",
           "system_asterisk_22", "ProvisionError"]

SID_PACKAGES = "asterisk,asterisk-core-sounds-en-wav,asterisk-moh-opsound-wav"


# The modules that log, at debug level, every key a caller presses (a PIN, a card number), so
# their debug is never raised (found in the e2e suite's full log by tests/leakcheck.py):
# - res_rtp_asterisk: each RFC 4733 event, "RTP creating BEGIN DTMF Frame: 50 (2)";
# - chan_pjsip: each in-band tone its detector hears, "* Detected inband DTMF '2' on 'PJSIP/...'".
# Core's dsp.c logs in-band keys too ("DTMF hit '2'"); core is not a module, its level is the
# global one, kept at 0. SECURITY.md tells operators the same.
KEY_LOGGING_MODULES = frozenset({"res_rtp_asterisk", "chan_pjsip"})


def modules_to_debug(module_show: str) -> list[str]:
    """The loadable modules in ``module show``'s answer (``res_pjsip_session.so ...``) but those
    in :data:`KEY_LOGGING_MODULES`; the built-in parts of core (``dsp``, ``acl``...) have no
    ``.so`` and no level of their own."""
    loaded = re.findall(r"(?m)^(\w+)\.so\s", module_show)
    return [module for module in loaded if module not in KEY_LOGGING_MODULES]


class ProvisionError(RuntimeError):
    """Asterisk could not be provided: the message says what is missing."""


def system_asterisk_22() -> bool:
    binary = shutil.which("asterisk")
    if not binary:
        return False
    try:
        version = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.match(r"Asterisk 22\.", version) is not None


def ensure_rootfs(settings: Settings) -> Path:
    """The root filesystem Asterisk runs from; builds and caches the sid rootfs on first use."""
    if settings.asterisk_root:
        root = Path(settings.asterisk_root)
        if not (root / "usr/sbin/asterisk").exists():
            raise ProvisionError(f"VOICEPAY_ASTERISK_ROOT={root} has no usr/sbin/asterisk")
        return root
    if system_asterisk_22():
        return Path("/")
    rootfs = settings.cache_dir / "asterisk-rootfs-sid"
    if (rootfs / "usr/sbin/asterisk").exists():
        return rootfs
    if not shutil.which("mmdebstrap"):
        raise ProvisionError("mmdebstrap is missing (make deps installs it)")
    building = rootfs.with_name(rootfs.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    print(f"asterisk: building the Debian sid rootfs in {rootfs} (once)", flush=True)
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--quiet",
         # The mirror's sid Release file is sometimes past its Valid-Until date.
         "--aptopt=Acquire::Check-Valid-Until \"false\"",
         f"--include={SID_PACKAGES}", "--mode=root", "sid", str(building),
         "http://deb.debian.org/debian"],
        check=True,
    )
    building.rename(rootfs)
    return rootfs


class AsteriskSandbox:
    """The bubblewrap command lines that run Asterisk (and its CLI) against our config."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.state_dir = settings.var_dir / "asterisk"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def secrets_dir(self) -> Path:
        """The AMI secret and SIP passwords as the files asterisk-conf/ includes."""
        return self.state_dir / "secrets"

    def prepare(self) -> None:
        for sub in ("run", "log", "spool"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        provision_secrets(self.settings, self.secrets_dir)
        self.remove_runtime_files()
        self._write_full_log_config()

    @property
    def _full_log_dir(self) -> Path:
        return self.state_dir / "etc-full-log"

    def _write_full_log_config(self) -> None:
        """With VOICEPAY_ASTERISK_DEBUG_LEVEL > 0 (the e2e suite), Asterisk runs from the shipped
        asterisk.conf and logger.conf with its verbose level raised to that level and a ``full``
        log of every message, debug included: so a leak into Asterisk's debug output is caught by
        the leak scan. Derived from the shipped files at each prepare: nothing to drift.
        The global debug level stays 0: core (dsp.c) logs every in-band key it detects at debug,
        so debug is raised per module once Asterisk is up (:meth:`raise_module_debug`).
        The shipped logger's choice of levels stays (no ``dtmf``: it would name the keyed digits)."""
        shutil.rmtree(self._full_log_dir, ignore_errors=True)
        level = self.settings.asterisk_debug_level
        if level <= 0:
            return
        self._full_log_dir.mkdir(parents=True)
        options = (REPO_ROOT / "asterisk-conf" / "asterisk.conf").read_text(encoding="utf-8")
        options = re.sub(r"(?m)^verbose\s*=.*$", f"verbose = {level}", options)
        options = re.sub(r"(?m)^debug\s*=.*$", "debug = 0", options)
        logger = (REPO_ROOT / "asterisk-conf" / "logger.conf").read_text(encoding="utf-8")
        logger += "full => notice,warning,error,debug,verbose\n"
        (self._full_log_dir / "asterisk.conf").write_text(options, encoding="utf-8")
        (self._full_log_dir / "logger.conf").write_text(logger, encoding="utf-8")

    def raise_module_debug(self) -> None:
        """With VOICEPAY_ASTERISK_DEBUG_LEVEL > 0, once Asterisk is up (at every start): that debug
        level for every loaded module but those that log keys (:data:`KEY_LOGGING_MODULES`)."""
        level = self.settings.asterisk_debug_level
        if level <= 0:
            return
        for module in modules_to_debug(self.cli("module show")):
            self.cli(f"core set debug {level} {module}")

    def remove_runtime_files(self) -> None:
        """Asterisk leaves its control socket and pid file when stopped by a signal; a stale
        socket would make "asterisk -rx" talk to nobody, so they go before a start and after a stop."""
        for stale in (self.state_dir / "run").glob("asterisk.*"):
            stale.unlink(missing_ok=True)

    def _bwrap(self) -> list[str]:
        if not shutil.which("bwrap"):
            raise ProvisionError("bubblewrap is missing (make deps installs it)")
        # The root read-only, the cached one too: every stack on the machine runs from it, so
        # whatever Asterisk writes goes to this stack's var/ (the binds below), never into a file
        # another stack's Asterisk also writes (asterisk-conf/asterisk.conf: the AstDB was one).
        return [
            "bwrap", "--ro-bind", str(self.root), "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", str(REPO_ROOT / "asterisk-conf"), "/etc/asterisk",
            "--tmpfs", "/opt",
            "--ro-bind", str(REPO_ROOT / "dialplan"), "/opt/voicepay/dialplan",
            "--ro-bind", str(REPO_ROOT / "sounds"), "/opt/voicepay/sounds",
            "--ro-bind", str(self.secrets_dir), SECRETS_MOUNT,
            "--bind", str(self.state_dir / "run"), "/run/asterisk",
            "--bind", str(self.state_dir / "log"), "/var/log/asterisk",
            "--bind", str(self.state_dir / "spool"), "/var/spool/asterisk",
            *(arg for conf in sorted(self._full_log_dir.glob("*.conf"))
              for arg in ("--ro-bind", str(conf), f"/etc/asterisk/{conf.name}")),
            "--die-with-parent",
        ]

    def server_command(self) -> list[str]:
        # -f: stay in the foreground so the stack supervises it; -n: no colour codes in the log.
        return [*self._bwrap(), "--unshare-pid", "--unshare-ipc", "asterisk", "-f", "-n", "-q"]

    def cli_command(self, command: str) -> list[str]:
        return [*self._bwrap(), "asterisk", "-rx", command]

    def cli(self, command: str, timeout: float = 30) -> str:
        result = subprocess.run(self.cli_command(command), capture_output=True, text=True,
                                timeout=timeout)
        return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.asterisk_sandbox")
    parser.add_argument("command", choices=["provision", "cli"])
    parser.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        root = ensure_rootfs(settings)
    except ProvisionError as exc:
        print(f"asterisk: {exc}", file=sys.stderr)
        return 1
    if args.command == "provision":
        print(f"asterisk: root filesystem {root}")
        return 0
    print(AsteriskSandbox(settings, root).cli(" ".join(args.args)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
