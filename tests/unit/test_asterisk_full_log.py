"""VOICEPAY_ASTERISK_DEBUG_LEVEL: the e2e suite's Asterisk logs everything, debug included, from
the shipped configuration with only the levels raised; at 0 Asterisk runs as shipped."""

import dataclasses
from pathlib import Path

from devstack.asterisk_sandbox import AsteriskSandbox
from ivr.config import REPO_ROOT, load_settings


def _sandbox(tmp_path, level: int) -> AsteriskSandbox:
    settings = dataclasses.replace(load_settings(), var_dir=tmp_path, asterisk_debug_level=level)
    sandbox = AsteriskSandbox(settings, Path("/"))
    sandbox.prepare()
    return sandbox


def _overlays(sandbox: AsteriskSandbox) -> dict[str, str]:
    argv = sandbox.server_command()
    return {argv[i + 2]: argv[i + 1] for i, arg in enumerate(argv)
            if arg == "--ro-bind" and argv[i + 2].startswith("/etc/asterisk/")}


def test_full_verbosity_raises_the_levels_and_logs_debug_to_full(tmp_path):
    overlays = _overlays(_sandbox(tmp_path, 10))
    assert set(overlays) == {"/etc/asterisk/asterisk.conf", "/etc/asterisk/logger.conf"}
    options = Path(overlays["/etc/asterisk/asterisk.conf"]).read_text()
    assert "verbose = 10" in options and "debug = 10" in options
    assert "live_dangerously = no" in options  # the rest as shipped
    logger = Path(overlays["/etc/asterisk/logger.conf"]).read_text()
    assert "full => notice,warning,error,debug,verbose\n" in logger
    channels = [line for line in logger.splitlines() if "=>" in line]
    assert not any("dtmf" in line for line in channels)  # never the keyed digits
    shipped = (REPO_ROOT / "asterisk-conf" / "logger.conf").read_text()
    assert logger.startswith(shipped)


def test_level_0_runs_asterisk_as_shipped(tmp_path):
    _sandbox(tmp_path, 10)
    assert _overlays(_sandbox(tmp_path, 0)) == {}  # and a previous run's overlay is gone
