"""Key ids, states and check values in the key files; the `voicepay-keys` rotate, retire and show
commands; upgrading files from before key ids; the watched key file; tokens and digests that name
or try their key."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from psec import tr31

from ivr.crypto.keyed_digest import KeyedDigest
from ivr.crypto.keyring import KeyFileWatch, KeyRing, KeyUnavailable, KeyVersion
from ivr.crypto.keys import (ACQUIRER_KEYS_FILE, IVR_KEYS_FILE, LEGACY_BOX_KEY_FILE, KeyFileError,
                             KeyFileOutdated, KeyManagementError, describe, generate_dev_keys, kcv,
                             load_acquirer_keys, load_ivr_keys, main, retire, rotate)
from ivr.crypto.pan_vault import PanKeyRetired, PanVault
from ivr.crypto.sealed import SealError, key_id_of, open_sealed, seal
from ivr.crypto.secret_box import SecretBox
from ivr.hostlink.messages import Iso8583Error, PurchaseRequest

PAN = "6221881000000011"


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    generate_dev_keys(tmp_path / "keys")
    return tmp_path / "keys"


def _document(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


def _write(path: Path, document: dict) -> None:  # type: ignore[type-arg]
    path.write_text(json.dumps(document))
    path.chmod(0o600)


# --- rotate, retire, show ------------------------------------------------------------------------


def test_a_rotation_adds_a_current_version_and_keeps_the_old_one_readable(keys_dir: Path) -> None:
    before = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    version = rotate(keys_dir, "pan_key")
    after = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    ring = after.ring("pan_key")
    assert (version.id, ring.current.id) == (2, 2)
    assert after.pan_key == version.key != before.pan_key
    assert ring.key(1) == before.pan_key  # still readable
    assert [v.id for v in ring.readable] == [2, 1]
    assert version.kcv == kcv(after.pan_key) and repr(version) == f"KeyVersion(id=2, state='active', kcv='{version.kcv}')"
    # Only the IVR holds the PAN key; the acquirer's file is untouched in substance.
    assert "pan_key" not in load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).rings
    # The new block carries its id as its TR-31 key version number.
    document = _document(keys_dir / IVR_KEYS_FILE)
    header, _ = tr31.unwrap(bytes.fromhex(document["kbpk"]), document["keys"]["pan_key"][1]["block"])
    assert header.version_num == "02"


def test_a_shared_key_rotates_in_both_files(keys_dir: Path) -> None:
    for role in ("pek", "cvv_key"):
        version = rotate(keys_dir, role)
        ivr, acquirer = (load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring(role),
                         load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).ring(role))
        assert ivr == acquirer and ivr.current.id == version.id == 2
        retire(keys_dir, role, 1)
        ivr, acquirer = (load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring(role),
                         load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).ring(role))
        assert ivr == acquirer and [v.state for v in ivr.versions] == ["retired", "active"]


def test_a_retired_version_keeps_its_id_and_kcv_but_not_its_key(keys_dir: Path) -> None:
    old_kcv = load_ivr_keys(keys_dir / IVR_KEYS_FILE).kcv()["cardholder_key"]
    rotate(keys_dir, "cardholder_key")
    retired = retire(keys_dir, "cardholder_key", 1)
    assert (retired.id, retired.state, retired.kcv, retired.key) == (1, "retired", old_kcv, None)
    [entry, _] = _document(keys_dir / IVR_KEYS_FILE)["keys"]["cardholder_key"]
    assert entry == {"id": 1, "state": "retired", "kcv": old_kcv}  # no block: the key is destroyed
    ring = load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring("cardholder_key")
    with pytest.raises(KeyUnavailable, match="cardholder_key key 1 is retired"):
        ring.key(1)
    with pytest.raises(KeyUnavailable, match="cardholder_key key 7 is unknown"):
        ring.key(7)
    assert [v.id for v in ring.readable] == [2]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: rotate(d, "pvk"), "pvk does not rotate"),
    (lambda d: rotate(d, "cvk"), "cvk does not rotate"),
    (lambda d: retire(d, "pek", 1), "pek key 1 is the current key; rotate pek first"),
    (lambda d: retire(d, "pek", 5), "pek has no key 5"),
    (lambda d: retire(d, "nonsense", 1), "no key role nonsense"),
])
def test_what_rotate_and_retire_refuse(keys_dir: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    before = {name: (keys_dir / name).read_bytes() for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE)}
    with pytest.raises(KeyManagementError, match=message):
        change(keys_dir)
    assert {name: (keys_dir / name).read_bytes() for name in before} == before


def test_retiring_twice_is_refused(keys_dir: Path) -> None:
    rotate(keys_dir, "box_key")
    retire(keys_dir, "box_key", 1)
    with pytest.raises(KeyManagementError, match="box_key key 1 is already retired"):
        retire(keys_dir, "box_key", 1)


def test_describe_lists_every_version_of_both_files(keys_dir: Path) -> None:
    rotate(keys_dir, "pek")
    retire(keys_dir, "pek", 1)
    rows = describe(keys_dir)
    pek = [row for row in rows if row[1] == "pek"]
    assert [(f, i, s) for f, _, i, s, _ in pek] == [
        (IVR_KEYS_FILE, 1, "retired"), (IVR_KEYS_FILE, 2, "active, current"),
        (ACQUIRER_KEYS_FILE, 1, "retired"), (ACQUIRER_KEYS_FILE, 2, "active, current")]
    roles = {(f, r) for f, r, *_ in rows}
    assert roles == {(IVR_KEYS_FILE, r) for r in ("pek", "pan_key", "cvv_key", "cardholder_key", "box_key")} \
        | {(ACQUIRER_KEYS_FILE, r) for r in ("pek", "pvk", "cvv_key", "cvk")}


def test_cli_rotate_retire_show(keys_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring("pan_key").current
    assert main(["--dir", str(keys_dir), "rotate", "pan_key"]) == 0
    new = load_ivr_keys(keys_dir / IVR_KEYS_FILE).ring("pan_key").current
    out = capsys.readouterr().out
    assert f"rotated pan_key: key 2 (KCV {new.kcv}) is current" in out
    assert f"pan_key         key 1   active            KCV {old.kcv}" in out
    assert f"pan_key         key 2   active, current   KCV {new.kcv}" in out

    assert main(["--dir", str(keys_dir), "retire", "pan_key", "1"]) == 0
    out = capsys.readouterr().out
    assert f"retired pan_key key 1 (KCV {old.kcv})" in out
    assert f"pan_key         key 1   retired           KCV {old.kcv}" in out

    assert main(["--dir", str(keys_dir), "retire", "pan_key", "2"]) == 1
    assert "error: pan_key key 2 is the current key" in capsys.readouterr().err
    assert main(["--dir", str(keys_dir), "show"]) == 0
    out = capsys.readouterr().out
    assert out.count("KCV") == 10  # 6 IVR versions (pan_key has two), 4 acquirer ones
    for keys in (load_ivr_keys(keys_dir / IVR_KEYS_FILE), load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)):
        for ring in keys.rings.values():
            for version in ring.versions:
                assert version.key is None or version.key.hex().upper() not in out.upper()
    assert old.key is not None and old.key.hex().upper() not in out.upper()
    with pytest.raises(SystemExit):
        main(["--dir", str(keys_dir), "rotate", "pvk"])  # not a choice


# --- loading: ids and states are checked like the blocks ------------------------------------------


def _move_block_to_another_id(document: dict) -> None:  # type: ignore[type-arg]
    document["keys"]["pek"][0]["id"] = 3  # the block says version 01


def _two_versions_same_id(document: dict) -> None:  # type: ignore[type-arg]
    document["keys"]["pek"].append(dict(document["keys"]["pek"][0]))


def _no_active_version(document: dict) -> None:  # type: ignore[type-arg]
    entry = document["keys"]["pek"][0]
    entry["state"] = "retired"


def _unknown_state(document: dict) -> None:  # type: ignore[type-arg]
    document["keys"]["pek"][0]["state"] = "asleep"


@pytest.mark.parametrize(("tamper", "message"), [
    (_move_block_to_another_id, "pek key 3 block carries another key version"),
    (_two_versions_same_id, "pek key ids are repeated"),
    (_no_active_version, "pek has no active key"),
    (_unknown_state, "pek has a malformed key id or state"),
])
def test_tampered_ids_and_states_are_refused(keys_dir: Path, tamper, message: str) -> None:  # type: ignore[no-untyped-def]
    path = keys_dir / IVR_KEYS_FILE
    document = _document(path)
    tamper(document)
    _write(path, document)
    with pytest.raises(KeyFileError, match=message):
        load_ivr_keys(path)


# --- upgrading a pair from before key ids, and the old box key file ------------------------------


def _as_format_1(path: Path) -> None:
    """Rewrite ``path`` as the previous version wrote it: one unversioned block per role."""
    document = _document(path)
    kbpk = bytes.fromhex(document["kbpk"])
    for role, entries in document["keys"].items():
        header, key = tr31.unwrap(kbpk, entries[0]["block"])
        header.version_num = "00"
        document["keys"][role] = {"block": tr31.wrap(kbpk, header, key), "kcv": entries[0]["kcv"]}
    document["format"] = 1
    _write(path, document)


def test_format_1_files_and_the_old_box_key_file_are_upgraded_keeping_every_key(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    generate_dev_keys(keys_dir)
    before_ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    before_acq = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE):
        _as_format_1(keys_dir / name)
    # The box key as it was kept before it became a role: a hex file of its own.
    document = _document(keys_dir / IVR_KEYS_FILE)
    del document["keys"]["box_key"]
    _write(keys_dir / IVR_KEYS_FILE, document)
    old_box_key = bytes(range(32))
    (keys_dir / LEGACY_BOX_KEY_FILE).write_text(old_box_key.hex() + "\n")
    sealed_before = SecretBox(old_box_key).seal(b"s" * 32, "M100001:api-key")
    token_before = PanVault(before_ivr.pan_key).encrypt(PAN, "pay_1")
    legacy_token = token_before.partition(".")[2]  # as tokens were written before key ids

    with pytest.raises(KeyFileOutdated, match="no key ids"):
        load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    assert generate_dev_keys(keys_dir) is True
    after_ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    assert load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE) == before_acq
    for role in ("pek", "pan_key", "cvv_key", "cardholder_key"):
        assert after_ivr.ring(role) == before_ivr.ring(role)
    assert after_ivr.box_key == old_box_key and after_ivr.ring("box_key").current.id == 1
    assert not (keys_dir / LEGACY_BOX_KEY_FILE).exists()
    # What was sealed before the upgrade still opens, tokens without an id included.
    assert SecretBox(after_ivr.ring("box_key")).open(sealed_before, "M100001:api-key") == b"s" * 32
    assert PanVault(after_ivr.ring("pan_key")).decrypt(legacy_token, "pay_1") == PAN
    assert generate_dev_keys(keys_dir) is False  # nothing left to upgrade


# --- the watched key file -------------------------------------------------------------------------


def test_the_watch_rereads_a_changed_file_and_keeps_its_keys_if_the_new_one_is_bad(
        keys_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = keys_dir / IVR_KEYS_FILE
    watch = KeyFileWatch(path, load_ivr_keys)
    ring = watch.ring("pek")
    assert ring().current.id == 1 and watch() is watch()  # unchanged: not re-read
    rotate(keys_dir, "pek")
    assert ring().current.id == 2

    good = watch()
    document = _document(path)
    document["keys"]["pek"][1]["kcv"] = "000000"
    _write(path, document)
    with caplog.at_level(logging.ERROR):
        assert watch() is good  # a bad edit does not take the keys away
        assert watch() is good
    [record] = [r for r in caplog.records if "does not load" in r.getMessage()]
    assert "keeping the keys loaded before" in record.getMessage()
    assert all(v.key is None or v.key.hex() not in caplog.text.lower() for v in good.ring("pek").versions)

    fixed = _document(path)
    fixed["keys"]["pek"][1]["kcv"] = good.ring("pek").current.kcv
    _write(path, fixed)
    os.utime(path, ns=(1, 1))  # a mended file is read again (any change of mtime, inode or size)
    assert watch() is not good and watch().ring("pek") == good.ring("pek")


# --- tokens that name their key, digests tried under every readable key ---------------------------


def _two_versions(role: str) -> KeyRing:
    return KeyRing(role, (KeyVersion(1, "active", "", bytes(32)), KeyVersion(2, "active", "", bytes(range(32)))))


def test_tokens_name_their_key_and_open_under_it() -> None:
    old, both = KeyRing.single("pan_key", bytes(32)), _two_versions("pan_key")
    token_1 = seal(old, b"value", b"aad")
    token_2 = seal(both, b"value", b"aad")
    assert (key_id_of(token_1), key_id_of(token_2), key_id_of(token_1.partition(".")[2])) == (1, 2, 1)
    assert open_sealed(both, token_1, b"aad") == open_sealed(both, token_2, b"aad") == b"value"
    retired = KeyRing("pan_key", (KeyVersion(1, "retired", "", None), both.versions[1]))
    with pytest.raises(SealError, match="sealed under pan_key key 1 is retired"):
        open_sealed(retired, token_1, b"aad")
    with pytest.raises(PanKeyRetired, match="pan_key key 1 is retired"):
        PanVault(retired).decrypt(PanVault(old).encrypt(PAN, "p"), "p")
    for bad in ("x1.AAAA", "123.AAAA", "1.!!!"):
        with pytest.raises(SealError):
            open_sealed(both, bad, b"aad")


def test_digests_are_made_under_the_current_key_and_tried_under_every_readable_one() -> None:
    both = KeyedDigest(_two_versions("cardholder_key"))
    old = KeyedDigest(KeyRing.single("cardholder_key", bytes(32)))
    made_before = old.current(b"card:", PAN.encode())
    assert both.current(b"card:", PAN.encode()) != made_before
    assert both.all(b"card:", PAN.encode()) == [both.current(b"card:", PAN.encode()), made_before]
    assert both.matches(made_before, b"card:", PAN.encode())
    assert not both.matches(made_before, b"card:", b"6221881000000029")


# --- the key ids on the wire: field 53 ------------------------------------------------------------


def test_field_53_carries_the_pin_and_cvv_key_ids() -> None:
    common = dict(pan=PAN, amount=100, stan="000001", terminal_id="T0000001",
                  merchant_id="M00000000000001")
    request = PurchaseRequest.create(**common, pin_block=bytes(16), pin_key_id=2)
    raw = request.encode()
    assert b"0200000000000000" in raw
    decoded = PurchaseRequest.decode(raw)
    assert (decoded.pin_key_id, decoded.cvv_key_id) == (2, None)
    plain = PurchaseRequest.create(**common, pin_block=bytes(16))
    assert PurchaseRequest.decode(plain.encode()).pin_key_id is None
    with pytest.raises(Iso8583Error, match="pin_key_id must be a key id from 1 to 99"):
        PurchaseRequest.create(**common, pin_block=bytes(16), pin_key_id=100)
