"""A PIN encryption key rotated while the whole stack runs: the next call's PIN block names the
new key id in ISO 8583 field 53 and the acquirer, which was not restarted either, reads it.

The stack's key files are put back as they were afterwards (the running processes re-read them
again), so a development machine's keys do not gain a version at every run.
"""

from __future__ import annotations

import time

import pytest

from ivr.crypto.keys import ACQUIRER_KEYS_FILE, IVR_KEYS_FILE, load_ivr_keys, rotate
from ivr.files import write_private
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_selfservice_calls import journal_since, masked, place
from tests.sipp import selfservice_calls as calls

pytestmark = pytest.mark.e2e


def test_a_pek_rotated_while_the_stack_runs_is_used_by_the_next_call(stack):
    card = find_test_card("approve")
    keys_dir = stack.settings.keys_dir
    kept = {name: (keys_dir / name).read_text() for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE)}
    before_id = load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring("pek").current.id
    started = time.time()
    try:
        first = place(stack, calls.approved("13800000091"), "13800000091")
        rotated = rotate(keys_dir, "pek")
        second = place(stack, calls.approved("13800000092"), "13800000092")
    finally:
        for name, text in kept.items():
            write_private(keys_dir / name, text)
    assert (first["status"], second["status"]) == ("approved", "approved")
    seen = journal_since(stack, started, masked(card.pan))
    assert [(e["mti"], e["response_code"], e["pin_key_id"]) for e in seen] == [
        ("0200", "00", before_id), ("0200", "00", rotated.id)]
    assert rotated.id == before_id + 1
