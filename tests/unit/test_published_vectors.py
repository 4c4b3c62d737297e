"""Known answers from outside our code: published vectors, recomputed here from the standards'
own descriptions with plain DES/AES from ``cryptography``, then compared with what the product
and the simulator compute. Nothing here calls psec or pyiso8583 to get an expected value.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ivr.crypto import pinblock
from ivr.crypto.keys import DEV_CVK, kcv
from ivr.crypto.pinblock import decipher_pinblock_iso_4, pinblock_from_digits
from ivr.hostlink.messages import PurchaseRequest
from simulators.acquirer.simulator import compute_cvv2
from simulators.acquirer.testcards import find_test_card


def _des_ecb(key: bytes, block: bytes, *, encrypt: bool = True) -> bytes:
    """Single DES: TDES with K1 = K2 = K3 is DES (ANSI X9.52's backward compatibility)."""
    cipher = Cipher(TripleDES(key * 3), modes.ECB())
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(block) + op.finalize()


def _aes_ecb(key: bytes, block: bytes, *, encrypt: bool = True) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(block) + op.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- Visa CVV ------------------------------------------------------------------------------------

def visa_cvv(cvk_a: bytes, cvk_b: bytes, pan: str, expiry: str, service_code: str) -> str:
    """The Visa CVV method, step by step as the Visa CVV specification describes it."""
    # 1-2. PAN, expiry and service code, left to right, zero-filled to 32 digits: two blocks.
    data = bytes.fromhex((pan + expiry + service_code).ljust(32, "0"))
    block1, block2 = data[:8], data[8:]
    # 3-4. Encrypt block 1 under key A; XOR with block 2; encrypt under key A.
    step = _des_ecb(cvk_a, _xor(_des_ecb(cvk_a, block1), block2))
    # 5-6. Decrypt under key B, encrypt under key A.
    result = _des_ecb(cvk_a, _des_ecb(cvk_b, step, encrypt=False)).hex().upper()
    # 7-10. Decimal digits left to right, then A-F minus 10; the first three.
    digits = [c for c in result if c.isdigit()] + [str(int(c, 16) - 10) for c in result if not c.isdigit()]
    return "".join(digits[:3])


CVK_A, CVK_B = bytes.fromhex("0123456789ABCDEF"), bytes.fromhex("FEDCBA9876543210")

# Visa's CVV test data for 16-digit PANs under CVK A 0123456789ABCDEF / CVK B FEDCBA9876543210,
# as reproduced in the Chinese bank-card CVV write-up at http://fsou.com/html/text/chl/848/84828_4.html
# ("测试数据": PAN, expiry, service code, CVV). The first is the classic worked example.
VISA_CVV_VECTORS = [
    ("4123456789012345", "8701", "101", "561"),
    ("4999988887777000", "9105", "111", "245"),
    ("4666655554444111", "9206", "120", "664"),
    ("4333322221111222", "9307", "141", "382"),
]


@pytest.mark.parametrize(("pan", "expiry", "service_code", "cvv"), VISA_CVV_VECTORS)
def test_visa_cvv_published_vectors(pan: str, expiry: str, service_code: str, cvv: str) -> None:
    assert visa_cvv(CVK_A, CVK_B, pan, expiry, service_code) == cvv


@pytest.mark.parametrize("name", ["credit_approve", "credit_insufficient"])
def test_simulator_cvv2_is_the_visa_method_with_service_code_000(name: str) -> None:
    # CVV2 is the CVV method with service code 000 (Visa CVV2; keylab.cloud/calculator/cvv2).
    card = find_test_card(name)
    expected = visa_cvv(DEV_CVK[:8], DEV_CVK[8:], card.pan, card.expiry, "000")
    assert card.cvv2 == expected
    assert compute_cvv2(DEV_CVK, card.pan, card.expiry) == expected


# --- AES key check values --------------------------------------------------------------------------

def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-CMAC written from RFC 4493 section 2.3-2.4 (NIST SP 800-38B) with AES-ECB only."""
    def double(block: bytes) -> bytes:
        value = int.from_bytes(block, "big") << 1
        if value >> 128:
            value = (value & ((1 << 128) - 1)) ^ 0x87  # R_b for 128-bit blocks
        return value.to_bytes(16, "big")

    k1 = double(_aes_ecb(key, bytes(16)))
    k2 = double(k1)
    blocks = [message[i:i + 16] for i in range(0, len(message), 16)] or [b""]
    if len(blocks[-1]) == 16:
        blocks[-1] = _xor(blocks[-1], k1)
    else:
        blocks[-1] = _xor(blocks[-1] + b"\x80" + bytes(15 - len(blocks[-1])), k2)
    state = bytes(16)
    for block in blocks:
        state = _aes_ecb(key, _xor(state, block))
    return state


RFC4493_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
AES_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@pytest.mark.parametrize(("message", "mac"), [
    # RFC 4493 section 4, examples 1 and 2 (also NIST SP 800-38B, D.1).
    ("", "bb1d6929e95937287fa37d129b756746"),
    ("6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144f79bdd9dd04a287c"),
])
def test_our_reference_cmac_meets_rfc4493(message: str, mac: str) -> None:
    assert aes_cmac(RFC4493_KEY, bytes.fromhex(message)).hex() == mac


@pytest.mark.parametrize("key", [RFC4493_KEY, bytes(range(16)), AES_KEY], ids=["rfc4493", "counting", "ours"])
def test_aes_kcv_is_cmac_of_a_zero_block(key: bytes) -> None:
    # ANSI X9.24-1:2017 (and TR-31's key block KCVs): the AES KCV is the leftmost bytes of the
    # CMAC of a zero block; we keep 3 bytes. Not the legacy "encrypt zeros" check value.
    assert kcv(key) == aes_cmac(key, bytes(16))[:3].hex().upper()
    assert kcv(key) != _aes_ecb(key, bytes(16))[:3].hex().upper()


def test_tdes_kcv_published_value() -> None:
    # The classic double-length test key's check value, 08D7B4 (e.g. in Thales payShield and
    # EFTlab BP-Tools documentation); recomputed as E(K1) D(K2) E(K1) of a zero block.
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    zero = bytes(8)
    by_hand = _des_ecb(key[:8], _des_ecb(key[8:], _des_ecb(key[:8], zero), encrypt=False))
    assert by_hand.hex().upper().startswith("08D7B4")
    assert kcv(key, "T") == "08D7B4"


# --- ISO 9564-1 format 4 -----------------------------------------------------------------------------


def format_4_by_hand(key: bytes, pin: str, pan: str, pad: bytes) -> bytes:
    """ISO 9564-1:2017 format 4 encipherment, from the standard's description."""
    # Plain-text PIN field: control 4, PIN length, PIN, fill A to 16 nibbles; then 8 random bytes.
    pin_field = bytes.fromhex(("4" + f"{len(pin):X}" + pin).ljust(16, "A")) + pad
    # PAN field: PAN length - 12 in one nibble, the PAN, zero fill to 32 nibbles (PAN of 12+ digits).
    pan_field = bytes.fromhex((f"{len(pan) - 12:X}" + pan).ljust(32, "0"))
    intermediate_a = _aes_ecb(key, pin_field)
    intermediate_b = _xor(intermediate_a, pan_field)
    return _aes_ecb(key, intermediate_b)


@pytest.mark.parametrize(("pin", "pan"), [
    ("1234", "1234567890123456"),
    ("814406", "6221882000000000017"),  # 19 digits: PAN length nibble 7
    ("119922", "6221881000000011"),
    ("123456789012", "622188100000001"),  # longest PIN; a 15-digit PAN
])
def test_format_4_built_by_hand_matches_ours(monkeypatch: pytest.MonkeyPatch, pin: str, pan: str) -> None:
    pad = bytes.fromhex("E63A8727CB39CB3A")
    expected = format_4_by_hand(AES_KEY, pin, pan, pad)
    monkeypatch.setattr(pinblock, "_random_pad", lambda: pad)
    assert pinblock_from_digits(AES_KEY, bytearray(pin.encode()), pan) == expected
    assert decipher_pinblock_iso_4(AES_KEY, expected, pan) == pin


# --- ISO 8583 golden bytes ---------------------------------------------------------------------------

def test_purchase_golden_bytes() -> None:
    """One 0200, assembled field by field from ivr/hostlink/spec.py (pyiso8583's default ASCII
    spec, field 52 as 16 raw bytes), as a literal."""
    pin_block = bytes(range(16))
    request = PurchaseRequest(
        pan="6221881000000011", amount=12345, stan="000042", transmission="0307090501",
        local_time="170501", local_date="0307", terminal_id="VPIVR001",
        merchant_id="898100048160001", pin_block=pin_block, expiry="3012")
    golden = (
        b"0200"
        # Primary bitmap, 16 ASCII hex: fields 2 3 4 7 | 11 12 13 14 | 22 | 41 42 | 49 52
        # = 0111 0010 | 0011 1100 | 0000 0100 | 0000 0000 | 0000 0000 | 1100 0000 | 1001 0000 | 0
        + b"723C040000C09000"
        + b"16" + b"6221881000000011"      # 2   PAN, LLVAR n..19
        + b"000000"                        # 3   processing code: purchase, default accounts
        + b"000000012345"                  # 4   amount, n12, in fen
        + b"0307090501"                    # 7   transmission date and time MMDDhhmmss
        + b"000042"                        # 11  STAN
        + b"170501"                        # 12  local time hhmmss
        + b"0307"                          # 13  local date MMDD
        + b"3012"                          # 14  expiry YYMM
        + b"012"                           # 22  POS entry mode: keyed, PIN capable
        + b"VPIVR001"                      # 41  terminal id, ans8
        + b"898100048160001"               # 42  merchant id, ans15
        + b"156"                           # 49  currency: CNY
        + pin_block                        # 52  PIN block, 16 raw bytes
    )
    assert request.encode() == golden
    assert PurchaseRequest.decode(golden) == request
