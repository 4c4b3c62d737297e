"""Where a talk-through agent listens (dialplan/oneline.conf): each context the one-line switch
may send the agent to drops the agent's own keys before ChanSpy could act on them, and only the
prompts-to-both context listens to what is played to the caller. tests/e2e/
test_talkthrough_console.py proves both on a real Asterisk."""

from __future__ import annotations

import re

from ivr.config import REPO_ROOT
from ivr.oneline.switch import TALKING_THROUGH, TALKING_THROUGH_WITH_PROMPTS

ONELINE = (REPO_ROOT / "dialplan" / "oneline.conf").read_text(encoding="utf-8")


def _applications(context: str) -> list[str]:
    """The applications of ``context``'s s extension, in order, with their arguments."""
    body = ONELINE.split(f"\n[{context}]\n", 1)[1].split("\n[", 1)[0]
    return re.findall(r"^(?:exten => s,1|\s*same => n),(.+)$", body, flags=re.MULTILINE)


def _spy_options(context: str) -> str:
    spies = [a for a in _applications(context) if a.startswith("ChanSpy(")]
    assert len(spies) == 1, spies
    return spies[0].rsplit(",", 1)[1].rstrip(")")


def test_the_agents_keys_are_dropped_before_the_spy_starts() -> None:
    for context in (TALKING_THROUGH, TALKING_THROUGH_WITH_PROMPTS):
        steps = _applications(context)
        drop = steps.index("Set(FRAME_DROP(RX)=DTMF_BEGIN,DTMF_END)")
        assert drop < next(i for i, a in enumerate(steps) if a.startswith("ChanSpy(")), steps


def test_only_the_prompts_to_both_context_hears_what_is_played_to_the_caller() -> None:
    assert sorted(_spy_options(TALKING_THROUGH)) == sorted("qowE")  # o: the caller's phone only
    assert sorted(_spy_options(TALKING_THROUGH_WITH_PROMPTS)) == sorted("qwE")
