"""The console page's static side (ivr/console/static/): every mode the API takes is offered,
and every text the page names exists in both of its languages."""

from __future__ import annotations

import re

from ivr.api.payment_request import MODES
from ivr.console.routes import STATIC_DIR

HTML = (STATIC_DIR / "console.html").read_text(encoding="utf-8")
SCRIPT = (STATIC_DIR / "console.js").read_text(encoding="utf-8")


def _language_block(language: str) -> str:
    """The script's TEXT.<language> object, as source."""
    start = re.search(rf"^  {language}: {{$", SCRIPT, flags=re.MULTILINE)
    assert start, language
    end = re.search(r"^  },?$", SCRIPT[start.end():], flags=re.MULTILINE)
    assert end, language
    return SCRIPT[start.end():start.end() + end.start()]


def _defines(block: str, key: str) -> bool:
    return re.search(rf"\b{re.escape(key)}:", block) is not None


def test_the_form_offers_every_mode_the_api_takes() -> None:
    offered = re.findall(r'<input type="radio" name="mode" value="([^"]+)"', HTML)
    assert offered == list(MODES)  # callback, oneline, talk-through


def test_every_text_the_page_names_is_there_in_chinese_and_in_english() -> None:
    named = set(re.findall(r'data-i18n="([a-z_]+)"', HTML))
    assert "mode_talkthrough" in named
    for language in ("zh", "en"):
        block = _language_block(language)
        missing = sorted(key for key in named if not _defines(block, key))
        assert not missing, (language, missing)


def test_a_talk_through_payment_has_its_own_words_in_both_languages() -> None:
    """What the script shows for a talk-through payment: the answered step (you stay on the
    line), the call panel while the caller keys, the history's mode column."""
    for language in ("zh", "en"):
        block = _language_block(language)
        for key in ("answered_talkthrough", "caller_talking_through", "talkthrough"):
            assert _defines(block, key), (language, key)
    # The answered step's label is chosen by the payment's style, as the texts are named.
    assert 'T.steps[`answered_${kind(payment)}`]' in SCRIPT
    assert 'p.oneline_style === "talk-through" ? "talkthrough"' in SCRIPT
