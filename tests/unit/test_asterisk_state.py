"""Where Asterisk keeps what it writes: in the stack's own var/, never in the cached root
filesystem every stack on the machine runs from (devstack/asterisk_sandbox.py). The AstDB (the
registered contacts) was in that root, shared by every stack: one's lock rolled another's
registrations back."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from devstack.asterisk_sandbox import AsteriskSandbox
from ivr.config import REPO_ROOT, Settings

ROOTFS = Path("/var/cache/voicepay/asterisk-rootfs-sid")
# Asterisk's compiled-in AstDB directory (upstream's and Debian's): inside the root filesystem.
COMPILED_ASTDBDIR = "/var/lib/asterisk"


def _applied_directories() -> dict[str, str]:
    """asterisk-conf/asterisk.conf's [directories] as Asterisk applies them: a template's
    settings (``[directories](!)``) are ignored."""
    applied: dict[str, str] = {}
    section = None
    for raw in (REPO_ROOT / "asterisk-conf" / "asterisk.conf").read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        header = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if header:
            section = None if "!" in (header.group(2) or "") else header.group(1)
        elif section == "directories" and "=>" in line:
            name, value = (part.strip() for part in line.split("=>", 1))
            applied[name] = value
    return applied


def _writable_binds(sandbox: AsteriskSandbox) -> dict[PurePosixPath, Path]:
    """What the sandbox binds read-write: the path inside -> the host path."""
    argv = sandbox.server_command()
    return {PurePosixPath(argv[i + 2]): Path(argv[i + 1])
            for i, arg in enumerate(argv) if arg == "--bind"}


def test_the_astdb_is_in_the_stacks_own_var_dir(tmp_path):
    sandbox = AsteriskSandbox(Settings(var_dir=tmp_path), ROOTFS)
    astdb_dir = PurePosixPath(_applied_directories().get("astdbdir", COMPILED_ASTDBDIR))
    homes = [host for inside, host in _writable_binds(sandbox).items()
             if astdb_dir == inside or inside in astdb_dir.parents]
    assert homes and all(host.is_relative_to(tmp_path) for host in homes), astdb_dir


def test_the_cached_root_filesystem_is_read_only(tmp_path):
    sandbox = AsteriskSandbox(Settings(var_dir=tmp_path), ROOTFS)
    assert sandbox.server_command()[:4] == ["bwrap", "--ro-bind", str(ROOTFS), "/"]
    # Only what is this stack's own is writable.
    assert _writable_binds(sandbox).keys() == {
        PurePosixPath("/run/asterisk"), PurePosixPath("/var/log/asterisk"),
        PurePosixPath("/var/spool/asterisk")}


def test_every_mount_point_is_made_in_a_root_that_lacks_it(tmp_path):
    """The root is bound read-only, where bubblewrap cannot create what it mounts over; a fresh
    minbase rootfs (a clean CI machine) has no /etc/hosts."""
    root = tmp_path / "rootfs"
    root.mkdir()
    sandbox = AsteriskSandbox(Settings(var_dir=tmp_path / "var"), root)
    sandbox.make_mount_points()
    assert (root / "etc" / "hosts").is_file()
    argv = sandbox.server_command()
    targets = ({argv[i + 2] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")}
               | {argv[i + 1] for i, arg in enumerate(argv) if arg == "--tmpfs"})
    # Inside a directory bound or made a tmpfs by the sandbox itself, bubblewrap can create.
    made_by_the_sandbox = ("/etc/asterisk/", "/opt/")
    missing = [t for t in targets - {"/", "/tmp"}
               if not t.startswith(made_by_the_sandbox) and not (root / t.lstrip("/")).exists()]
    assert missing == []
