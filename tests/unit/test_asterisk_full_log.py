"""VOICEPAY_ASTERISK_DEBUG_LEVEL: the e2e suite's Asterisk logs everything, debug included, from
the shipped configuration with only the levels raised, debug per module and never for the
modules that log keys; at 0 Asterisk runs as shipped. VOICEPAY_TALKTHROUGH=off: without
generated silence."""

import dataclasses
from pathlib import Path

from devstack.asterisk_sandbox import KEY_LOGGING_MODULES, AsteriskSandbox, modules_to_debug
from ivr.config import REPO_ROOT, load_settings


def _sandbox(tmp_path, level: int, talkthrough: str = "on") -> AsteriskSandbox:
    settings = dataclasses.replace(load_settings(), var_dir=tmp_path, asterisk_debug_level=level,
                                   talkthrough=talkthrough)
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
    # Debug stays 0 globally: core (dsp.c) logs the in-band keys it detects at any debug level.
    assert "verbose = 10" in options and "debug = 0" in options and "debug = 10" not in options
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


def test_talk_through_off_starts_asterisk_without_generated_silence(tmp_path):
    shipped = (REPO_ROOT / "asterisk-conf" / "asterisk.conf").read_text()
    assert "\ntransmit_silence = yes\n" in shipped  # what talk-through's whisper rides on
    overlays = _overlays(_sandbox(tmp_path, 0, talkthrough="off"))
    assert set(overlays) == {"/etc/asterisk/asterisk.conf"}
    options = Path(overlays["/etc/asterisk/asterisk.conf"]).read_text()
    assert options == shipped.replace("\ntransmit_silence = yes\n", "\ntransmit_silence = no\n")
    both = _overlays(_sandbox(tmp_path, 10, talkthrough="off"))
    options = Path(both["/etc/asterisk/asterisk.conf"]).read_text()
    assert "transmit_silence = no" in options and "verbose = 10" in options


# The head of `module show` on the e2e suite's Asterisk 22, with the modules that log keys.
MODULE_SHOW = """\
Module                         Description                              Use Count  Status      Support Level
acl                            Named ACL system                         2          Running              core
app_queue.so                   True Call Queueing                       0          Running              core
chan_pjsip.so                  PJSIP Channel Driver                     0          Running              core
dsp                            DSP                                      1          Running              core
res_agi.so                     Asterisk Gateway Interface (AGI)         1          Running              core
res_pjsip_session.so           PJSIP Session resource                   12         Running              core
res_rtp_asterisk.so            Asterisk RTP Stack                       0          Running              core
7 modules loaded
"""


def test_debug_is_raised_for_every_loaded_module_but_those_that_log_keys():
    assert modules_to_debug(MODULE_SHOW) == ["app_queue", "res_agi", "res_pjsip_session"]
    assert KEY_LOGGING_MODULES == {"res_rtp_asterisk", "chan_pjsip"}


class _RecordingCli(AsteriskSandbox):
    """The sandbox with its CLI answered here and every command recorded."""

    def __init__(self, sandbox: AsteriskSandbox) -> None:
        super().__init__(sandbox.settings, sandbox.root)
        self.commands: list[str] = []

    def cli(self, command: str, timeout: float = 30) -> str:
        self.commands.append(command)
        return MODULE_SHOW if command == "module show" else ""


def test_the_full_log_level_is_set_per_module_once_asterisk_is_up(tmp_path):
    sandbox = _RecordingCli(_sandbox(tmp_path, 10))
    sandbox.raise_module_debug()
    assert sandbox.commands == ["module show", "core set debug 10 app_queue",
                                "core set debug 10 res_agi", "core set debug 10 res_pjsip_session"]
    as_shipped = _RecordingCli(_sandbox(tmp_path, 0))
    as_shipped.raise_module_debug()
    assert as_shipped.commands == []
