"""Development keys for the IVR and the acquirer simulator, kept as TR-31 key blocks.

Each party has its own JSON key file (mode 0600) holding a local key-block protection key (KBPK)
and its working keys wrapped under it as TR-31 version D blocks. In production the KBPK lives in
an HSM and never touches disk; here it is stored in hex as a stand-in, so these files are for
development only. Every block is stored with its key check value (KCV) and re-checked on load, so
a corrupted or swapped key fails loudly at start-up rather than as a stream of declined PINs.

    IVR (ivr.json):           PEK      P0 AES-128  encrypt only     PAN key  D0 AES-256
                              CVV key  D0 AES-128  encrypt only     cardholder key  M7 HMAC-256
    Acquirer (acquirer.json): PEK      P0 AES-128  decrypt only     PVK      V1 TDES double length
                              CVV key  D0 AES-128  decrypt only     CVK      C0 TDES double length

The PEK and the CVV key have the same value in both files (keys the two parties share), each copy
wrapped under its own party's KBPK. They are separate keys on purpose (key separation): the PEK
only ever carries ISO 9564 PIN blocks, the CVV key only ever the CVV2 the cardholder keyed
(AES-GCM, :mod:`ivr.crypto.cvv2`). TR-31 has no usage code for "CVV2 in transit"; it is data, so
D0 (symmetric data encryption), with the IVR's copy bound to encrypt and the acquirer's to decrypt.

The cardholder key (IVR only) keys the HMAC-SHA256 digests of returning cardholders (card number
and mobile seen together in an approved payment). It is not the PAN key: a key that encrypts card
numbers is never also a MAC key, so neither use can weaken or reveal the other. TR-31 M7 (HMAC),
algorithm H, mode C (generate and verify); its check value is HMAC-SHA256 over 16 zero bytes.

The CVK is the issuer's card verification key (Visa CVV / Mastercard CVC method). Unlike every
other key here it is not random: it is the published development value :data:`DEV_CVK`, because
the CVV2 "printed" on the documented test cards (``simulators/acquirer/test_cards.json``) is the CVV
computed under it, and a random CVK would turn those documented values into wrong ones.

Key files written before a key role existed are refused with :class:`KeyFileOutdated`;
:func:`generate_dev_keys` upgrades such a pair in place, keeping the keys they already hold.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from psec import des as _des
from psec import tr31 as _tr31

from ivr.files import is_private, write_private

__all__ = [
    "KeyManagementError",
    "KeyFileError",
    "KeyFileOutdated",
    "IvrKeys",
    "AcquirerKeys",
    "IVR_KEYS_FILE",
    "ACQUIRER_KEYS_FILE",
    "DEV_CVK",
    "kcv",
    "load_ivr_keys",
    "load_acquirer_keys",
    "generate_dev_keys",
    "main",
]

IVR_KEYS_FILE = "ivr.json"
ACQUIRER_KEYS_FILE = "acquirer.json"
_FILE_FORMAT = 1


class KeyManagementError(Exception):
    """Base error of key management. Messages name files and key roles, never key material."""


class KeyFileError(KeyManagementError):
    """A key file is missing, unreadable, tampered with, or holds the wrong kind of key."""


class KeyFileOutdated(KeyFileError):
    """A key file lacks a key role this version needs: it predates it. Regenerate or upgrade."""


@dataclass(frozen=True)
class _Role:
    """What a stored key must be: TR-31 header fields plus its length in bytes."""

    name: str
    usage: str
    algorithm: str
    mode: str
    length: int

    def header(self) -> _tr31.Header:
        return _tr31.Header(
            version_id="D",
            key_usage=self.usage,
            algorithm=self.algorithm,
            mode_of_use=self.mode,
            version_num="00",
            exportability="N",
        )


# The IVR only ever encrypts PINs and the acquirer only decrypts them; TR-31 binds that to the key.
_IVR_PEK = _Role("pek", usage="P0", algorithm="A", mode="E", length=16)
_PAN_KEY = _Role("pan_key", usage="D0", algorithm="A", mode="B", length=32)
_ACQ_PEK = _Role("pek", usage="P0", algorithm="A", mode="D", length=16)
# The acquirer both issues offsets and verifies PINs with the PVK: mode C, generate and verify.
_PVK = _Role("pvk", usage="V1", algorithm="T", mode="C", length=16)
# CVV2 in transit, IVR -> acquirer, under its own key: D0 data encryption, one direction each.
_IVR_CVV_KEY = _Role("cvv_key", usage="D0", algorithm="A", mode="E", length=16)
_ACQ_CVV_KEY = _Role("cvv_key", usage="D0", algorithm="A", mode="D", length=16)
# The simulated issuer only recomputes CVVs to compare them: mode V, verify only.
_CVK = _Role("cvk", usage="C0", algorithm="T", mode="V", length=16)

# Returning-cardholder digests (HMAC-SHA256): computed and compared, never used to encrypt.
_CARDHOLDER_KEY = _Role("cardholder_key", usage="M7", algorithm="H", mode="C", length=32)

_IVR_ROLES = (_IVR_PEK, _PAN_KEY, _IVR_CVV_KEY, _CARDHOLDER_KEY)
_ACQ_ROLES = (_ACQ_PEK, _PVK, _ACQ_CVV_KEY, _CVK)
# Keys both files hold, with the same value.
_SHARED = ("pek", "cvv_key")

# The development CVK (double-length TDES, odd parity, halves differ). Published on purpose: the
# documented test cards' CVV2s are computed under it (see the module docstring). Never a real key.
DEV_CVK = bytes.fromhex("3D8A5E2C9B4F7A16E0C2975B1F6D38A4")


def kcv(key: bytes, algorithm: str = "A") -> str:
    """Key check value, 3 bytes as hex: AES-CMAC (AES) or TDES-ECB (TDES) of a zero block, or
    HMAC-SHA256 (HMAC) of 16 zero bytes."""
    if algorithm == "H":
        return hmac.new(key, bytes(16), hashlib.sha256).digest()[:3].hex().upper()
    if algorithm == "A":
        mac = cmac.CMAC(algorithms.AES(key))
        mac.update(bytes(16))
        return mac.finalize()[:3].hex().upper()
    if algorithm == "T":
        # K1K2 spelled as K1K2K1: the same cipher, without cryptography's two-key warning.
        full_key = key + key[:8] if len(key) == 16 else key
        encryptor = Cipher(TripleDES(full_key), modes.ECB()).encryptor()
        return (encryptor.update(bytes(8)) + encryptor.finalize())[:3].hex().upper()
    raise KeyManagementError(f"no KCV method for algorithm {algorithm!r}")


@dataclass(frozen=True, repr=False)
class IvrKeys:
    """The IVR's working keys. ``repr`` shows check values only."""

    pek: bytes
    pan_key: bytes
    cvv_key: bytes
    cardholder_key: bytes

    def kcv(self) -> dict[str, str]:
        return {"pek": kcv(self.pek), "pan_key": kcv(self.pan_key), "cvv_key": kcv(self.cvv_key),
                "cardholder_key": kcv(self.cardholder_key, "H")}

    def __repr__(self) -> str:
        return f"IvrKeys(kcv={self.kcv()})"


@dataclass(frozen=True, repr=False)
class AcquirerKeys:
    """The acquirer simulator's working keys. ``repr`` shows check values only."""

    pek: bytes
    pvk: bytes
    cvv_key: bytes
    cvk: bytes

    def kcv(self) -> dict[str, str]:
        return {
            "pek": kcv(self.pek),
            "pvk": kcv(self.pvk, "T"),
            "cvv_key": kcv(self.cvv_key),
            "cvk": kcv(self.cvk, "T"),
        }

    def __repr__(self) -> str:
        return f"AcquirerKeys(kcv={self.kcv()})"


def load_ivr_keys(path: Path) -> IvrKeys:
    keys = _load(Path(path), "ivr", _IVR_ROLES)
    return IvrKeys(pek=keys["pek"], pan_key=keys["pan_key"], cvv_key=keys["cvv_key"],
                   cardholder_key=keys["cardholder_key"])


def load_acquirer_keys(path: Path) -> AcquirerKeys:
    keys = _load(Path(path), "acquirer", _ACQ_ROLES)
    return AcquirerKeys(pek=keys["pek"], pvk=keys["pvk"], cvv_key=keys["cvv_key"], cvk=keys["cvk"])


def generate_dev_keys(keys_dir: Path, *, force: bool = False) -> bool:
    """Create both parties' key files; True if it wrote them.

    Existing files are kept unless ``force``: regenerating would orphan every PIN offset the
    acquirer issued and every PAN the IVR encrypted. One file without the other is refused,
    because re-creating just one side would break the shared PEK. A pair written before a key
    role existed (:class:`KeyFileOutdated`) is upgraded: both files are rewritten with the keys
    they hold plus new ones for the missing roles, so offsets and encrypted PANs stay valid.
    """
    keys_dir = Path(keys_dir)
    ivr_path, acq_path = keys_dir / IVR_KEYS_FILE, keys_dir / ACQUIRER_KEYS_FILE
    present = [p.name for p in (ivr_path, acq_path) if p.exists()]
    if present and not force:
        if len(present) != 2:
            raise KeyFileError(f"only {present[0]} exists in {keys_dir}; regenerate both with --force")
        return _upgrade(ivr_path, acq_path)

    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_pair(ivr_path, acq_path, {})
    return True


def _upgrade(ivr_path: Path, acq_path: Path) -> bool:
    """Add the key roles an older pair of files lacks; False if nothing was missing."""
    ivr_held = _load(ivr_path, "ivr", _IVR_ROLES, missing_ok=True)
    acq_held = _load(acq_path, "acquirer", _ACQ_ROLES, missing_ok=True)
    if len(ivr_held) == len(_IVR_ROLES) and len(acq_held) == len(_ACQ_ROLES):
        return False
    for name in _SHARED:
        if name in ivr_held and name in acq_held and ivr_held[name] != acq_held[name]:
            raise KeyFileError(f"{ivr_path.name} and {acq_path.name} hold different {name} keys; "
                               "regenerate both with --force")
    _write_pair(ivr_path, acq_path, {**acq_held, **ivr_held})
    return True


def _write_pair(ivr_path: Path, acq_path: Path, keep: dict[str, bytes]) -> None:
    """Write both files from the keys in ``keep``, with new keys for every role not in it."""
    fresh = {
        "pek": lambda: secrets.token_bytes(16),
        "pan_key": lambda: secrets.token_bytes(32),
        "cvv_key": lambda: secrets.token_bytes(16),
        "cardholder_key": lambda: secrets.token_bytes(32),
        "pvk": _new_tdes_key,
        "cvk": lambda: DEV_CVK,
    }
    values = {name: keep[name] if name in keep else make() for name, make in fresh.items()}
    _write_private(ivr_path, _key_file("ivr", {role: values[role.name] for role in _IVR_ROLES}))
    _write_private(acq_path, _key_file("acquirer", {role: values[role.name] for role in _ACQ_ROLES}))


def _new_tdes_key() -> bytes:
    while True:
        key = _des.adjust_key_parity(secrets.token_bytes(16))
        # Equal halves would make "double length" TDES plain single DES.
        if key[:8] != key[8:]:
            return key


def _key_file(party: str, keys: dict[_Role, bytes]) -> dict[str, object]:
    kbpk = secrets.token_bytes(32)
    return {
        "format": _FILE_FORMAT,
        "party": party,
        "note": "Development keys: the KBPK would live in an HSM in production.",
        "kbpk": kbpk.hex().upper(),
        "kbpk_kcv": kcv(kbpk),
        "keys": {
            role.name: {
                "block": _tr31.wrap(kbpk, role.header(), key),
                "kcv": kcv(key, role.algorithm),
            }
            for role, key in keys.items()
        },
    }


def _write_private(path: Path, document: dict[str, object]) -> None:
    write_private(path, json.dumps(document, indent=2) + "\n")


def _load(path: Path, party: str, roles: tuple[_Role, ...], *, missing_ok: bool = False) -> dict[str, bytes]:
    """The keys of ``roles``, each verified. A role absent from the file raises KeyFileOutdated,
    or with ``missing_ok`` is left out of the result (a tampered or malformed one still raises)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        private = is_private(path)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found; run: python -m ivr.crypto.keys generate") from None
    except (OSError, ValueError):
        raise KeyFileError(f"key file {path} is unreadable") from None
    if not private:
        raise KeyFileError(f"key file {path} is readable by others; chmod 600 it")
    if not isinstance(document, dict) or document.get("format") != _FILE_FORMAT or document.get("party") != party:
        raise KeyFileError(f"key file {path} is not a {party} key file")
    try:
        kbpk = bytes.fromhex(document["kbpk"])
        if kcv(kbpk) != document["kbpk_kcv"]:
            raise KeyFileError(f"key file {path}: KBPK check value mismatch")
        stored = document["keys"]
        if not isinstance(stored, dict):
            raise TypeError
        absent = [role.name for role in roles if role.name not in stored]
        if absent and not missing_ok:
            raise KeyFileOutdated(
                f"key file {path} has no {', '.join(absent)} key (written by an older version); "
                "regenerate with: python -m ivr.crypto.keys generate --force"
            )
        return {role.name: _unwrap(kbpk, stored[role.name], role, path) for role in roles if role.name in stored}
    except KeyFileError:
        raise
    except (KeyError, TypeError, ValueError):
        raise KeyFileError(f"key file {path} is incomplete or malformed") from None


def _unwrap(kbpk: bytes, entry: dict[str, str], role: _Role, path: Path) -> bytes:
    try:
        header, key = _tr31.unwrap(kbpk, entry["block"])
    except (_tr31.KeyBlockError, _tr31.HeaderError, ValueError):
        raise KeyFileError(f"key file {path}: {role.name} key block does not verify") from None
    if (header.key_usage, header.algorithm, header.mode_of_use) != (role.usage, role.algorithm, role.mode):
        raise KeyFileError(f"key file {path}: {role.name} key block has the wrong usage")
    if len(key) != role.length:
        raise KeyFileError(f"key file {path}: {role.name} key has the wrong length")
    if kcv(key, role.algorithm) != entry["kcv"]:
        raise KeyFileError(f"key file {path}: {role.name} check value mismatch")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ivr.crypto.keys generate|show [--dir DIR] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m ivr.crypto.keys", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("generate", "show"))
    parser.add_argument("--dir", type=Path, default=None, help="key directory (default: settings.keys_dir)")
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    args = parser.parse_args(argv)
    if args.dir is None:
        from ivr.config import load_settings

        args.dir = load_settings().keys_dir

    try:
        if args.command == "generate":
            generated = generate_dev_keys(args.dir, force=args.force)
            print(f"{'generated' if generated else 'kept existing'} keys in {args.dir}")
        ivr_keys = load_ivr_keys(args.dir / IVR_KEYS_FILE)
        acquirer_keys = load_acquirer_keys(args.dir / ACQUIRER_KEYS_FILE)
    except KeyManagementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, summary in ((IVR_KEYS_FILE, ivr_keys.kcv()), (ACQUIRER_KEYS_FILE, acquirer_keys.kcv())):
        print(f"{name:<14}" + "  ".join(f"{role} KCV {value}" for role, value in summary.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
