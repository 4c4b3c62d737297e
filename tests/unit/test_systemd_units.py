"""devstack/systemd/ cannot rot silently: its units start modules that exist, restart on failure,
stop within the ivr service's drain time, and run Redis and Asterisk as the dev stack does."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from devstack.asterisk_sandbox import AsteriskSandbox
from devstack.stack import AHEAD_NICE, REDIS_PERSISTENCE, ivr_stop_timeout
from ivr.config import REPO_ROOT, Settings

UNIT_DIR = REPO_ROOT / "devstack" / "systemd"
SERVICES = sorted(UNIT_DIR.glob("*.service"))
# Where the units expect things (devstack/systemd/README.md, "Install").
INSTALL_DIR, STATE_DIR = "/opt/voicepay", Path("/var/lib/voicepay")
ROOTFS = Path("/var/cache/voicepay/asterisk-rootfs-sid")


def _unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def _exec_start(path: Path) -> list[str]:
    # systemd joins lines ending in a backslash; configparser keeps them as "\\\n".
    return shlex.split(_unit(path)["Service"]["ExecStart"].replace("\\\n", " "))


def test_there_is_a_unit_for_each_process_of_the_stack():
    assert [p.name for p in SERVICES] == ["voicepay-acquirer.service", "voicepay-asterisk.service",
                                          "voicepay-binding.service", "voicepay-ivr.service",
                                          "voicepay-police.service", "voicepay-redis.service",
                                          "voicepay-sip-edge.service"]


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.stem)
def test_every_service_restarts_on_failure_and_stops_in_bounded_time(path: Path):
    service = _unit(path)["Service"]
    assert service["Restart"] == "on-failure"
    assert float(service["RestartSec"]) > 0  # never a tight loop
    assert float(service["TimeoutStopSec"]) > 0
    assert service["KillSignal"] == "SIGTERM"


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.stem)
def test_python_modules_started_by_the_units_exist(path: Path):
    argv = _exec_start(path)
    if "-m" not in argv:
        return  # redis-server, bwrap: checked below
    assert argv[0] == f"{INSTALL_DIR}/.venv/bin/python"
    module = Path(*argv[argv.index("-m") + 1].split("."))
    assert ((REPO_ROOT / module).with_suffix(".py").is_file()
            or (REPO_ROOT / module / "__main__.py").is_file()), f"{module} is not in the repository"


def test_units_only_depend_on_units_that_exist():
    known = {p.name for p in UNIT_DIR.glob("voicepay*")}
    for path in [*SERVICES, UNIT_DIR / "voicepay.target"]:
        unit = _unit(path)["Unit"]
        for key in ("Wants", "After", "PartOf"):
            for name in unit.get(key, "").split():
                assert name in known or not name.startswith("voicepay"), f"{path.name}: {name}"


def test_the_ivr_service_has_its_drain_time_to_stop_and_comes_after_what_it_uses():
    unit = _unit(UNIT_DIR / "voicepay-ivr.service")
    assert float(unit["Service"]["TimeoutStopSec"]) == ivr_stop_timeout(Settings())
    for needed in ("voicepay-redis.service", "voicepay-acquirer.service",
                   "voicepay-asterisk.service"):
        assert needed in unit["Unit"]["After"].split() and needed in unit["Unit"]["Wants"].split()


def test_redis_keeps_payments_as_the_dev_stack_does():
    argv = _exec_start(UNIT_DIR / "voicepay-redis.service")
    n = len(REDIS_PERSISTENCE)
    assert any(argv[i:i + n] == REDIS_PERSISTENCE for i in range(len(argv))), argv
    assert argv[argv.index("--dir") + 1] == str(STATE_DIR / "redis")
    assert argv[argv.index("--port") + 1] == "6390"  # the default VOICEPAY_REDIS_URL's


def test_asterisk_runs_in_the_sandbox_the_dev_stack_uses():
    sandbox = AsteriskSandbox(Settings(var_dir=STATE_DIR), ROOTFS)
    expected = [arg.replace(str(REPO_ROOT), INSTALL_DIR) for arg in sandbox.server_command()]
    argv = _exec_start(UNIT_DIR / "voicepay-asterisk.service")
    assert argv[0] == "/usr/bin/bwrap" and expected[0] == "bwrap"
    assert argv[1:] == expected[1:]


def test_the_ivr_service_and_redis_run_ahead_as_in_the_dev_stack_and_nothing_else_does():
    services = {path.name: _unit(path)["Service"] for path in SERVICES}
    for name in ("voicepay-ivr.service", "voicepay-redis.service"):
        unit = services.pop(name)
        assert int(unit["Nice"]) == AHEAD_NICE < 0
        # nice -5's weight against nice 0's (1024 * 1.25 ** 5, the kernel's table): about three
        assert int(unit["CPUWeight"]) == round(100 * 1.25 ** -AHEAD_NICE, -2)
    assert all("Nice" not in unit and "CPUWeight" not in unit for unit in services.values())


def test_the_ivr_service_stops_before_the_identity_simulators_but_never_needs_them():
    unit = _unit(UNIT_DIR / "voicepay-ivr.service")["Unit"]
    for simulator in ("voicepay-police.service", "voicepay-binding.service"):
        assert simulator in unit["After"].split()
        assert simulator not in unit["Wants"].split() and simulator not in unit.get("Requires", "")
