"""Development secrets are generated per installation (issue 15): the AMI secret and every SIP
account's password are random, kept 0600 in var/keys/asterisk.json, written into the files
Asterisk's configuration includes, and never a fixed string in the repository."""

from __future__ import annotations

import json
import re
import stat

import pytest

from devstack import secrets as devsecrets
from ivr.asterisk_secrets import (AsteriskSecretsError, ami_secret, ensure_asterisk_secrets,
                                  load_asterisk_secrets)
from ivr.config import REPO_ROOT, load_settings

CONF = REPO_ROOT / "asterisk-conf"
# The strings the repository used to ship as secrets.
OLD_LITERALS = ["voicepay-dev-ami", "voicepay-6001", "voicepay-6002", "voicepay-13900000001",
                "voicepay-7001", "voicepay-7002"]


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_fixed_secret_in_asterisk_conf_or_the_readme():
    shipped = [p for p in CONF.rglob("*") if p.is_file()] + [REPO_ROOT / "README.md"]
    for path in shipped:
        text = path.read_text(encoding="utf-8", errors="replace")
        for literal in OLD_LITERALS:
            assert literal not in text, f"{literal} in {path.relative_to(REPO_ROOT)}"
        assert not re.search(r"voicepay-\d{4,}", text), path
    # No password or secret is written in Asterisk's configuration at all, only included.
    for path in CONF.glob("*.conf"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert not re.match(r"\s*(password|secret|md5_cred)\s*=", line), f"{path.name}: {line}"


def test_every_sip_auth_section_includes_its_generated_password():
    text = (CONF / "pjsip.conf").read_text(encoding="utf-8")
    auth_sections = re.findall(r"^\[(\w+)\]\(auth-base\)\nusername = \1\n(.*)$", text, re.MULTILINE)
    assert len(auth_sections) >= 5  # 6001, 6002, 13900000001, 7001, 7002
    for account, line in auth_sections:
        assert line == f'#include "{devsecrets.SECRETS_MOUNT}/sip-{account}.conf"'
    assert devsecrets.sip_accounts() == [account for account, _ in auth_sections]
    assert (f'#include "{devsecrets.SECRETS_MOUNT}/{devsecrets.AMI_INCLUDE}"'
            in (CONF / "manager.conf").read_text(encoding="utf-8"))


def test_secrets_are_generated_once_per_installation_private_and_random(tmp_path):
    one = load_settings(var_dir=tmp_path / "one", ami_secret="")
    other = load_settings(var_dir=tmp_path / "other", ami_secret="")
    first = ensure_asterisk_secrets(one, ["6001", "7001"])
    assert _mode(one.asterisk_secrets_file) == 0o600
    assert set(first.sip) == {"6001", "7001"}
    assert len({first.ami, *first.sip.values()}) == 3 and all(len(v) >= 20 for v in first.sip.values())
    # A second start changes nothing; a new account gets a password, the others keep theirs.
    assert ensure_asterisk_secrets(one, ["6001", "7001"]) == first
    grown = ensure_asterisk_secrets(one, ["6001", "7001", "7002"])
    assert (grown.ami, grown.sip["6001"], grown.sip["7001"]) == (first.ami, first.sip["6001"],
                                                                 first.sip["7001"])
    assert load_asterisk_secrets(one) == grown
    # Another installation has its own.
    elsewhere = ensure_asterisk_secrets(other, ["6001", "7001"])
    assert elsewhere.ami != first.ami and elsewhere.sip["6001"] != first.sip["6001"]
    assert first.ami not in repr(first) and first.sip["6001"] not in repr(first)


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    settings = load_settings(var_dir=tmp_path, ami_secret="")
    ensure_asterisk_secrets(settings, ["6001"])
    settings.asterisk_secrets_file.chmod(0o644)
    with pytest.raises(AsteriskSecretsError, match="readable by others") as refused:
        load_asterisk_secrets(settings)
    assert json.loads(settings.asterisk_secrets_file.read_text())["ami"] not in str(refused.value)


def test_the_service_reads_the_generated_ami_secret_unless_one_is_set(tmp_path):
    settings = load_settings(var_dir=tmp_path, ami_secret="")
    with pytest.raises(AsteriskSecretsError, match="devstack.stack prepare"):
        ami_secret(settings)
    generated = ensure_asterisk_secrets(settings, []).ami
    assert ami_secret(settings) == generated
    assert ami_secret(load_settings(var_dir=tmp_path, ami_secret="from-the-env")) == "from-the-env"


def test_provisioning_writes_the_included_files_with_the_same_values(tmp_path):
    settings = load_settings(var_dir=tmp_path / "var", ami_secret="")
    out = tmp_path / "secrets"
    found = devsecrets.provision(settings, out)
    assert (out / devsecrets.AMI_INCLUDE).read_text() == f"secret = {found.ami}\n"
    assert set(found.sip) == set(devsecrets.sip_accounts())
    for account, password in found.sip.items():
        included = out / f"sip-{account}.conf"
        assert included.read_text() == f"password = {password}\n"
        assert _mode(included) == 0o600
    assert devsecrets.sip_password(settings, "6001") == found.sip["6001"]


def test_show_prints_a_softphones_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOICEPAY_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("VOICEPAY_AMI_SECRET", raising=False)
    assert devsecrets.main(["show", "6001"]) == 1  # nothing generated yet: says how
    assert "devstack.stack prepare" in capsys.readouterr().err
    found = devsecrets.provision(load_settings(), tmp_path / "asterisk" / "secrets")
    assert devsecrets.main(["show", "6001"]) == 0
    assert capsys.readouterr().out == found.sip["6001"] + "\n"
    assert devsecrets.main(["show"]) == 0
    listing = capsys.readouterr().out
    assert all(f"{a}" in listing and p in listing for a, p in found.sip.items())
    assert found.ami not in listing  # the AMI secret is the service's, not a person's
    assert devsecrets.main(["show", "9999"]) == 1
