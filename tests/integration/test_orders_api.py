"""The merchant API in front of the REAL order service (callback and one-line orders, basic risk,
the one-line switch, the dialer), with a fake AMI in place of Asterisk and a real Redis.

test_merchant_api.py proves the API itself against a fake order service; here the outcomes come
from the product's own risk checks, limits, switch and cancel, as a merchant would see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from ivr.api.keys import AMI, RISK_ENGINE, RISK_LISTS, STORE
from tests.integration.risk_fakes import answering_providers, established
from ivr.risk.decision import RiskEngine
from ivr.config import load_settings
from ivr.crypto.keys import generate_dev_keys, load_ivr_keys
from ivr.hostlink.bin_table import BinTable
from ivr.oneline.orders import ReturningCardholders
from ivr.service import create_app
from tests.integration.fake_ami import FakeAmi
from tests.integration.test_merchant_api import CARD, ORDER, TEST_RECEIVERS, Api, _free_port

AMI_USER, AMI_SECRET = "voicepay", "test-ami-secret"
TEST_CARDS = Path(__file__).parents[2] / "simulators" / "acquirer" / "test_cards.json"
# Luhn-valid, under a BIN the acquirer's table does not have.
UNKNOWN_BIN_CARD = "4111111111111111"
AGENT_CHANNEL = "PJSIP/1001-00000002"
CALLER_CHANNEL = "PJSIP/cardholder-00000001"
ONELINE = {"mode": "oneline", "agent_id": "1001"}


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username=AMI_USER, secret=AMI_SECRET) as ami:
        # Agent 1001 is talking to a customer: both legs in one bridge.
        ami.channels = [
            {"Channel": CALLER_CHANNEL, "Uniqueid": "1700000000.1", "BridgeId": "bridge-1"},
            {"Channel": AGENT_CHANNEL, "Uniqueid": "1700000000.2", "BridgeId": "bridge-1"},
            {"Channel": "PJSIP/1002-00000003", "Uniqueid": "1700000000.3", "BridgeId": ""},
        ]
        yield ami


@pytest.fixture
async def api(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
              fake_ami: FakeAmi) -> AsyncIterator[Api]:
    async with running_service(tmp_path, redis_server, redis_client, fake_ami) as api:
        yield api


@contextlib.asynccontextmanager
async def running_service(tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
                          fake_ami: FakeAmi, *,
                          risk_engine: RiskEngine | None = None,
                          **settings_overrides: object) -> AsyncIterator[Api]:
    """The whole service with its real order services; ``risk_engine`` in place of the one it
    would build. Its identity providers answer as told (match, bound) unless ``police_url`` and
    ``binding_url`` are given: then its own HTTP clients ask the services there."""
    generate_dev_keys(tmp_path / "keys")
    settings = load_settings(
        var_dir=tmp_path, redis_url=redis_server, http_port=_free_port(),
        agi_host="127.0.0.1", agi_port=_free_port(), ami_host="127.0.0.1", ami_port=fake_ami.port,
        ami_user=AMI_USER, ami_secret=AMI_SECRET,
        acquirer_host="127.0.0.1", acquirer_port=_free_port(), acquirer_timeout=1.0,
        **{"outbound_allowed_networks": TEST_RECEIVERS, **settings_overrides},
    )
    # What the acquirer publishes when it starts: the test BINs (622188 debit, 625906 credit).
    BinTable.from_document(json.loads(TEST_CARDS.read_text())).write(settings.bin_table_file)
    app = create_app(settings)  # no fake order service: the service builds its own
    if risk_engine is not None:
        app[RISK_ENGINE] = risk_engine  # before start-up: used instead of the one it would build
    if "police_url" not in settings_overrides:
        answering_providers(app)  # the police know the cardholder, the card is bound to the mobile
    async with TestClient(TestServer(app)) as client:
        while not app[AMI].connected:  # the login is under way; the fake AMI answers at once
            await asyncio.sleep(0.01)
        await established(app[RISK_LISTS])  # not one of a new merchant's first payments
        yield Api(client, settings, None, redis_client)


async def _history(api: Api, payment_id: str) -> list[dict[str, str]]:
    return await api.app[STORE].history(payment_id)


# --- risk ---------------------------------------------------------------------------------------

async def test_a_banned_category_merchant_is_risk_declined(api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order(merchant="M100004")
    assert status == 201, body
    assert body["status"] == "risk_declined"
    decision = json.loads((await api.app[STORE].get(body["id"])).risk_decision)
    # The shipped rules: M100004's category is banned (and, never allow-listed, it is new too).
    assert "merchant_category_banned" in [rule["name"] for rule in decision["fired"]]
    assert decision["outcome"] == "decline"
    assert fake_ami.sent("Originate") == []


async def test_an_unknown_bin_is_risk_declined(api: Api) -> None:
    status, body = await api.post_order(card_number=UNKNOWN_BIN_CARD)
    assert status == 201, body
    assert body["status"] == "risk_declined" and body["card_type"] == "unknown"
    decision = json.loads((await api.app[STORE].get(body["id"])).risk_decision)
    assert [rule["name"] for rule in decision["fired"]] == ["card_bin_unknown"]


async def test_a_known_bin_passes_risk_and_is_dialled(api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order()
    assert status == 201 and body["status"] == "risk_passed", body
    originate = await fake_ami.received("Originate")
    assert originate["Channel"] == f"PJSIP/{ORDER['mobile']}"
    assert originate["Variable"] == f"VOICEPAY_PAYMENT_ID={body['id']}"


# --- one-line limits ----------------------------------------------------------------------------

async def test_oneline_is_allowed_up_to_the_limit(api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order(amount="2000.00", **ONELINE)
    assert status == 201, body
    assert body["status"] == "risk_passed" and body["agent_id"] == ONELINE["agent_id"]
    # The channels are the platform's own business: never in what the merchant is shown.
    assert AGENT_CHANNEL not in repr(body) and CALLER_CHANNEL not in repr(body)
    assert not {"agent_channel", "caller_channel", "call_id", "stan", "internal"} & set(body)
    redirect = await fake_ami.received("Redirect")
    assert (redirect["Channel"], redirect["Context"]) == (CALLER_CHANNEL, "pay-oneline")
    assert (redirect["ExtraChannel"], redirect["ExtraContext"]) == (AGENT_CHANNEL, "agent-wait")

    status, body = await api.post_order(amount="2000.01", merchant_order_id="ORD-2", **ONELINE)
    assert status == 403 and body["error_id"] == "oneline-not-allowed", body
    assert body["details"] == {"max_amount": "2000.00", "use_mode": "callback"}
    assert await api.payment_count() == 1 and len(fake_ami.sent("Redirect")) == 1


async def test_a_returning_cardholder_may_pay_above_the_limit(api: Api) -> None:
    order = {"amount": "2500.00", **ONELINE}
    assert (await api.post_order(**order))[0] == 403
    keys = load_ivr_keys(api.settings.ivr_keys_file)
    # Remembered under the card-number vault's key: that is not the key the service uses.
    await ReturningCardholders(api.redis, keys.pan_key).remember(CARD, ORDER["mobile"])
    assert (await api.post_order(**order))[0] == 403
    # Approved before (as the authorizer records it): now allowed above the limit.
    await ReturningCardholders(api.redis, keys.cardholder_key).remember(CARD, ORDER["mobile"])
    status, body = await api.post_order(**order)
    assert status == 201 and body["status"] == "risk_passed", body
    # The same card with another mobile number is a new cardholder.
    assert (await api.post_order(mobile="13900139000", **order))[0] == 403


async def test_the_agent_must_be_on_a_call(api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order(**{**ONELINE, "agent_id": "1002"})
    assert status == 409 and body["error_id"] == "agent-not-on-call"
    assert await api.payment_count() == 0 and fake_ami.sent("Redirect") == []


# --- one-line switch failure --------------------------------------------------------------------

async def test_a_failed_switch_fails_the_payment_and_a_retry_replays_it(api: Api,
                                                                       fake_ami: FakeAmi) -> None:
    fake_ami.failing.add("redirect")
    key = {"Idempotency-Key": "oneline-switch-1"}
    status, body = await api.post_order(headers=key, **ONELINE)
    assert status == 502 and body["error_id"] == "switch-failed", body
    payment_id = body["details"]["payment_id"]
    assert payment_id in body["message"] and body["details"]["agent_id"] == "1001"
    payment = await api.app[STORE].get(payment_id)
    assert payment.status == "failed"
    history = await _history(api, payment_id)
    assert [e["state"] for e in history] == ["created", "risk_passed", "failed"]
    assert "could not be switched" in history[-1]["reason"]

    # The merchant retries: the same answer, and still one payment.
    fake_ami.failing.clear()
    again_status, again = await api.post_order(headers=key, **ONELINE)
    assert (again_status, again) == (status, body)
    assert await api.payment_count() == 1 and len(fake_ami.sent("Redirect")) == 1


async def test_the_agents_recording_is_paused_before_the_caller_is_switched(
        api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order(**ONELINE)
    assert status == 201, body
    await fake_ami.received("Redirect")
    names = [a["Action"] for a in fake_ami.actions if a["Action"] in ("MixMonitorMute", "Redirect")]
    assert names == ["MixMonitorMute", "Redirect"]
    [pause] = fake_ami.sent("MixMonitorMute")
    assert (pause["Channel"], pause["Direction"], pause["State"]) == (AGENT_CHANNEL, "both", "1")
    last = (await _history(api, body["id"]))[-1]
    assert (last["event"], last["reason"]) == ("recording_paused",
                                               "the agent's call recording paused")


async def test_talk_through_keeps_the_agent_listening_and_the_recording_running(
        api: Api, fake_ami: FakeAmi) -> None:
    """Talk-through: the caller goes to the payment IVR as for the hard switch, the agent to
    [agent-talkthrough] (ChanSpy on the caller's channel, named in the agent's leg), and the
    agent's recording is neither paused nor noted as paused."""
    status, body = await api.post_order(**{**ONELINE, "mode": "talk-through"})
    assert status == 201 and body["status"] == "risk_passed", body
    assert body["mode"] == "oneline" and body["oneline_style"] == "talk-through"
    redirect = await fake_ami.received("Redirect")
    assert (redirect["Channel"], redirect["Context"]) == (CALLER_CHANNEL, "pay-oneline")
    assert (redirect["ExtraChannel"], redirect["ExtraContext"]) == (AGENT_CHANNEL,
                                                                    "agent-talkthrough")
    told_the_agent = [(s["Variable"], s["Value"]) for s in fake_ami.sent("Setvar")
                      if s["Channel"] == AGENT_CHANNEL]
    assert ("VOICEPAY_CALLER_CHANNEL", CALLER_CHANNEL) in told_the_agent
    assert fake_ami.sent("MixMonitorMute") == []
    assert not [h for h in await _history(api, body["id"]) if h.get("event")]


async def test_talk_through_with_the_prompts_to_both_sends_the_agent_to_hear_them_too(
        tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
        fake_ami: FakeAmi) -> None:
    """VOICEPAY_TALKTHROUGH_PROMPTS=both: the agent goes to [agent-talkthrough-prompts] (ChanSpy
    on both directions of the caller's channel); the caller's side is as for caller-only."""
    async with running_service(tmp_path, redis_server, redis_client, fake_ami,
                               talkthrough_prompts="both") as api:
        status, body = await api.post_order(**{**ONELINE, "mode": "talk-through"})
    assert status == 201 and body["oneline_style"] == "talk-through", body
    redirect = await fake_ami.received("Redirect")
    assert (redirect["Channel"], redirect["Context"]) == (CALLER_CHANNEL, "pay-oneline")
    assert (redirect["ExtraChannel"], redirect["ExtraContext"]) == (
        AGENT_CHANNEL, "agent-talkthrough-prompts")
    assert fake_ami.sent("MixMonitorMute") == []


async def test_talk_through_turned_off_refuses_the_order_before_any_payment_or_call(
        tmp_path: Path, redis_server: str, redis_client: aioredis.Redis,
        fake_ami: FakeAmi) -> None:
    """VOICEPAY_TALKTHROUGH=off (Asterisk then generates no silence for a whisper to ride on): a
    talk-through order is a 400 naming the mode, nothing is stored or switched, and a oneline
    order is taken as ever."""
    async with running_service(tmp_path, redis_server, redis_client, fake_ami,
                               talkthrough="off") as api:
        status, body = await api.post_order(**{**ONELINE, "mode": "talk-through"})
        assert status == 400, body
        assert (body["error_id"], body["details"]["parameter"]) == ("unsupported-mode", "mode")
        assert "turned off" in body["details"]["reason"]
        assert await api.app[STORE].recent(limit=10) == []
        assert fake_ami.sent("Redirect") == []
        status, body = await api.post_order(**{**ONELINE, "merchant_order_id": "ONELINE-2"})
        assert status == 201, body
    with pytest.raises(ValueError, match="VOICEPAY_TALKTHROUGH must be on or off"):
        load_settings(talkthrough="no").talkthrough_enabled


def test_the_talk_through_prompts_setting_is_a_choice() -> None:
    assert not load_settings().talkthrough_prompts_to_agent  # the caller only, by default
    assert load_settings(talkthrough_prompts="both").talkthrough_prompts_to_agent
    with pytest.raises(ValueError, match="VOICEPAY_TALKTHROUGH_PROMPTS must be one of caller, both"):
        load_settings(talkthrough_prompts="agent").talkthrough_prompts_to_agent


@pytest.mark.parametrize("dtmf_mode", ["inband", "auto"])
async def test_talk_through_with_a_caller_keying_in_band_mutes_the_caller_to_the_agent(
        api: Api, fake_ami: FakeAmi, dtmf_mode: str) -> None:
    """A caller whose phone may key in-band tones (Asterisk misses a key keyed over speech and
    leaves its tone in the audio): before the switch, the agent's recording is paused and all
    audio to the agent is silenced; the agent still goes to [agent-talkthrough], to talk."""
    fake_ami.dtmf_modes[CALLER_CHANNEL] = dtmf_mode
    status, body = await api.post_order(**{**ONELINE, "mode": "talk-through"})
    assert status == 201 and body["oneline_style"] == "talk-through", body
    redirect = await fake_ami.received("Redirect")
    assert redirect["ExtraContext"] == "agent-talkthrough"
    before = [(a["Action"], a.get("Channel"), a.get("Variable"), a.get("Value"), a.get("State"))
              for a in fake_ami.actions if a["Action"] in ("MixMonitorMute", "Setvar", "Redirect")]
    assert before[:2] == [("MixMonitorMute", AGENT_CHANNEL, None, None, "1"),
                          ("Setvar", AGENT_CHANNEL, "MUTEAUDIO(out)", "on", None)]
    assert before[-1][0] == "Redirect"
    assert (await api.app[STORE].get(body["id"])).caller_muted == "1"
    assert [h["event"] for h in await _history(api, body["id"]) if h.get("event")] == [
        "recording_paused", "caller_muted"]


async def test_a_caller_keying_by_rfc4733_or_info_is_not_muted(api: Api, fake_ami: FakeAmi) -> None:
    fake_ami.dtmf_modes[CALLER_CHANNEL] = "info"
    status, body = await api.post_order(**{**ONELINE, "mode": "talk-through"})
    assert status == 201, body
    await fake_ami.received("Redirect")
    assert fake_ami.sent("MixMonitorMute") == []
    assert not [s for s in fake_ami.sent("Setvar") if s["Variable"].startswith("MUTEAUDIO")]
    assert (await api.app[STORE].get(body["id"])).caller_muted == ""


async def test_a_recording_that_cannot_be_paused_refuses_the_switch(api: Api,
                                                                    fake_ami: FakeAmi) -> None:
    """Asterisk refuses the mute (no such channel, no recording on it): the caller stays with
    the agent, and the payment fails rather than be keyed into a recording."""
    fake_ami.failing.add("mixmonitormute")
    status, body = await api.post_order(**ONELINE)
    assert status == 502 and body["error_id"] == "recording-not-paused", body
    payment = await api.app[STORE].get(body["details"]["payment_id"])
    assert payment.status == "failed"
    assert fake_ami.sent("Redirect") == [] and fake_ami.sent("Setvar") == []
    assert "could not be paused" in (await _history(api, payment.id))[-1]["reason"]


async def test_a_failed_switch_resumes_the_recording(api: Api, fake_ami: FakeAmi) -> None:
    fake_ami.failing.add("redirect")
    status, body = await api.post_order(**ONELINE)
    assert status == 502 and body["error_id"] == "switch-failed", body
    assert [(m["Channel"], m["State"]) for m in fake_ami.sent("MixMonitorMute")] == [
        (AGENT_CHANNEL, "1"), (AGENT_CHANNEL, "0")]


async def test_asterisk_down_refuses_a_oneline_order_before_any_payment(api: Api,
                                                                        fake_ami: FakeAmi) -> None:
    fake_ami.failing.add("coreshowchannels")  # answered with an error: the agent is not found
    status, body = await api.post_order(**ONELINE)
    assert status == 409 and body["error_id"] == "agent-not-on-call"
    await fake_ami.close()
    while api.app[AMI].connected:
        await asyncio.sleep(0.01)
    status, body = await api.post_order(merchant_order_id="ORD-2", **ONELINE)
    assert status == 503 and body["error_id"] == "switch-unavailable", body
    assert await api.payment_count() == 0


# --- cancel -------------------------------------------------------------------------------------

async def _switched_oneline_payment(api: Api, fake_ami: FakeAmi) -> str:
    status, body = await api.post_order(**ONELINE)
    assert status == 201 and body["status"] == "risk_passed", body
    await fake_ami.received("Redirect")
    return body["id"]


async def test_oneline_cancel_returns_the_caller_to_the_agent(api: Api, fake_ami: FakeAmi) -> None:
    payment_id = await _switched_oneline_payment(api, fake_ami)
    status, body = await api.request("POST", f"/v1/payments/{payment_id}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    back = fake_ami.sent("Redirect")[1]
    assert (back["Channel"], back["Context"], back["Exten"], back["Priority"]) == \
        (CALLER_CHANNEL, "pay-oneline", "s", "back-to-agent")
    assert "ExtraChannel" not in back  # the agent is pulled back by the caller's Bridge()
    assert fake_ami.sent("Hangup") == []
    reasons = [e["reason"] for e in await _history(api, payment_id)]
    assert reasons[-2:] == ["cancelled by merchant M100001",
                            "caller taken out of the payment IVR and returned to the agent"]


def test_the_dialplan_has_the_step_a_cancelled_caller_is_sent_to() -> None:
    dialplan = (Path(__file__).parents[2] / "dialplan" / "oneline.conf").read_text()
    context = dialplan.split("\n[pay-oneline]\n")[1].split("\n[")[0]
    step = next(line for line in context.splitlines() if "(back-to-agent)" in line)
    # After the payment IVR, the step that bridges the agent back in.
    assert context.index("AGI(") < context.index(step) < context.index("Bridge(${VOICEPAY_AGENT_CHANNEL}")


async def test_oneline_cancel_hangs_up_when_the_caller_cannot_go_back(api: Api,
                                                                      fake_ami: FakeAmi) -> None:
    payment_id = await _switched_oneline_payment(api, fake_ami)
    fake_ami.failing.add("redirect")
    status, body = await api.request("POST", f"/v1/payments/{payment_id}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    assert [h["Channel"] for h in fake_ami.sent("Hangup")] == [CALLER_CHANNEL]
    released = fake_ami.sent("Redirect")[-1]
    assert (released["Channel"], released["Context"]) == (AGENT_CHANNEL, "agent-released")
    reasons = [e["reason"] for e in await _history(api, payment_id)]
    assert reasons[-1] == "caller could not be returned to the agent: caller hung up, agent released"


async def test_callback_cancel_still_hangs_up_the_dialled_call(api: Api, fake_ami: FakeAmi) -> None:
    status, body = await api.post_order()
    assert status == 201, body
    originate = await fake_ami.received("Originate")  # ringing: no OriginateResponse yet
    status, body = await api.request("POST", f"/v1/payments/{body['id']}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    assert [h["Channel"] for h in fake_ami.sent("Hangup")] == [originate["ChannelId"]]
    assert len(fake_ami.sent("Redirect")) == 0
