"""The things that must stay in step with each other: settings and README, prompts and flows,
dialplan variables and Python."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivr import dialplan_variables
from ivr.config import REPO_ROOT, load_settings
from ivr.prompts import Manifest, Prompts, UnknownPrompt


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEPAY_HTTP_PORT", "9999")
    monkeypatch.setenv("VOICEPAY_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("VOICEPAY_ACQUIRER_TIMEOUT", "1.5")
    settings = load_settings()
    assert settings.http_port == 9999
    assert settings.acquirer_timeout == 1.5
    assert settings.keys_dir == tmp_path / "keys"
    assert load_settings(http_port=1234).http_port == 1234


def test_every_language_has_every_prompt():
    manifest = Manifest.load()
    names = {lang: set(texts) for lang, texts in manifest.texts.items()}
    assert set(names) == set(manifest.voices)
    assert names["en"] == names["zh"]


def _prompt_names_used_in_code() -> set[str]:
    used: set[str] = set()
    for path in (REPO_ROOT / "ivr").rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'prompts\["([a-z0-9_]+)"\]', text))
        used |= set(re.findall(r'keypad\.\w+\("([a-z0-9_]+)"', text))
        used |= set(re.findall(r'invalid="([a-z0-9_]+)"', text))
        used |= set(re.findall(r'Outcome\([^)]*?"([a-z_]+)"', text))
    return used


def test_prompts_used_by_the_flows_exist():
    manifest = Manifest.load()
    used = _prompt_names_used_in_code()
    assert "enter_pin" in used and "approved" in used  # the scan itself works
    for language in manifest.languages:
        prompts = Prompts(manifest, "/snd", language)
        for name in used:
            assert prompts[name] == f"/snd/{language}/{name}"


def test_an_unknown_prompt_is_an_error():
    prompts = Prompts(Manifest.load(), "/snd", "en")
    with pytest.raises(UnknownPrompt):
        prompts["no_such_prompt"]
    assert prompts.digits("40#1") == ["/snd/en/digit_4", "/snd/en/digit_0", "/snd/en/digit_1"]


def test_dialplan_uses_only_declared_variables():
    declared = {v for k, v in vars(dialplan_variables).items() if k.isupper()}
    used: set[str] = set()
    for path in Path(REPO_ROOT / "dialplan").glob("*.conf"):
        used |= set(re.findall(r"\b(VOICEPAY_[A-Z_]+)\b", path.read_text()))
    used.discard("VOICEPAY_AGI")  # a dialplan global, not a channel variable
    assert used <= declared, used - declared
