"""The dialplan's global variables that come from the settings, so an operator sets them where
every other setting is set (ivr/config.py, the environment) and the dialplan never repeats them.

asterisk-conf/extensions.conf ``#include``s the file written here into its ``[globals]``, from
/opt/voicepay/generated (var/asterisk/generated/ mounted read-only into Asterisk's sandbox,
devstack/asterisk_sandbox.py). ``python -m devstack.stack prepare`` writes it before every start;
a change takes effect at Asterisk's next start (or ``dialplan reload``).
"""

from __future__ import annotations

from pathlib import Path

from ivr import dialplan_variables as dv
from ivr.config import Settings

__all__ = ["GENERATED_MOUNT", "GLOBALS_FILE", "dialplan_globals", "globals_text", "write_globals"]

# Where Asterisk sees var/asterisk/generated/, and the file extensions.conf includes from it.
GENERATED_MOUNT = "/opt/voicepay/generated"
GLOBALS_FILE = "globals.conf"


def dialplan_globals(settings: Settings) -> dict[str, str]:
    """Global name -> value. A ValueError names a setting the dialplan cannot use."""
    if settings.max_payment_calls < 1:
        raise ValueError("VOICEPAY_MAX_PAYMENT_CALLS must be at least 1 "
                         f"(got {settings.max_payment_calls})")
    # The CPU guard's refusals start open: the ivr service sets them once a second.
    return {dv.MAX_PAYMENT_CALLS: str(settings.max_payment_calls), dv.CPU_FULL_UNTIL: "0"}


def globals_text(settings: Settings) -> str:
    return ("; Generated from the settings by devstack/dialplan_globals.py at every prepare: "
            "edit the settings, not this file.\n"
            + "".join(f"{name} = {value}\n" for name, value in dialplan_globals(settings).items()))


def write_globals(settings: Settings, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / GLOBALS_FILE
    path.write_text(globals_text(settings), encoding="ascii")
    return path
