"""VOICEPAY_SPEC: the field layout of our host link, pyiso8583's ASCII spec with two changes."""

from __future__ import annotations

import copy

from iso8583.specs import default_ascii

__all__ = ["VOICEPAY_SPEC"]

VOICEPAY_SPEC: dict[str, dict[str, object]] = copy.deepcopy(default_ascii)

# The stock field 52 is 16 ASCII hex characters: an 8-byte block, the size of a DES-era format 0
# PIN block. We send ISO 9564 format 4 blocks, which are AES-sized (16 bytes), so field 52 carries
# them as 16 raw bytes. Binary rather than 32 hex characters keeps the field's length equal to the
# block's and avoids a second, hex, copy of the PIN block anywhere in the message handling.
VOICEPAY_SPEC["52"] = {
    "data_enc": "b",
    "len_enc": "ascii",
    "len_type": 0,
    "max_len": 16,
    "desc": "PIN Data (ISO 9564 format 4, AES)",
}

# Field 48, "additional data - private use", carries the CVV2 of a card-not-present (credit)
# purchase, sealed under the CVV key by ivr.crypto.cvv2: 31 raw bytes (nonce, ciphertext, GCM
# tag). ISO 8583 leaves its content to the parties; binary, as for field 52, so no hex copy of it
# exists. LLL as the standard has it; 64 bytes leaves room for a later block version.
VOICEPAY_SPEC["48"] = {
    "data_enc": "b",
    "len_enc": "ascii",
    "len_type": 3,
    "max_len": 64,
    "desc": "Additional Data - Private: CVV2 block (AES-GCM under the CVV key)",
}
