"""The agent console in a real headless Chromium (Debian's, driven by Playwright) against the real
stack: log in, a callback payment a SIPp cardholder answers and pays watched step by step, a
wrong login, an expired session, a CSRF attempt, a one-line payment in a live SIPp call, and the
modes offered when talk-through is turned off.

The screenshots in docs/ (shown in the README) are written by these tests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ivr.config import REPO_ROOT
from devstack.asterisk_sandbox import AsteriskSandbox, ensure_rootfs
from simulators.acquirer.testcards import find_test_card
from tests.e2e.test_oneline_calls import AGENT, ID_NUMBER, _when_the_agent_talks_to_the_caller
from tests.sipp import callback_calls as phone
from tests.sipp.cues import Cues
from tests.sipp.scenario import Call, Callee, Key

pytestmark = pytest.mark.e2e

DOCS = REPO_ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright never downloads a browser here
CALLBACK_NUMBER = "13800138107"
NOT_THE_PIN = "000000"  # a PIN the caller gets wrong; no test card has it


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox cannot run as root; the tests run as root in CI containers.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 1000}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20000)
    yield page
    context.close()


def _password(stack, agent_id: str) -> str:
    shown = stack.settings.keys_dir / "agent-passwords.json"
    return json.loads(shown.read_text())["agents"][agent_id]


def _open(page: Page, stack, language: str = "en") -> None:
    page.goto(stack.api + "/console")
    page.evaluate(f"localStorage.setItem('voicepay-console-lang', '{language}')")
    page.reload()
    expect(page.locator("#login-view")).to_be_visible()


def _log_in(page: Page, stack, agent_id: str = AGENT, language: str = "en") -> None:
    _open(page, stack, language)
    page.get_by_label("Agent id" if language == "en" else "坐席工号（分机号）").fill(agent_id)
    page.get_by_label("Password" if language == "en" else "密码").fill(_password(stack, agent_id))
    page.keyboard.press("Enter")
    expect(page.locator("#work-view")).to_be_visible()


def _shot(page: Page, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / name), full_page=True)


def _record_lines(page: Page) -> None:
    """Keep every (step, status, text) the progress list ever shows, in order: the test reads
    what the agent saw, not just the end."""
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => {
          for (const li of document.querySelectorAll('#progress li')) {
            const entry = li.dataset.step + '|' + li.dataset.status + '|' + li.textContent;
            if (!window.seen.includes(entry)) window.seen.push(entry);
          }
        }).observe(document.getElementById('progress'), {childList: true, subtree: true});
    }""")


def _seen(page: Page) -> list[tuple[str, str, str]]:
    return [tuple(entry.split("|", 2)) for entry in page.evaluate("window.seen")]


def _fill_order(page: Page, card, *, mode: str, mobile: str, amount: str) -> str:
    order_id = f"CON{int(time.time() * 1000)}"
    page.locator(f"input[name=mode][value={mode}]").check()
    page.get_by_label("Merchant order id", exact=True).fill(order_id)
    page.get_by_label("Amount (yuan)").fill(amount)
    page.get_by_label("Description").fill("Phone bill")
    page.get_by_label("Cardholder name").fill("Zhang San")
    page.get_by_label("ID number").fill(ID_NUMBER)
    page.get_by_label("Cardholder mobile").fill(mobile)
    page.get_by_label("Card number").fill(card.pan)
    page.get_by_label("Language of the call").select_option("en")
    return order_id


def test_a_wrong_login_is_refused_without_saying_why(page: Page, stack) -> None:
    _open(page, stack)
    page.get_by_label("Agent id").fill(AGENT)
    page.get_by_label("Password").fill("not-my-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("the agent id or the password is wrong")
    expect(page.locator("#work-view")).to_be_hidden()
    assert not [c for c in page.context.cookies() if c["name"] == "voicepay_console"]
    _shot(page, "console-login.png")


def test_a_callback_payment_watched_step_by_step(page: Page, stack) -> None:
    card = find_test_card("approve")
    _log_in(page, stack)
    for mode in ("callback", "oneline", "talk-through"):  # every mode offered (the suite's setting)
        expect(page.locator(f"input[name=mode][value={mode}]")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("7101")
    # Inline validation, by the API's rules: a card number failing Luhn is named at its field
    # as soon as the agent leaves it (filling the form top to bottom).
    page.get_by_label("Merchant order id", exact=True).fill("CHECK-1")
    page.get_by_label("Amount (yuan)").fill("88.00")
    page.get_by_label("Description").fill("Phone bill")
    page.get_by_label("Card number").fill(card.pan[:-1] + str((int(card.pan[-1]) + 1) % 10))
    page.get_by_label("Cardholder name").focus()
    expect(page.locator("#card_number-error")).not_to_be_empty()
    expect(page.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
    _shot(page, "console-inline-validation.png")

    callee = stack.phone(phone.pays_with_pin("console_cb", [card.pin], language="en",
                                             amount_minor=8800), CALLBACK_NUMBER)
    order_id = _fill_order(page, card, mode="callback", mobile=CALLBACK_NUMBER, amount="88.00")
    _record_lines(page)
    page.get_by_role("button", name="Start payment").click()
    result = page.locator("#progress li[data-step=result]")
    expect(result).to_have_attribute("data-status", "done", timeout=120000)
    assert callee.wait(timeout=60) == 0
    payment_id = page.locator("#progress-view").get_attribute("data-payment")
    payment = stack.get(f"/v1/payments/{payment_id}")
    assert payment["status"] == "approved" and payment["merchant_order_id"] == order_id
    expect(result).to_have_text(f"Result: Approved, reference {payment['rrn']}")

    seen = _seen(page)
    arrived = [(step, status) for step, status, _ in seen]
    for expected in [("waiting", "active"), ("waiting", "done"), ("calling", "active"),
                     ("ringing", "active"), ("answered", "done"), ("confirmed", "done"),
                     ("pin", "active"), ("pin", "entered"), ("authorizing", "active"),
                     ("authorizing", "done"), ("pin", "accepted"), ("result", "done")]:
        assert expected in arrived, (expected, arrived)
    # In the order they happened.
    order = [arrived.index(e) for e in [("calling", "active"), ("ringing", "active"),
                                        ("answered", "done"), ("pin", "entered"),
                                        ("result", "done")]]
    assert order == sorted(order), arrived
    assert ("pin", "entered", f"PIN: {len(card.pin)} digits entered") in seen
    # The page shows the card masked, never the PIN or the whole card number.
    text = page.locator("body").inner_text()
    assert card.pan not in text and card.pan[:6] + "******" + card.pan[-4:] in text
    _shot(page, "console-callback-approved.png")

    # The agent's history finds it by its order id.
    page.get_by_label("Find by merchant order id").fill(order_id)
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator(f"#history tr[data-payment='{payment_id}']")).to_contain_text("Approved")

    # 中文: the same page in Chinese.
    page.locator("#language").click()
    expect(page.locator("#progress li[data-step=pin]")).to_have_text(
        f"密码: 已通过 (已输入 {len(card.pin)} 位)")
    expect(result).to_contain_text(f"支付成功，参考号 {payment['rrn']}")
    _shot(page, "console-callback-approved-zh.png")


def test_an_expired_session_sends_the_agent_back_to_the_login(page: Page, stack) -> None:
    _log_in(page, stack)
    client = redis.Redis.from_url(stack.settings.redis_url)
    for key in client.scan_iter("console:session:*"):
        client.pexpire(key, 1)  # every console session's idle time has run out
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#notice")).to_have_text("Your session has ended: log in again.")


def test_a_write_without_the_csrf_token_is_refused(page: Page, stack) -> None:
    card = find_test_card("approve")
    _log_in(page, stack)
    before = stack.payment_ids()
    # What a forged request would be: the session cookie goes along, the token does not.
    status, body = page.evaluate("""async (order) => {
        const r = await fetch('/console/api/payments', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify(order)});
        return [r.status, await r.json()];
    }""", {"merchant_order_id": "CSRF1", "amount": "1.00", "description": "x",
           "card_number": card.pan, "cardholder_name": "x", "id_number": ID_NUMBER,
           "mobile": CALLBACK_NUMBER, "mode": "callback"})
    assert status == 403 and body["error_id"] == "csrf-refused"
    assert stack.payment_ids() == before


def test_a_one_line_payment_in_the_agents_live_call(page: Page, stack) -> None:
    """... with the agent's recording paused and resumed, and the PIN asked again: the caller
    keys a wrong PIN, the agent presses "ask again" while the PIN is asked, and only the PIN
    keyed after "please enter it again" reaches the acquirer."""
    card = find_test_card("approve")
    agent = stack.agent(Callee("console_agent", ring_ms=300, bye_timeout_ms=120000), AGENT)
    cues = Cues()
    caller = stack.start_call(Call("console_caller", "8100", [
        Key("1", cue="menu", label="1 to pay"),
        Key(NOT_THE_PIN + "#", cue="PIN prompt", label="a PIN the caller got wrong"),
        Key(card.pin + "#", cue="PIN again", label="the PIN, asked again"),
    ], hang_up_on_cue="back with the agent"), cues=cues)
    _log_in(page, stack)
    _when_the_agent_talks_to_the_caller(stack)
    call = page.locator("#call")
    expect(call).to_have_attribute("data-state", "on-call")
    caller_number = _caller_number(stack)
    expect(call).to_have_text(f"On a call with {caller_number}")
    _fill_order(page, card, mode="oneline", mobile="13800138204", amount="36.00")
    _record_lines(page)
    journal_before = len(stack.journal())
    page.get_by_role("button", name="Start payment").click()
    expect(page.locator("#progress li[data-step=answered]")).to_have_text(
        "Caller in the payment IVR, you are held apart: done")
    expect(page.get_by_label("Card number")).to_have_value("")  # gone from the page once placed
    expect(call).to_have_attribute("data-state", "caller-in-ivr")
    recording = page.locator("#recording")
    expect(recording).to_have_text("Call recording paused (the caller is in the payment IVR)")
    _shot(page, "console-oneline-in-ivr.png")
    payment_id = page.locator("#progress-view").get_attribute("data-payment")
    marker = f"voicepay one-line payment {payment_id}"
    stack.wait_for_prompt(marker, "confirm_menu")
    cues.send("menu")
    stack.wait_for_prompt(marker, "enter_pin")

    # The caller says they got the PIN wrong: the agent asks for it again while it is asked.
    pin = page.locator("#progress li[data-step=pin]")
    pin.get_by_role("button", name="Ask the caller for the PIN again").click()
    expect(pin).to_contain_text("ask again requested")
    _shot(page, "console-oneline-ask-again.png")
    cues.send("PIN prompt")  # the wrong PIN and #: discarded, and the PIN asked again
    stack.wait_for_prompt(marker, "enter_pin", count=2)
    stack.wait_for_prompt(marker, "ask_again")
    expect(pin).to_contain_text("PIN: in progress (asked again)")
    cues.send("PIN again")

    result = page.locator("#progress li[data-step=result]")
    expect(result).to_have_attribute("data-status", "done", timeout=90000)
    payment = stack.get(f"/v1/payments/{payment_id}")
    assert payment["status"] == "approved" and payment["agent_id"] == AGENT
    # One authorization, approved: the wrong PIN never reached the acquirer (it would be a 55).
    assert [e["response_code"] for e in stack.journal()[journal_before:]] == ["00"]
    assert ("pin", "entered", f"PIN: {len(card.pin)} digits entered (asked again)") in _seen(page)
    # The caller comes back to the agent once the result has been read out: the console sees
    # the agent's call bridged with the caller again, and the recording going on.
    _when_the_agent_talks_to_the_caller(stack)
    expect(call).to_have_text(f"On a call with {caller_number}")
    expect(recording).to_have_text("Call recording resumed")
    _shot(page, "console-oneline-approved.png")
    cues.send("back with the agent")
    out, _ = caller.communicate(timeout=120)
    assert caller.returncode == 0, out[-2000:]
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, out[-2000:]


def _caller_number(stack) -> str:
    """The caller id Asterisk has for the channel bridged with the agent's."""
    sandbox = AsteriskSandbox(stack.settings, ensure_rootfs(stack.settings))
    rows = [line.split("!") for line in sandbox.cli("core show channels concise").splitlines()]
    bridge = next(r[12] for r in rows if len(r) > 12 and r[0].startswith(f"PJSIP/{AGENT}-"))
    return next(r[7] for r in rows if len(r) > 12 and r[12] == bridge
                and not r[0].startswith(f"PJSIP/{AGENT}-"))


@pytest.fixture
def talkthrough_off(stack) -> Iterator[None]:
    """The ivr service with talk-through payments turned off (VOICEPAY_TALKTHROUGH); the suite's
    service afterwards."""
    with stack.ivr_restarted_with("the talk-through-off test", VOICEPAY_TALKTHROUGH="off"):
        yield


def test_talk_through_turned_off_is_not_offered(page: Page, stack, talkthrough_off) -> None:
    """The console offers the modes the platform takes: with talk-through off its choice is gone
    (the merchant API would refuse the order), and the other two are offered as ever."""
    _log_in(page, stack)
    expect(page.locator("input[name=mode][value=callback]")).to_be_checked()
    expect(page.get_by_text("In the call I am on now (one-line)")).to_be_visible()
    expect(page.locator("input[name=mode][value=oneline]")).to_be_enabled()
    expect(page.get_by_text("staying on the line (talk-through)")).to_be_hidden()
    expect(page.locator("input[name=mode][value=talk-through]")).to_be_disabled()
