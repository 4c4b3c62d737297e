"""Asterisk's configuration keeps the least privilege issue 15 asks for: the AMI account's
classes, no dangerous functions from remote interfaces, no DTMF in any log, no CDR or CEL that
could hold what a caller keyed. tests/e2e/test_asterisk_security.py proves the same against the
running Asterisk."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.asterisk_sandbox import AsteriskSandbox
from ivr.ami.client import ORIGINATE_CONTEXTS, REDIRECT_CONTEXTS
from ivr.config import REPO_ROOT, load_settings

CONF = REPO_ROOT / "asterisk-conf"
DIALPLAN = REPO_ROOT / "dialplan"


def _options(name: str) -> dict[str, dict[str, list[str]]]:
    """Asterisk's ``key = value`` lines per section, every value of a repeated key kept."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (CONF / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if match := re.fullmatch(r"\[([^\]]+)\].*", line):
            current = sections.setdefault(match.group(1), {})
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")  # "key = value", or "key => value"
            current.setdefault(key.strip(), []).append(value.removeprefix(">").strip())
    return sections


def _classes(value: str) -> set[str]:
    return {c.strip() for c in value.split(",")}


def test_the_ami_account_has_the_least_rights_the_service_needs():
    account = _options("manager.conf")["voicepay"]
    read, write = _classes(account["read"][0]), _classes(account["write"][0])
    assert read == {"call"}  # OriginateResponse, Hangup, Newstate
    assert write == {"call", "originate", "reporting"}
    forbidden = {"system", "command", "all", "config", "agent", "user", "aoc", "security"}
    assert not (read | write) & forbidden
    assert not read & {"dtmf", "dialplan", "agi", "cdr", "cc", "log", "verbose"}
    assert account["permit"] == ["127.0.0.1/255.255.255.255"]
    assert account["deny"] == ["0.0.0.0/0.0.0.0"]
    assert _options("manager.conf")["general"]["bindaddr"] == ["127.0.0.1"]
    # Only the events the service registers for pass, and DTMF is refused by name as well.
    assert account["eventfilter"] == ["Event: OriginateResponse", "Event: Hangup",
                                      "Event: Newstate", "!Event: DTMF"]


def test_no_event_that_carries_a_keyed_digit_is_ever_generated_and_the_service_gets_its_own():
    disabled = _classes(_options("manager.conf")["general"]["disabledevents"][0])
    assert {"DTMFBegin", "DTMFEnd", "AGIExecEnd", "VarSet"} <= disabled
    # The events the service registers for (ivr/callback/dialer.py, ivr/ami/client.py).
    assert not disabled & {"OriginateResponse", "Hangup", "Newstate"}


def test_the_fixed_contexts_exist_in_the_dialplan():
    contexts = set()
    for path in DIALPLAN.glob("*.conf"):
        contexts |= set(re.findall(r"^\[([\w-]+)\]", path.read_text(encoding="utf-8"), re.M))
    assert ORIGINATE_CONTEXTS | REDIRECT_CONTEXTS <= contexts
    # None of them is a caller's entry context: a channel sent there starts a payment step.
    assert not (ORIGINATE_CONTEXTS | REDIRECT_CONTEXTS) & {"from-cardholder", "from-agent", "default"}


def test_no_dangerous_functions_from_remote_interfaces_and_no_core_files():
    options = _options("asterisk.conf")["options"]
    assert options["live_dangerously"] == ["no"]
    assert options["dumpcore"] == ["no"]


def test_no_log_channel_writes_dtmf_and_agi_debug_is_never_turned_on():
    for channel, levels in _options("logger.conf")["logfiles"].items():
        assert "dtmf" not in levels[0].lower(), channel
    # AGI debug (every AGI command and reply, GET DATA's digits included) is off unless a CLI
    # command turns it on; nothing we ship or run does.
    shipped = [*CONF.glob("*"), *DIALPLAN.glob("*"), *(REPO_ROOT / "devstack").rglob("*.py"),
               *(REPO_ROOT / "ivr").rglob("*.py"), *(REPO_ROOT / "tests").rglob("*.py")]
    turned_on = re.compile(r"agi set debug on|core set debug|logger add channel")
    # The one exception: the e2e suite's full log raises debug per module, never for the modules
    # that log keys (devstack/asterisk_sandbox.py, proved by tests/unit/test_asterisk_full_log.py).
    e2e_full_log = REPO_ROOT / "devstack" / "asterisk_sandbox.py"
    exempt = {Path(__file__), e2e_full_log, Path(__file__).with_name("test_asterisk_full_log.py")}
    for path in (p for p in shipped if p not in exempt):
        assert not turned_on.search(path.read_text(encoding="utf-8", errors="replace")), path
    assert "agi set debug on" not in e2e_full_log.read_text(encoding="utf-8")


# Asterisk's log levels that name what a caller keys: ``dtmf`` names every key on any channel;
# ``debug`` lets res_rtp_asterisk, chan_pjsip and core's dsp.c name them (SECURITY.md).
KEY_NAMING_LEVELS = {"debug", "dtmf"}


def _levels(value: str) -> set[str]:
    """``notice,warning,verbose(3)`` -> {"notice", "warning", "verbose"}; ``*`` is every level."""
    levels = {re.sub(r"\(.*\)", "", level).strip().lower() for level in value.split(",")}
    return KEY_NAMING_LEVELS if "*" in levels else levels


def test_the_shipped_logging_never_writes_keys():
    logger = _options("logger.conf")
    assert logger["logfiles"], "no log channel found: the parse is wrong"
    for channel, values in logger["logfiles"].items():
        assert not _levels(values[-1]) & KEY_NAMING_LEVELS, f"logger.conf: {channel}"
    for section, options in logger.items():
        assert "debug" not in {key.lower() for key in options}, f"logger.conf [{section}]"
    options = _options("asterisk.conf")["options"]
    assert options.get("debug", ["0"]) == ["0"], "asterisk.conf: debug"
    # Nor on the command line (make run, the systemd unit): -d raises debug as asterisk.conf would.
    argv = AsteriskSandbox(load_settings(), Path("/")).server_command()
    flags = argv[argv.index("asterisk") + 1:]
    assert flags and not any(re.fullmatch(r"-\w*d\w*", flag) for flag in flags), flags


def test_the_logging_check_sees_a_channel_that_writes_keys():
    assert _levels("notice,warning,error,debug") & KEY_NAMING_LEVELS
    assert _levels("notice, DTMF ,verbose(3)") & KEY_NAMING_LEVELS
    assert _levels("*") & KEY_NAMING_LEVELS
    assert not _levels("notice,warning,error,verbose(3)") & KEY_NAMING_LEVELS


def test_cdr_and_cel_are_off_and_the_dialplan_never_reads_a_secret_itself():
    for name in ("cdr.conf", "cel.conf"):
        assert _options(name)["general"]["enable"] == ["no"], name
    # What a caller keys is read by the ivr over FastAGI (GET DATA), never by a dialplan
    # application whose data (a CDR's lastdata, a CEL's appdata) would then hold it: the only
    # Read() is a one-key menu.
    for path in DIALPLAN.glob("*.conf"):
        for args in re.findall(r"\bRead\((.*)\)\s*$", path.read_text(encoding="utf-8"), re.M):
            assert args.split(",")[2] == "1", f"{path.name}: Read({args})"
    modules = (CONF / "modules.conf").read_text(encoding="utf-8")
    assert "noload => cdr_manager.so" in modules and "noload => cel_manager.so" in modules
