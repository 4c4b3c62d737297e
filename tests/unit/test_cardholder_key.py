"""Returning-cardholder digests have their own key, not the card-number vault's (key separation)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from ivr.crypto.keys import (ACQUIRER_KEYS_FILE, IVR_KEYS_FILE, KeyFileOutdated, generate_dev_keys,
                             kcv, load_acquirer_keys, load_ivr_keys)
from ivr.oneline.orders import ReturningCardholders

# Not a documented test card (those must never reach test output); Luhn-valid.
PAN, MOBILE = "6221889999999994", "13800138000"


class _Set:
    """Just the two Redis sorted-set commands ReturningCardholders uses, in memory."""

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}

    @property
    def members(self) -> set[str]:
        return set(self.scores)

    async def zadd(self, key: str, mapping: dict[str, float]) -> None:
        self.scores.update(mapping)

    async def zscore(self, key: str, member: str) -> float | None:
        return self.scores.get(member)


def test_the_ivr_key_file_holds_a_separate_cardholder_key(tmp_path: Path) -> None:
    generate_dev_keys(tmp_path)
    keys = load_ivr_keys(tmp_path / IVR_KEYS_FILE)
    assert len(keys.cardholder_key) == 32
    assert keys.cardholder_key not in (keys.pan_key, keys.pek, keys.cvv_key)
    assert keys.kcv()["cardholder_key"] == kcv(keys.cardholder_key, "H")
    assert keys.cardholder_key.hex() not in repr(keys).lower()


async def test_the_digest_is_keyed_by_the_cardholder_key_only(tmp_path: Path) -> None:
    generate_dev_keys(tmp_path / "a")
    generate_dev_keys(tmp_path / "b")
    a, b = load_ivr_keys(tmp_path / "a" / IVR_KEYS_FILE), load_ivr_keys(tmp_path / "b" / IVR_KEYS_FILE)
    stored = _Set()
    await ReturningCardholders(stored, a.cardholder_key).remember(PAN, MOBILE)
    [digest] = stored.members
    assert digest == hmac.new(a.cardholder_key, f"{PAN}:{MOBILE}".encode(), hashlib.sha256).hexdigest()
    assert digest != hmac.new(a.pan_key, f"{PAN}:{MOBILE}".encode(), hashlib.sha256).hexdigest()
    assert PAN not in digest and PAN[6:] not in digest
    # Another cardholder key, the same everything else: not recognised.
    assert not await ReturningCardholders(stored, b.cardholder_key).seen(PAN, MOBILE)
    assert await ReturningCardholders(stored, a.cardholder_key).seen(PAN, MOBILE)


def test_a_key_file_from_before_the_cardholder_key_is_upgraded(tmp_path: Path) -> None:
    generate_dev_keys(tmp_path)
    ivr_path = tmp_path / IVR_KEYS_FILE
    before = load_ivr_keys(ivr_path)
    acquirer_before = load_acquirer_keys(tmp_path / ACQUIRER_KEYS_FILE)
    document = json.loads(ivr_path.read_text())
    del document["keys"]["cardholder_key"]
    ivr_path.write_text(json.dumps(document))
    with pytest.raises(KeyFileOutdated, match="has no cardholder_key key"):
        load_ivr_keys(ivr_path)

    assert generate_dev_keys(tmp_path) is True
    after = load_ivr_keys(ivr_path)
    # Encrypted card numbers and the PEK shared with the acquirer stay valid; the new key is new.
    assert (after.pek, after.pan_key, after.cvv_key) == (before.pek, before.pan_key, before.cvv_key)
    assert after.cardholder_key not in (before.cardholder_key, after.pan_key)
    assert load_acquirer_keys(tmp_path / ACQUIRER_KEYS_FILE) == acquirer_before
