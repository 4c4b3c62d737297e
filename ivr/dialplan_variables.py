"""Every channel variable shared between the dialplan and Python, named once.

The dialplan files in dialplan/ use the same names; tests/unit/test_dialplan_variables.py checks
that each one used there is defined here.
"""

# How the flow ended, for the dialplan to branch on: "success" or "failure".
RESULT = "VOICEPAY_RESULT"
# The payment a channel belongs to. The only payment data that ever travels in a channel variable.
PAYMENT_ID = "VOICEPAY_PAYMENT_ID"

# One-line payments: the agent's channel, which the caller's leg bridges back to afterwards.
AGENT_CHANNEL = "VOICEPAY_AGENT_CHANNEL"
# Talk-through: the caller's channel, which the agent's leg listens to and whispers into.
CALLER_CHANNEL = "VOICEPAY_CALLER_CHANNEL"

# A dialplan global, written from the settings (devstack/dialplan_globals.py): the most payment
# calls Asterisk carries at once before it refuses new ones with SIP 503 (dialplan/admission.conf).
MAX_PAYMENT_CALLS = "VOICEPAY_MAX_PAYMENT_CALLS"
# The group (name@category) every payment call joins while its channel lives: GROUP_COUNT of it
# is the number of payment calls Asterisk carries (dialplan/admission.conf).
PAYMENT_CALLS_GROUP = "payment-calls@voicepay"
# A dialplan global the ivr service sets once a second (ivr/cpu_guard.py): while the machine's
# CPUs are too busy for another payment call, a Unix time a few seconds ahead, until which new
# payment calls are refused (dialplan/admission.conf); 0 otherwise. A time, not a flag: should
# the service stop while the guard is closed, the refusals end by themselves.
CPU_FULL_UNTIL = "VOICEPAY_CPU_FULL_UNTIL"

__all__ = ["RESULT", "PAYMENT_ID", "AGENT_CHANNEL", "CALLER_CHANNEL", "MAX_PAYMENT_CALLS",
           "PAYMENT_CALLS_GROUP", "CPU_FULL_UNTIL"]
