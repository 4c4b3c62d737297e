"""Development keys for the IVR and the acquirer simulator, kept as TR-31 key blocks.

Each party has its own JSON key file (mode 0600) holding a local key-block protection key (KBPK)
and its working keys wrapped under it as TR-31 version D blocks. In production the KBPK lives in
an HSM and never touches disk; here it is stored in hex as a stand-in, so these files are for
development only. Every block is stored with its key check value (KCV) and re-checked on load, so
a corrupted or swapped key fails loudly at start-up rather than as a stream of declined PINs.

    IVR (ivr.json):           PEK  P0 AES-128  encrypt only      PAN key  D0 AES-256
    Acquirer (acquirer.json): PEK  P0 AES-128  decrypt only      PVK      V1 TDES double length

The PEK value is the same in both files (the zone PIN key the two parties share), each copy
wrapped under its own party's KBPK.
"""

from __future__ import annotations

import argparse
import json
import os
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

__all__ = [
    "KeyManagementError",
    "KeyFileError",
    "IvrKeys",
    "AcquirerKeys",
    "IVR_KEYS_FILE",
    "ACQUIRER_KEYS_FILE",
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


def kcv(key: bytes, algorithm: str = "A") -> str:
    """Key check value, 3 bytes as hex: AES-CMAC (AES) or TDES-ECB (TDES) of a zero block."""
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

    def kcv(self) -> dict[str, str]:
        return {"pek": kcv(self.pek), "pan_key": kcv(self.pan_key)}

    def __repr__(self) -> str:
        return f"IvrKeys(kcv={self.kcv()})"


@dataclass(frozen=True, repr=False)
class AcquirerKeys:
    """The acquirer simulator's working keys. ``repr`` shows check values only."""

    pek: bytes
    pvk: bytes

    def kcv(self) -> dict[str, str]:
        return {"pek": kcv(self.pek), "pvk": kcv(self.pvk, "T")}

    def __repr__(self) -> str:
        return f"AcquirerKeys(kcv={self.kcv()})"


def load_ivr_keys(path: Path) -> IvrKeys:
    keys = _load(Path(path), "ivr", (_IVR_PEK, _PAN_KEY))
    return IvrKeys(pek=keys["pek"], pan_key=keys["pan_key"])


def load_acquirer_keys(path: Path) -> AcquirerKeys:
    keys = _load(Path(path), "acquirer", (_ACQ_PEK, _PVK))
    return AcquirerKeys(pek=keys["pek"], pvk=keys["pvk"])


def generate_dev_keys(keys_dir: Path, *, force: bool = False) -> bool:
    """Create both parties' key files; True if it wrote them.

    Existing files are kept unless ``force``: regenerating would orphan every PIN offset the
    acquirer issued and every PAN the IVR encrypted. One file without the other is refused,
    because re-creating just one side would break the shared PEK.
    """
    keys_dir = Path(keys_dir)
    ivr_path, acq_path = keys_dir / IVR_KEYS_FILE, keys_dir / ACQUIRER_KEYS_FILE
    present = [p.name for p in (ivr_path, acq_path) if p.exists()]
    if present and not force:
        if len(present) == 2:
            return False
        raise KeyFileError(f"only {present[0]} exists in {keys_dir}; regenerate both with --force")

    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pek = secrets.token_bytes(16)
    pan_key = secrets.token_bytes(32)
    pvk = _new_tdes_key()
    _write_private(ivr_path, _key_file("ivr", {_IVR_PEK: pek, _PAN_KEY: pan_key}))
    _write_private(acq_path, _key_file("acquirer", {_ACQ_PEK: pek, _PVK: pvk}))
    return True


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
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def _load(path: Path, party: str, roles: tuple[_Role, ...]) -> dict[str, bytes]:
    try:
        mode = path.stat().st_mode
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found; run: python -m ivr.crypto.keys generate") from None
    except (OSError, ValueError):
        raise KeyFileError(f"key file {path} is unreadable") from None
    if mode & 0o077:
        raise KeyFileError(f"key file {path} is readable by others; chmod 600 it")
    if not isinstance(document, dict) or document.get("format") != _FILE_FORMAT or document.get("party") != party:
        raise KeyFileError(f"key file {path} is not a {party} key file")
    try:
        kbpk = bytes.fromhex(document["kbpk"])
        if kcv(kbpk) != document["kbpk_kcv"]:
            raise KeyFileError(f"key file {path}: KBPK check value mismatch")
        return {role.name: _unwrap(kbpk, document["keys"][role.name], role, path) for role in roles}
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
