"""Development keys for the IVR and the acquirer simulator, kept as TR-31 key blocks.

Each party has its own JSON key file (mode 0600) holding a local key-block protection key (KBPK,
the master key) and every working key wrapped under it as a TR-31 version D block. In production
the KBPK lives in an HSM and never touches disk; here it is stored in hex as a stand-in, so these
files are for development only. Every block is stored with its key check value (KCV) and
re-checked on load, so a corrupted or swapped key fails loudly at start-up rather than as a
stream of declined PINs.

Each role keeps its versions (:mod:`ivr.crypto.keyring`): a key id, which is also the block's
TR-31 key version number (so an id cannot be moved onto another block), a state (``active`` or
``retired``) and the KCV. :func:`rotate` adds a version, which becomes current; :func:`retire`
destroys an old one. A retired version keeps its id and KCV, never its block.

    IVR (ivr.json):           PEK      P0 AES-128  encrypt only     PAN key  D0 AES-256
                              CVV key  D0 AES-128  encrypt only     cardholder key  M7 HMAC-256
                              box key  D0 AES-256  (merchant secrets at rest, ivr.crypto.secret_box)
    Acquirer (acquirer.json): PEK      P0 AES-128  decrypt only     PVK      V1 TDES double length
                              CVV key  D0 AES-128  decrypt only     CVK      C0 TDES double length

The PEK and the CVV key have the same value in both files (keys the two parties share), each copy
wrapped under its own party's KBPK. They are separate keys on purpose (key separation): the PEK
only ever carries ISO 9564 PIN blocks, the CVV key only ever the CVV2 the cardholder keyed
(AES-GCM, :mod:`ivr.crypto.cvv2`). TR-31 has no usage code for "CVV2 in transit"; it is data, so
D0 (symmetric data encryption), with the IVR's copy bound to encrypt and the acquirer's to decrypt.

The cardholder key (IVR only) keys every HMAC-SHA256 digest the IVR keeps instead of a card, ID
or mobile number (returning cardholders, risk lists and velocity, the ID step-up, the cardholder's
language; :mod:`ivr.crypto.keyed_digest`). It is not the PAN key: a key that encrypts card
numbers is never also a MAC key, so neither use can weaken or reveal the other. TR-31 M7 (HMAC),
algorithm H, mode C (generate and verify); its check value is HMAC-SHA256 over 16 zero bytes.

The CVK is the issuer's card verification key (Visa CVV / Mastercard CVC method). Unlike every
other key here it is not random: it is the published development value :data:`DEV_CVK`, because
the CVV2 "printed" on the documented test cards (``simulators/acquirer/test_cards.json``) is the CVV
computed under it, and a random CVK would turn those documented values into wrong ones.

The box key seals merchants' API keys and webhook secrets in Redis. It used to be a hex file of
its own (``merchant_secrets.key``); :func:`generate_dev_keys` takes that key in as the box key's
version 1 and removes the file, so secrets sealed under it still open.

Rotation: the PEK and the CVV key are shared, so a new version is written into both files, the
acquirer's first (it can read the new id before the IVR sends under it) and retired from the
IVR's first. The PVK and the CVK do not rotate here: the card book's PIN offsets and the test
cards' CVV2s are made under them (re-issuing cards is the issuer's business, not a key change).

Key files written before a key role or versions existed are refused with
:class:`KeyFileOutdated`; :func:`generate_dev_keys` upgrades such a pair in place, keeping the
keys they already hold (each becomes version 1).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from psec import des as _des
from psec import tr31 as _tr31

from ivr.crypto.keyring import ACTIVE, RETIRED, KeyRing, KeyVersion
from ivr.files import is_private, write_private

__all__ = [
    "KeyManagementError",
    "KeyFileError",
    "KeyFileOutdated",
    "IvrKeys",
    "AcquirerKeys",
    "IVR_KEYS_FILE",
    "ACQUIRER_KEYS_FILE",
    "LEGACY_BOX_KEY_FILE",
    "ROTATABLE",
    "DEV_CVK",
    "kcv",
    "load_ivr_keys",
    "load_acquirer_keys",
    "generate_dev_keys",
    "rotate",
    "retire",
    "describe",
    "main",
]

IVR_KEYS_FILE = "ivr.json"
ACQUIRER_KEYS_FILE = "acquirer.json"
LEGACY_BOX_KEY_FILE = "merchant_secrets.key"
_FILE_FORMAT = 2  # 1: one key per role, no ids
_MAX_KEY_ID = 99  # the TR-31 key version number is two characters


class KeyManagementError(Exception):
    """Base error of key management. Messages name files, roles and key ids, never key material."""


class KeyFileError(KeyManagementError):
    """A key file is missing, unreadable, tampered with, or holds the wrong kind of key."""


class KeyFileOutdated(KeyFileError):
    """A key file lacks a key role this version needs: it predates it. Regenerate or upgrade."""


@dataclass(frozen=True)
class _Role:
    """What a stored key must be: TR-31 header fields, its length in bytes, how to make one."""

    name: str
    usage: str
    algorithm: str
    mode: str
    length: int
    make: Callable[[], bytes] | None = None  # None: random bytes of ``length``

    def header(self, key_id: int) -> _tr31.Header:
        return _tr31.Header(
            version_id="D",
            key_usage=self.usage,
            algorithm=self.algorithm,
            mode_of_use=self.mode,
            version_num=f"{key_id:02d}",
            exportability="N",
        )

    def new_key(self) -> bytes:
        return self.make() if self.make is not None else secrets.token_bytes(self.length)


def _new_tdes_key() -> bytes:
    while True:
        key = _des.adjust_key_parity(secrets.token_bytes(16))
        # Equal halves would make "double length" TDES plain single DES.
        if key[:8] != key[8:]:
            return key


# The development CVK (double-length TDES, odd parity, halves differ). Published on purpose: the
# documented test cards' CVV2s are computed under it (see the module docstring). Never a real key.
DEV_CVK = bytes.fromhex("3D8A5E2C9B4F7A16E0C2975B1F6D38A4")

# The IVR only ever encrypts PINs and the acquirer only decrypts them; TR-31 binds that to the key.
_IVR_PEK = _Role("pek", usage="P0", algorithm="A", mode="E", length=16)
_PAN_KEY = _Role("pan_key", usage="D0", algorithm="A", mode="B", length=32)
_ACQ_PEK = _Role("pek", usage="P0", algorithm="A", mode="D", length=16)
# The acquirer both issues offsets and verifies PINs with the PVK: mode C, generate and verify.
_PVK = _Role("pvk", usage="V1", algorithm="T", mode="C", length=16, make=_new_tdes_key)
# CVV2 in transit, IVR -> acquirer, under its own key: D0 data encryption, one direction each.
_IVR_CVV_KEY = _Role("cvv_key", usage="D0", algorithm="A", mode="E", length=16)
_ACQ_CVV_KEY = _Role("cvv_key", usage="D0", algorithm="A", mode="D", length=16)
# The simulated issuer only recomputes CVVs to compare them: mode V, verify only.
_CVK = _Role("cvk", usage="C0", algorithm="T", mode="V", length=16, make=lambda: DEV_CVK)
# Returning-cardholder, risk-subject and ID step-up digests (HMAC-SHA256): never used to encrypt.
_CARDHOLDER_KEY = _Role("cardholder_key", usage="M7", algorithm="H", mode="C", length=32)
# Merchant secrets at rest (AES-GCM): sealed and opened by the IVR alone.
_BOX_KEY = _Role("box_key", usage="D0", algorithm="A", mode="B", length=32)

_IVR_ROLES = (_IVR_PEK, _PAN_KEY, _IVR_CVV_KEY, _CARDHOLDER_KEY, _BOX_KEY)
_ACQ_ROLES = (_ACQ_PEK, _PVK, _ACQ_CVV_KEY, _CVK)
_PARTIES = {"ivr": (IVR_KEYS_FILE, _IVR_ROLES), "acquirer": (ACQUIRER_KEYS_FILE, _ACQ_ROLES)}
# Keys both files hold, with the same versions and values.
_SHARED = ("pek", "cvv_key")
ROTATABLE = ("pek", "cvv_key", "pan_key", "cardholder_key", "box_key")


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
class _PartyKeys:
    """One party's key rings by role. ``repr`` shows ids and check values only; the plain
    attributes (``pek``...) are each role's current key."""

    rings: dict[str, KeyRing]

    def ring(self, role: str) -> KeyRing:
        return self.rings[role]

    def kcv(self) -> dict[str, str]:
        """The current version's check value per role."""
        return {role: ring.current.kcv for role, ring in self.rings.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kcv={self.kcv()})"

    def _current(self, role: str) -> bytes:
        key = self.rings[role].current.key
        assert key is not None
        return key


class IvrKeys(_PartyKeys):
    """The IVR's working keys."""

    pek = property(lambda self: self._current("pek"))
    pan_key = property(lambda self: self._current("pan_key"))
    cvv_key = property(lambda self: self._current("cvv_key"))
    cardholder_key = property(lambda self: self._current("cardholder_key"))
    box_key = property(lambda self: self._current("box_key"))


class AcquirerKeys(_PartyKeys):
    """The acquirer simulator's working keys."""

    pek = property(lambda self: self._current("pek"))
    pvk = property(lambda self: self._current("pvk"))
    cvv_key = property(lambda self: self._current("cvv_key"))
    cvk = property(lambda self: self._current("cvk"))


def load_ivr_keys(path: Path) -> IvrKeys:
    return IvrKeys(_load(Path(path), "ivr")[1])


def load_acquirer_keys(path: Path) -> AcquirerKeys:
    return AcquirerKeys(_load(Path(path), "acquirer")[1])


def generate_dev_keys(keys_dir: Path, *, force: bool = False) -> bool:
    """Create both parties' key files; True if it wrote them.

    Existing files are kept unless ``force``: regenerating would orphan every PIN offset the
    acquirer issued and every PAN the IVR encrypted. One file without the other is refused,
    because re-creating just one side would break the shared PEK. A pair written before a key
    role or key versions existed (:class:`KeyFileOutdated`) is upgraded: both files are
    rewritten with the keys they hold plus new ones for the missing roles, so offsets, encrypted
    PANs and sealed merchant secrets stay valid. A box key still in its old file is taken in.
    """
    keys_dir = Path(keys_dir)
    ivr_path, acq_path = keys_dir / IVR_KEYS_FILE, keys_dir / ACQUIRER_KEYS_FILE
    present = [p.name for p in (ivr_path, acq_path) if p.exists()]
    if present and not force:
        if len(present) != 2:
            raise KeyFileError(f"only {present[0]} exists in {keys_dir}; regenerate both with --force")
        return _upgrade(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_pair(keys_dir, {}, {})
    return True


def rotate(keys_dir: Path, role: str) -> KeyVersion:
    """A new version of ``role``, now current; the versions before it stay readable."""
    if role not in ROTATABLE:
        raise KeyManagementError(f"{role} does not rotate here (one of {', '.join(ROTATABLE)}); "
                                 "the card book's offsets and CVV2s are made under it")
    held = _held(Path(keys_dir))
    new_id = held["ivr"][1][role].versions[-1].id + 1  # every rotatable role is the IVR's
    if new_id > _MAX_KEY_ID:
        raise KeyManagementError(f"{role} has used all {_MAX_KEY_ID} key ids")
    role_def = next(r for r in _IVR_ROLES if r.name == role)
    key = role_def.new_key()
    version = KeyVersion(new_id, ACTIVE, kcv(key, role_def.algorithm), key)
    for party in ("acquirer", "ivr"):  # the acquirer first: it knows the id before it is used
        rings_of = held[party][1]
        if role in rings_of:
            rings_of[role] = KeyRing(role, (*rings_of[role].versions, version))
            _write(Path(keys_dir), party, held[party][0], rings_of)
    return version


def retire(keys_dir: Path, role: str, key_id: int) -> KeyVersion:
    """Destroy version ``key_id`` of ``role``: what was made under it no longer opens. The
    current version cannot be retired (rotate first)."""
    held = _held(Path(keys_dir))
    if role not in held["ivr"][1] and role not in held["acquirer"][1]:
        raise KeyManagementError(f"no key role {role}")
    retired: KeyVersion | None = None
    for party in ("ivr", "acquirer"):  # the IVR first: it stops using the id before it goes
        rings_of = held[party][1]
        if role not in rings_of:
            continue
        ring = rings_of[role]
        found = next((v for v in ring.versions if v.id == key_id), None)
        if found is None:
            raise KeyManagementError(f"{role} has no key {key_id}")
        if found.state == RETIRED:
            raise KeyManagementError(f"{role} key {key_id} is already retired")
        if found.id == ring.current.id:
            raise KeyManagementError(f"{role} key {key_id} is the current key; rotate {role} first")
        retired = KeyVersion(key_id, RETIRED, found.kcv, None)
        rings_of[role] = KeyRing(role, tuple(retired if v.id == key_id else v for v in ring.versions))
        _write(Path(keys_dir), party, held[party][0], rings_of)
    assert retired is not None
    return retired


def describe(keys_dir: Path) -> list[tuple[str, str, int, str, str]]:
    """(file, role, key id, state, KCV) of every version in both files; the current version's
    state reads ``active, current``. Never key material."""
    rows = []
    for party, (file_name, _) in _PARTIES.items():
        for role, ring in _load(Path(keys_dir) / file_name, party)[1].items():
            for version in ring.versions:
                state = f"{version.state}, current" if version is ring.current else version.state
                rows.append((file_name, role, version.id, state, version.kcv))
    return rows


def _held(keys_dir: Path) -> dict[str, tuple[bytes, dict[str, KeyRing]]]:
    """Both files, fully verified and with the same shared keys: what rotate and retire change."""
    held = {party: _load(keys_dir / file_name, party) for party, (file_name, _) in _PARTIES.items()}
    _check_shared(keys_dir, held["ivr"][1], held["acquirer"][1])
    return held


def _check_shared(keys_dir: Path, ivr: dict[str, KeyRing], acquirer: dict[str, KeyRing]) -> None:
    for name in _SHARED:
        # The same versions and values; only the blocks' modes of use differ.
        if name in ivr and name in acquirer and ivr[name] != acquirer[name]:
            raise KeyFileError(f"{IVR_KEYS_FILE} and {ACQUIRER_KEYS_FILE} in {keys_dir} hold "
                               f"different {name} keys; regenerate both with --force")


def _upgrade(keys_dir: Path) -> bool:
    """Add the key roles an older pair of files lacks, and take in the old box key file; False
    if nothing was missing."""
    ivr_format, ivr_held = _read(keys_dir / IVR_KEYS_FILE, "ivr", upgrading=True)
    acq_format, acq_held = _read(keys_dir / ACQUIRER_KEYS_FILE, "acquirer", upgrading=True)
    complete = len(ivr_held[1]) == len(_IVR_ROLES) and len(acq_held[1]) == len(_ACQ_ROLES)
    if complete and ivr_format == acq_format == _FILE_FORMAT:
        return False
    _check_shared(keys_dir, ivr_held[1], acq_held[1])
    _write_pair(keys_dir, {**acq_held[1], **ivr_held[1]}, {"ivr": ivr_held[0], "acquirer": acq_held[0]})
    return True


def _write_pair(keys_dir: Path, keep: dict[str, KeyRing], kbpks: dict[str, bytes]) -> None:
    """Write both files from the rings in ``keep``, with a new key (id 1) for every role not in
    it; a missing box key from its old file if there is one, which is then removed."""
    legacy_box = keys_dir / LEGACY_BOX_KEY_FILE
    rings = dict(keep)
    taken_in = "box_key" not in rings and legacy_box.exists()
    if taken_in:
        rings["box_key"] = _ring("box_key", _read_legacy_box_key(legacy_box))
    for role in (*_IVR_ROLES, *_ACQ_ROLES):
        if role.name not in rings:
            rings[role.name] = _ring(role.name, role.new_key(), role.algorithm)
    # The acquirer first, as for a rotation: it must know a shared key before the IVR uses it.
    for party in ("acquirer", "ivr"):
        roles = _PARTIES[party][1]
        kbpk = kbpks.get(party) or secrets.token_bytes(32)
        _write(keys_dir, party, kbpk, {role.name: rings[role.name] for role in roles})
    if taken_in:
        legacy_box.unlink()


def _ring(role: str, key: bytes, algorithm: str = "A") -> KeyRing:
    return KeyRing(role, (KeyVersion(1, ACTIVE, kcv(key, algorithm), key),))


def _read_legacy_box_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise KeyFileError(f"old box key file {path} is unreadable") from None
    if len(key) != _BOX_KEY.length:
        raise KeyFileError(f"old box key file {path} holds no 32-byte key")
    return key


def _write(keys_dir: Path, party: str, kbpk: bytes, rings: dict[str, KeyRing]) -> None:
    file_name, roles = _PARTIES[party]
    document = {
        "format": _FILE_FORMAT,
        "party": party,
        "note": "Development keys: the KBPK would live in an HSM in production.",
        "kbpk": kbpk.hex().upper(),
        "kbpk_kcv": kcv(kbpk),
        "keys": {role.name: [_entry(kbpk, role, v) for v in rings[role.name].versions] for role in roles},
    }
    write_private(keys_dir / file_name, json.dumps(document, indent=2) + "\n")


def _entry(kbpk: bytes, role: _Role, version: KeyVersion) -> dict[str, object]:
    entry: dict[str, object] = {"id": version.id, "state": version.state, "kcv": version.kcv}
    if version.key is not None:
        entry["block"] = _tr31.wrap(kbpk, role.header(version.id), version.key)
    return entry


def _load(path: Path, party: str) -> tuple[bytes, dict[str, KeyRing]]:
    """The KBPK and every role's ring, each version verified; an older file is KeyFileOutdated."""
    return _read(path, party, upgrading=False)[1]


def _read(path: Path, party: str, *, upgrading: bool) -> tuple[int, tuple[bytes, dict[str, KeyRing]]]:
    """The file's format, its KBPK and the rings it holds. ``upgrading`` reads an older file
    (format 1, or roles missing) rather than refusing it; a tampered one still raises."""
    roles = _PARTIES[party][1]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        private = is_private(path)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found; run: python -m ivr.crypto.keys generate") from None
    except (OSError, ValueError):
        raise KeyFileError(f"key file {path} is unreadable") from None
    if not private:
        raise KeyFileError(f"key file {path} is readable by others; chmod 600 it")
    if (not isinstance(document, dict) or document.get("format") not in (1, _FILE_FORMAT)
            or document.get("party") != party):
        raise KeyFileError(f"key file {path} is not a {party} key file")
    file_format = document["format"]
    outdated = "(written by an older version); upgrade with: python -m ivr.crypto.keys generate"
    if file_format != _FILE_FORMAT and not upgrading:
        raise KeyFileOutdated(f"key file {path} has no key ids {outdated}")
    try:
        kbpk = bytes.fromhex(document["kbpk"])
        if kcv(kbpk) != document["kbpk_kcv"]:
            raise KeyFileError(f"key file {path}: KBPK check value mismatch")
        stored = document["keys"]
        if not isinstance(stored, dict):
            raise TypeError
        absent = [role.name for role in roles if role.name not in stored]
        if absent and not upgrading:
            raise KeyFileOutdated(f"key file {path} has no {', '.join(absent)} key {outdated}")
        rings = {}
        for role in roles:
            if role.name in stored:
                entries = stored[role.name]
                if file_format == 1:  # one unversioned block (key version "00"): version 1
                    entries = [{**entries, "id": 1, "state": ACTIVE}]
                rings[role.name] = _ring_of(kbpk, entries, role, path, unversioned=file_format == 1)
        return file_format, (kbpk, rings)
    except KeyFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KeyFileError(f"key file {path} is incomplete or malformed") from None


def _ring_of(kbpk: bytes, entries: list[dict[str, object]], role: _Role, path: Path, *,
             unversioned: bool) -> KeyRing:
    if not isinstance(entries, list):
        raise TypeError
    versions = []
    for entry in entries:
        key_id, state = entry["id"], entry["state"]
        if (not isinstance(key_id, int) or isinstance(key_id, bool) or not 1 <= key_id <= _MAX_KEY_ID
                or state not in (ACTIVE, RETIRED)):
            raise KeyFileError(f"key file {path}: {role.name} has a malformed key id or state")
        key = None
        if state == ACTIVE:
            key = _unwrap(kbpk, entry, role, path, "00" if unversioned else f"{key_id:02d}")
        versions.append(KeyVersion(key_id, state, str(entry["kcv"]), key))
    ids = [v.id for v in versions]
    if ids != sorted(set(ids)):
        raise KeyFileError(f"key file {path}: {role.name} key ids are repeated or out of order")
    if not any(v.state == ACTIVE for v in versions):
        raise KeyFileError(f"key file {path}: {role.name} has no active key")
    return KeyRing(role.name, tuple(versions))


def _unwrap(kbpk: bytes, entry: dict[str, object], role: _Role, path: Path, version_num: str) -> bytes:
    name = f"{role.name} key {entry['id']}"
    try:
        header, key = _tr31.unwrap(kbpk, str(entry["block"]))
    except (_tr31.KeyBlockError, _tr31.HeaderError, ValueError):
        raise KeyFileError(f"key file {path}: {name} block does not verify") from None
    if (header.key_usage, header.algorithm, header.mode_of_use) != (role.usage, role.algorithm, role.mode):
        raise KeyFileError(f"key file {path}: {name} block has the wrong usage")
    if header.version_num != version_num:
        raise KeyFileError(f"key file {path}: {name} block carries another key version")
    if len(key) != role.length:
        raise KeyFileError(f"key file {path}: {name} has the wrong length")
    if kcv(key, role.algorithm) != entry["kcv"]:
        raise KeyFileError(f"key file {path}: {name} check value mismatch")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    """``voicepay-keys [--dir DIR] generate [--force] | rotate ROLE | retire ROLE KEY_ID | show``.

    Prints key ids, roles, states and check values, never key material. A running ivr service
    and acquirer pick up a rotation or a retirement on their next use of the keys.
    """
    parser = argparse.ArgumentParser(prog="voicepay-keys", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="key directory (default: settings.keys_dir)")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="create (or upgrade) both key files")
    generate.add_argument("--force", action="store_true", help="replace existing key files")
    rotate_cmd = commands.add_parser("rotate", help="add a new current version of a key role")
    rotate_cmd.add_argument("role", choices=ROTATABLE)
    retire_cmd = commands.add_parser("retire", help="destroy an old version of a key role")
    retire_cmd.add_argument("role")
    retire_cmd.add_argument("key_id", type=int)
    commands.add_parser("show", help="key ids, roles, states and check values")
    args = parser.parse_args(argv)
    if args.dir is None:
        from ivr.config import load_settings

        args.dir = load_settings().keys_dir

    try:
        if args.command == "generate":
            generated = generate_dev_keys(args.dir, force=args.force)
            print(f"{'generated' if generated else 'kept existing'} keys in {args.dir}")
        elif args.command == "rotate":
            version = rotate(args.dir, args.role)
            print(f"rotated {args.role}: key {version.id} (KCV {version.kcv}) is current")
        elif args.command == "retire":
            version = retire(args.dir, args.role, args.key_id)
            print(f"retired {args.role} key {version.id} (KCV {version.kcv})")
        rows = describe(args.dir)
    except KeyManagementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for file_name, role, key_id, state, check in rows:
        print(f"{file_name:<14}{role:<16}key {key_id:<4}{state:<18}KCV {check}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
