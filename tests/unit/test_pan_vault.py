from __future__ import annotations

import base64

import pytest

from ivr.crypto.pan_vault import PanVault, PanVaultError, mask_pan

PAN = "6221881000000011"
KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("6221881000000011", "622188******0011"),
        ("6221882000000000017", "622188******0017"),
        ("4321987654321", "432198******4321"),
        ("12345", "******"),
        ("62218810000000ab", "******"),
        ("", "******"),
    ],
)
def test_mask_pan(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


def test_round_trip_and_token_shape() -> None:
    vault = PanVault(KEY)
    token = vault.encrypt(PAN, "pay_123")
    assert PAN not in token
    key_id, _, body = token.partition(".")
    assert key_id == "1"  # the id of the key it was sealed under
    assert base64.urlsafe_b64decode(body)  # URL-safe base64 text
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert vault.decrypt(token, "pay_123") == PAN


def test_nonce_is_random() -> None:
    vault = PanVault(KEY)
    assert vault.encrypt(PAN, "p") != vault.encrypt(PAN, "p")


def test_token_is_bound_to_its_payment() -> None:
    token = PanVault(KEY).encrypt(PAN, "pay_1")
    with pytest.raises(PanVaultError, match="does not open for this payment") as excinfo:
        PanVault(KEY).decrypt(token, "pay_2")
    assert PAN not in str(excinfo.value) and token not in str(excinfo.value)


def test_other_key_fails() -> None:
    token = PanVault(KEY).encrypt(PAN, "p")
    with pytest.raises(PanVaultError, match="does not open"):
        PanVault(bytes(32)).decrypt(token, "p")


def _tampered(token: str) -> str:
    key_id, _, body = token.partition(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    return f"{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize(
    ("make_call", "message"),
    [
        (lambda v, t: v.decrypt(_tampered(t), "p"), "does not open"),
        (lambda v, t: v.decrypt("!!!not base64!!!", "p"), "not valid base64"),
        (lambda v, t: v.decrypt(base64.urlsafe_b64encode(b"short").decode(), "p"), "too short"),
        (lambda v, t: v.decrypt(t, ""), "payment id"),
        (lambda v, t: v.encrypt("1234", "p"), "12 to 19 digits"),
        (lambda v, t: v.encrypt(PAN + "x", "p"), "12 to 19 digits"),
    ],
)
def test_errors(make_call, message: str) -> None:  # type: ignore[no-untyped-def]
    vault = PanVault(KEY)
    token = vault.encrypt(PAN, "p")
    with pytest.raises(PanVaultError, match=message) as excinfo:
        make_call(vault, token)
    assert PAN not in str(excinfo.value)


def test_bad_key_and_repr() -> None:
    with pytest.raises(PanVaultError, match="AES key"):
        PanVault(b"short")
    assert KEY.hex() not in repr(PanVault(KEY)) and "hidden" in repr(PanVault(KEY))
