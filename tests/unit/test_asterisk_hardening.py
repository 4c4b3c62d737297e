"""Asterisk's configuration keeps the least privilege issue 15 asks for: the AMI account's
classes, no dangerous functions from remote interfaces, no DTMF in any log, no CDR or CEL that
could hold what a caller keyed. tests/e2e/test_asterisk_security.py proves the same against the
running Asterisk."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.ami.client import ORIGINATE_CONTEXTS, REDIRECT_CONTEXTS
from ivr.config import REPO_ROOT

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
            key, _, value = line.partition("=")
            current.setdefault(key.strip().rstrip(">").strip(), []).append(value.strip())
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
    for path in (p for p in shipped if p != Path(__file__)):
        assert not turned_on.search(path.read_text(encoding="utf-8", errors="replace")), path


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
