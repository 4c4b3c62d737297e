"""Development key files: generation, reload, check values, tamper detection, no overwrite."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from psec import tr31

from ivr.crypto.keys import (
    ACQUIRER_KEYS_FILE,
    DEV_CVK,
    IVR_KEYS_FILE,
    AcquirerKeys,
    IvrKeys,
    KeyFileError,
    KeyFileOutdated,
    generate_dev_keys,
    kcv,
    load_acquirer_keys,
    load_ivr_keys,
    main,
)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    assert generate_dev_keys(directory) is True
    return directory


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    path.chmod(0o600)


def test_generate_and_reload(keys_dir: Path) -> None:
    ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    acquirer = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    assert len(ivr.pek) == 16 and len(ivr.pan_key) == 32 and len(ivr.cvv_key) == 16
    assert len(acquirer.pek) == 16 and len(acquirer.pvk) == 16
    assert len(acquirer.cvv_key) == 16 and len(acquirer.cvk) == 16
    assert acquirer.pvk[:8] != acquirer.pvk[8:]
    assert load_ivr_keys(keys_dir / IVR_KEYS_FILE) == ivr
    assert load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE) == acquirer


def test_cvv_key_is_shared_and_separate_from_the_pek(keys_dir: Path) -> None:
    ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    acquirer = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    assert ivr.cvv_key == acquirer.cvv_key
    assert len({ivr.pek, ivr.cvv_key, ivr.pan_key[:16], acquirer.pvk, acquirer.cvk}) == 5
    assert ivr.kcv()["cvv_key"] == acquirer.kcv()["cvv_key"] == kcv(ivr.cvv_key)


def test_cvk_is_the_published_development_cvk(keys_dir: Path) -> None:
    # Fixed on purpose: the documented test cards' CVV2s are computed under it.
    cvk = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).cvk
    assert cvk == DEV_CVK and cvk[:8] != cvk[8:]
    assert all(bin(byte).count("1") % 2 == 1 for byte in cvk)  # odd parity, a proper DES key
    other = keys_dir.parent / "other"
    generate_dev_keys(other)
    assert load_acquirer_keys(other / ACQUIRER_KEYS_FILE).cvk == DEV_CVK
    assert load_acquirer_keys(other / ACQUIRER_KEYS_FILE).pvk != load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).pvk


def test_pek_is_shared_but_each_party_has_its_own_kbpk(keys_dir: Path) -> None:
    ivr_doc = json.loads((keys_dir / IVR_KEYS_FILE).read_text())
    acq_doc = json.loads((keys_dir / ACQUIRER_KEYS_FILE).read_text())
    assert load_ivr_keys(keys_dir / IVR_KEYS_FILE).pek == load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).pek
    assert ivr_doc["kbpk"] != acq_doc["kbpk"]
    assert ivr_doc["keys"]["pek"][0]["block"] != acq_doc["keys"]["pek"][0]["block"]
    assert ivr_doc["keys"]["pek"][0]["kcv"] == acq_doc["keys"]["pek"][0]["kcv"]


def test_key_blocks_are_tr31_version_d_with_the_right_usage(keys_dir: Path) -> None:
    expected = {
        IVR_KEYS_FILE: {"pek": ("P0", "A", "E"), "pan_key": ("D0", "A", "B"), "cvv_key": ("D0", "A", "E"),
                        "cardholder_key": ("M7", "H", "C"), "box_key": ("D0", "A", "B")},
        ACQUIRER_KEYS_FILE: {
            "pek": ("P0", "A", "D"),
            "pvk": ("V1", "T", "C"),
            "cvv_key": ("D0", "A", "D"),
            "cvk": ("C0", "T", "V"),
        },
    }
    for name, roles in expected.items():
        document = json.loads((keys_dir / name).read_text())
        kbpk = bytes.fromhex(document["kbpk"])
        assert len(kbpk) == 32
        for role, attributes in roles.items():
            [entry] = document["keys"][role]
            assert (entry["id"], entry["state"]) == (1, "active")
            header, _ = tr31.unwrap(kbpk, entry["block"])
            assert header.version_id == "D" and header.version_num == "01"  # the key id
            assert (header.key_usage, header.algorithm, header.mode_of_use) == attributes
        assert set(document["keys"]) == set(roles)


def test_files_are_private(keys_dir: Path) -> None:
    for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600


def test_no_overwrite_without_force(keys_dir: Path) -> None:
    before = (keys_dir / IVR_KEYS_FILE).read_bytes()
    assert generate_dev_keys(keys_dir) is False
    assert (keys_dir / IVR_KEYS_FILE).read_bytes() == before
    assert generate_dev_keys(keys_dir, force=True) is True
    assert (keys_dir / IVR_KEYS_FILE).read_bytes() != before


def test_one_file_alone_is_refused(keys_dir: Path) -> None:
    (keys_dir / ACQUIRER_KEYS_FILE).unlink()
    with pytest.raises(KeyFileError, match="only ivr.json exists"):
        generate_dev_keys(keys_dir)


def _flip_kcv(document: dict) -> None:  # type: ignore[type-arg]
    entry = document["keys"]["pek"][0]
    entry["kcv"] = "000000" if entry["kcv"] != "000000" else "111111"


def _swap_block(document: dict) -> None:  # type: ignore[type-arg]
    document["keys"]["pek"][0]["block"] = document["keys"]["pan_key"][0]["block"]


def _corrupt_block(document: dict) -> None:  # type: ignore[type-arg]
    block = document["keys"]["pek"][0]["block"]
    document["keys"]["pek"][0]["block"] = block[:-1] + ("0" if block[-1] != "0" else "1")


def _drop_key(document: dict) -> None:  # type: ignore[type-arg]
    del document["keys"]["pan_key"]


def _swap_cvv_and_pek(document: dict) -> None:  # type: ignore[type-arg]
    keys = document["keys"]
    keys["pek"], keys["cvv_key"] = keys["cvv_key"], keys["pek"]


def _keys_not_a_table(document: dict) -> None:  # type: ignore[type-arg]
    document["keys"] = ["pek"]


def _other_kbpk(document: dict) -> None:  # type: ignore[type-arg]
    document["kbpk"] = "11" * 32


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_flip_kcv, "pek key 1 check value mismatch"),
        (_swap_block, "wrong usage"),
        (_corrupt_block, "does not verify"),
        (_drop_key, "has no pan_key key"),
        (_swap_cvv_and_pek, "wrong usage"),
        (_keys_not_a_table, "incomplete or malformed"),
        (_other_kbpk, "KBPK check value mismatch"),
    ],
)
def test_tampering_is_detected(keys_dir: Path, tamper, message: str) -> None:  # type: ignore[no-untyped-def]
    path = keys_dir / IVR_KEYS_FILE
    _edit(path, tamper)
    with pytest.raises(KeyFileError, match=message):
        load_ivr_keys(path)


def _without(path: Path, *roles: str) -> None:
    """Make ``path`` look like a key file from before ``roles`` existed."""
    def drop(document: dict) -> None:  # type: ignore[type-arg]
        for role in roles:
            del document["keys"][role]
    _edit(path, drop)


def test_files_from_before_the_cvv_keys_are_outdated(keys_dir: Path) -> None:
    _without(keys_dir / IVR_KEYS_FILE, "cvv_key")
    _without(keys_dir / ACQUIRER_KEYS_FILE, "cvv_key", "cvk")
    with pytest.raises(KeyFileOutdated, match=r"has no cvv_key key .*keys generate"):
        load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    with pytest.raises(KeyFileOutdated, match=r"has no cvv_key, cvk key .*keys generate") as excinfo:
        load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    assert isinstance(excinfo.value, KeyFileError)


def test_generate_upgrades_outdated_files_and_keeps_their_keys(keys_dir: Path) -> None:
    ivr_before = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    acq_before = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    _without(keys_dir / IVR_KEYS_FILE, "cvv_key")
    _without(keys_dir / ACQUIRER_KEYS_FILE, "cvv_key", "cvk")
    assert generate_dev_keys(keys_dir) is True
    ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    acquirer = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    # The keys it had survive (issued PIN offsets and encrypted PANs stay good); new ones are added.
    assert (ivr.pek, ivr.pan_key) == (ivr_before.pek, ivr_before.pan_key)
    assert (acquirer.pek, acquirer.pvk) == (acq_before.pek, acq_before.pvk)
    assert ivr.cvv_key == acquirer.cvv_key != ivr_before.cvv_key
    assert acquirer.cvk == DEV_CVK
    for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
    # Idempotent again once complete.
    before = (keys_dir / IVR_KEYS_FILE).read_bytes()
    assert generate_dev_keys(keys_dir) is False
    assert (keys_dir / IVR_KEYS_FILE).read_bytes() == before


def test_upgrade_when_only_one_file_is_outdated(keys_dir: Path) -> None:
    acq_before = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    _without(keys_dir / IVR_KEYS_FILE, "cvv_key")
    assert generate_dev_keys(keys_dir) is True
    assert load_ivr_keys(keys_dir / IVR_KEYS_FILE).cvv_key == acq_before.cvv_key
    assert load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE) == acq_before


def test_upgrade_refuses_files_that_disagree_on_a_shared_key(keys_dir: Path, tmp_path: Path) -> None:
    generate_dev_keys(tmp_path / "other")
    (keys_dir / IVR_KEYS_FILE).write_bytes((tmp_path / "other" / IVR_KEYS_FILE).read_bytes())
    (keys_dir / IVR_KEYS_FILE).chmod(0o600)
    _without(keys_dir / IVR_KEYS_FILE, "cvv_key")
    with pytest.raises(KeyFileError, match="different pek keys; regenerate both with --force"):
        generate_dev_keys(keys_dir)
    assert generate_dev_keys(keys_dir, force=True) is True
    assert load_ivr_keys(keys_dir / IVR_KEYS_FILE).pek == load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE).pek


def test_missing_loose_or_foreign_files(keys_dir: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_ivr_keys(keys_dir / "nope.json")
    with pytest.raises(KeyFileError, match="not a ivr key file"):
        load_ivr_keys(keys_dir / ACQUIRER_KEYS_FILE)
    (keys_dir / IVR_KEYS_FILE).chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_ivr_keys(keys_dir / IVR_KEYS_FILE)


def test_reprs_show_no_key_material(keys_dir: Path) -> None:
    ivr = load_ivr_keys(keys_dir / IVR_KEYS_FILE)
    acquirer = load_acquirer_keys(keys_dir / ACQUIRER_KEYS_FILE)
    for keys, secrets_ in (
        (ivr, (ivr.pek, ivr.pan_key, ivr.cvv_key)),
        (acquirer, (acquirer.pek, acquirer.pvk, acquirer.cvv_key, acquirer.cvk)),
    ):
        text = repr(keys) + str(keys)
        for secret in secrets_:
            assert secret.hex() not in text.lower() and repr(secret) not in text
    assert repr(ivr) == f"IvrKeys(kcv={ivr.kcv()})"
    assert isinstance(acquirer, AcquirerKeys) and isinstance(ivr, IvrKeys)


def test_cli_generate_and_show_prints_only_check_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "cli"
    assert main(["--dir", str(directory), "generate"]) == 0
    assert main(["--dir", str(directory), "show"]) == 0
    out = capsys.readouterr().out
    ivr = load_ivr_keys(directory / IVR_KEYS_FILE)
    for role in ("pek", "pan_key", "cvv_key", "cardholder_key", "box_key"):
        assert f"{role}" in out and ivr.kcv()[role] in out
    assert "cvk" in out and "key 1   active, current" in out
    _assert_no_key_material(directory, out)
    assert main(["--dir", str(tmp_path / "empty"), "show"]) == 1


def _assert_no_key_material(directory: Path, out: str) -> None:
    ivr = load_ivr_keys(directory / IVR_KEYS_FILE)
    acquirer = load_acquirer_keys(directory / ACQUIRER_KEYS_FILE)
    for keys in (ivr, acquirer):
        for ring in keys.rings.values():
            for version in ring.versions:
                if version.key is not None:
                    assert version.key.hex().upper() not in out.upper()
    for name in (IVR_KEYS_FILE, ACQUIRER_KEYS_FILE):
        document = json.loads((directory / name).read_text())
        assert document["kbpk"] not in out.upper()
