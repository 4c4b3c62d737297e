"""The acquirer simulator over real TCP, through the IVR's client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.hostlink.bin_table import BinTable
from ivr.hostlink.acquirer_client import AcquirerClient, AcquirerUnavailable, IssuerTimeout
from ivr.payments.settlement_day import Cutoff
from ivr.settlement.zm_file import ZmFile
from simulators.acquirer.daily_file import DailyFilePublisher
from simulators.acquirer.settings import load_acquirer_settings
from simulators.acquirer.server import AcquirerServer, build_simulator, journal_path
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import TestCard, find_test_card
from tests.integration.test_dialer import until
from ivr.config import REPO_ROOT, Settings, load_settings
from ivr.crypto.cvv2 import encrypt_cvv2
from ivr.crypto.keys import load_ivr_keys
from ivr.crypto.pinblock import pinblock_from_digits
from ivr.hostlink.framing import read_frame, write_frame
from ivr.hostlink.messages import EchoRequest, EchoResponse, PurchaseRequest, PurchaseResponse, ResponseCode

IVR = load_settings()  # the terminal and merchant ids the IVR sends
ISSUER_DELAY = 0.8
CLIENT_TIMEOUT = 0.25


@dataclass
class Acquirer:
    settings: Settings
    simulator: AcquirerSimulator
    server: AcquirerServer
    client: AcquirerClient
    pek: bytes
    cvv_key: bytes
    stan: int = 0

    def purchase(self, card: TestCard, amount: int = 1000, pin: str | None = None) -> PurchaseRequest:
        self.stan += 1
        return PurchaseRequest.create(
            pan=card.pan,
            amount=amount,
            # As the IVR does it: from the keypad buffer, which is wiped afterwards.
            pin_block=pinblock_from_digits(self.pek, bytearray((pin or card.pin).encode()), card.pan),
            stan=f"{self.stan:06d}",
            terminal_id=IVR.terminal_id,
            merchant_id=IVR.merchant_id,
        )

    def credit(
        self, card: TestCard, amount: int = 1000, *, keyed_expiry: str | None = None, cvv2: str | None = None
    ) -> PurchaseRequest:
        """As the IVR does it for a credit card: expiry keyed MMYY sent as YYMM, CVV2 sealed from
        the keypad buffer (wiped), no PIN."""
        self.stan += 1
        stan = f"{self.stan:06d}"
        mmyy = keyed_expiry or card.expiry[2:] + card.expiry[:2]
        digits = bytearray((cvv2 or card.cvv2 or "").encode())
        request = PurchaseRequest.create(
            pan=card.pan,
            amount=amount,
            stan=stan,
            terminal_id=IVR.terminal_id,
            merchant_id=IVR.merchant_id,
            expiry=mmyy[2:] + mmyy[:2],
            cvv2_block=encrypt_cvv2(self.cvv_key, digits, card.pan, stan),
        )
        assert digits == bytearray(len(digits))
        return request

    def journal(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in journal_path(self.settings).read_text().splitlines()]


@pytest.fixture
async def acquirer(tmp_path: Path) -> AsyncIterator[Acquirer]:
    settings = load_acquirer_settings(var_dir=tmp_path, issuer_delay=ISSUER_DELAY, port=0)
    simulator = build_simulator(settings)
    server = AcquirerServer(simulator, "127.0.0.1", 0)
    await server.start()
    client = AcquirerClient("127.0.0.1", server.port, CLIENT_TIMEOUT)
    try:
        ivr_keys = load_ivr_keys(load_settings(var_dir=tmp_path).ivr_keys_file)
        yield Acquirer(settings, simulator, server, client, ivr_keys.pek, ivr_keys.cvv_key)
    finally:
        await server.close()


async def test_approve(acquirer: Acquirer) -> None:
    card = find_test_card("approve")
    request = acquirer.purchase(card, amount=8800)
    response = await acquirer.client.authorize(request)
    assert response.response_code is ResponseCode.APPROVED
    assert response.stan == request.stan and response.auth_code and len(response.rrn) == 12
    assert acquirer.simulator.balance(card.pan) == card.balance - 8800
    assert acquirer.journal()[-1]["response_code"] == "00"


async def test_declines_come_back_as_answers(acquirer: Acquirer) -> None:
    card = find_test_card("wrong_pin")
    response = await acquirer.client.authorize(acquirer.purchase(card, pin="000000"))
    assert response.response_code is ResponseCode.INCORRECT_PIN and response.auth_code is None


async def test_credit_purchase_round_trip(acquirer: Acquirer) -> None:
    card = find_test_card("credit_approve")
    # The IVR learns the card is credit from the BIN table the acquirer published.
    assert BinTable.load(acquirer.settings.bin_table_file).lookup(card.pan).card_type == "credit"
    request = acquirer.credit(card, amount=4321)
    assert request.pin_block is None and request.cvv2_block is not None
    response = await acquirer.client.authorize(request)
    assert response.response_code is ResponseCode.APPROVED and response.auth_code
    assert response.stan == request.stan and len(response.rrn) == 12
    assert acquirer.simulator.balance(card.pan) == card.balance - 4321
    line = acquirer.journal()[-1]
    assert line["response_code"] == "00" and line["pan"] == "625906******0015"


@pytest.mark.parametrize(
    ("name", "keyed_expiry", "cvv2", "amount", "code"),
    [
        ("credit_approve", None, "111", 1000, ResponseCode.BAD_CVV2),
        ("credit_approve", "1229", None, 1000, ResponseCode.EXPIRED_CARD),
        ("credit_insufficient", None, None, 5001, ResponseCode.INSUFFICIENT_FUNDS),
    ],
)
async def test_credit_declines_over_tcp(
    acquirer: Acquirer, name: str, keyed_expiry: str | None, cvv2: str | None, amount: int, code: ResponseCode
) -> None:
    card = find_test_card(name)
    response = await acquirer.client.authorize(acquirer.credit(card, amount, keyed_expiry=keyed_expiry, cvv2=cvv2))
    assert response.response_code is code and response.auth_code is None
    assert acquirer.simulator.balance(card.pan) == card.balance
    journal = json.dumps(acquirer.journal())
    assert card.pan not in journal and "cvv" not in journal.lower()


async def test_debit_card_without_pin_is_12_over_tcp(acquirer: Acquirer) -> None:
    card = find_test_card("approve")
    request = PurchaseRequest.create(
        pan=card.pan, amount=100, stan="000901", terminal_id=IVR.terminal_id,
        merchant_id=IVR.merchant_id, expiry=card.expiry,
    )
    response = await acquirer.client.authorize(request)
    assert response.response_code is ResponseCode.INVALID_TRANSACTION


async def test_timeout_reverses_and_the_late_original_is_not_charged(acquirer: Acquirer) -> None:
    card = find_test_card("issuer_timeout")
    request = acquirer.purchase(card, amount=6600)
    with pytest.raises(IssuerTimeout) as excinfo:
        await acquirer.client.authorize(request)
    assert excinfo.value.reversed is True
    assert card.pan not in str(excinfo.value) and request.stan in str(excinfo.value)

    reversal = [line for line in acquirer.journal() if line["mti"] == "0400"]
    assert len(reversal) == 1
    assert reversal[0]["response_code"] == "00" and reversal[0]["reversed"] is True
    assert reversal[0]["stan"] == request.stan and reversal[0]["pan"] == "622188******0078"

    # Let the slow issuer finish: the original must end up journaled as reversed, uncharged.
    await asyncio.sleep(ISSUER_DELAY + 0.2)
    original = [line for line in acquirer.journal() if line["mti"] == "0200"]
    assert len(original) == 1 and original[0]["reversed"] is True
    assert original[0]["response_code"] == ResponseCode.ISSUER_UNAVAILABLE.value
    assert acquirer.simulator.balance(card.pan) == card.balance


async def test_a_slow_request_does_not_hold_up_others(acquirer: Acquirer) -> None:
    slow_client = AcquirerClient("127.0.0.1", acquirer.server.port, ISSUER_DELAY * 3)
    slow = asyncio.create_task(slow_client.authorize(acquirer.purchase(find_test_card("issuer_timeout"))))
    await asyncio.sleep(0.05)
    # The order of events, not a duration: the fast answer arrives while the slow one is pending.
    fast = await acquirer.client.authorize(acquirer.purchase(find_test_card("approve")))
    assert fast.approved
    assert not slow.done()
    assert (await slow).approved


async def test_several_requests_on_one_connection_answered_as_ready(acquirer: Acquirer) -> None:
    slow = acquirer.purchase(find_test_card("issuer_timeout"))
    fast = acquirer.purchase(find_test_card("approve"))
    reader, writer = await asyncio.open_connection("127.0.0.1", acquirer.server.port)
    try:
        write_frame(writer, slow.encode())
        write_frame(writer, fast.encode())
        write_frame(writer, EchoRequest("000777", "0101000000").encode())
        await writer.drain()
        answers = [await asyncio.wait_for(read_frame(reader), ISSUER_DELAY * 3) for _ in range(3)]
    finally:
        writer.close()
    # The slow purchase was sent first and is answered last.
    assert PurchaseResponse.decode(answers[-1]).stan == slow.stan
    first_two = {answers[0][:4], answers[1][:4]}
    assert first_two == {b"0210", b"0810"}
    echo = next(a for a in answers if a[:4] == b"0810")
    assert EchoResponse.decode(echo).stan == "000777"


async def test_echo(acquirer: Acquirer) -> None:
    assert await acquirer.client.echo() is True
    assert acquirer.journal()[-1]["mti"] == "0800"


async def test_unreachable_acquirer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AcquirerClient("127.0.0.1", port, CLIENT_TIMEOUT)
    card = find_test_card("approve")
    request = PurchaseRequest.create(
        pan=card.pan, amount=100, pin_block=bytes(16), stan="000001", terminal_id="VPIVR001",
        merchant_id="898100048160001",
    )
    with pytest.raises(AcquirerUnavailable, match="cannot reach"):
        await client.authorize(request)
    assert await client.echo() is False


async def test_server_process_starts_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "VOICEPAY_VAR_DIR": str(tmp_path),
        "VOICEPAY_ACQUIRER_HOST": "127.0.0.1",
        "VOICEPAY_ACQUIRER_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.acquirer"], cwd=REPO_ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        client = AcquirerClient("127.0.0.1", port, 1.0)
        for _ in range(100):
            if await client.echo():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("acquirer simulator did not come up")
        assert (tmp_path / "keys" / "acquirer.json").exists()
        assert (tmp_path / "acquirer" / "cardbook.json").exists()
        assert BinTable.load(tmp_path / "acquirer" / "bin_table.json").lookup("6259061000000015").card_type == "credit"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    log = output.decode()
    assert "mti=0800" in log and "stopping" in log


class _CountingPublisher(DailyFilePublisher):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0

    def publish(self, day=None):
        self.writes += 1
        return super().publish(day)


async def _with_daily_files(tmp_path: Path, publisher_class=_CountingPublisher):
    settings = load_acquirer_settings(var_dir=tmp_path, issuer_delay=ISSUER_DELAY, port=0)
    simulator = build_simulator(settings)
    publisher = publisher_class(simulator, settings.daily_files_dir,
                                Cutoff.parse(settings.settlement_cutoff))
    server = AcquirerServer(simulator, "127.0.0.1", 0, daily_files=publisher)
    await server.start()
    ivr_keys = load_ivr_keys(load_settings(var_dir=tmp_path).ivr_keys_file)
    acquirer = Acquirer(settings, simulator, server,
                        AcquirerClient("127.0.0.1", server.port, 5.0), ivr_keys.pek,
                        ivr_keys.cvv_key)
    return acquirer, publisher


def _records_in_daily_file(acquirer: Acquirer) -> int:
    files = sorted(acquirer.settings.daily_files_dir.glob("*"))
    return sum(len(ZmFile.decode(path.read_bytes()).records) for path in files)


async def test_the_daily_file_is_rewritten_once_for_a_burst_of_purchases(tmp_path: Path) -> None:
    """The day's file is rebuilt from every transaction of the day: rebuilt for each message,
    a busy day cost the simulator more per message the longer it ran (a load benchmark saw it
    take more CPU per payment than the ivr service). A burst of purchases is written once,
    whole, soon after; a purchase just before the server closes is in the file too."""
    acquirer, publisher = await _with_daily_files(tmp_path)
    try:
        card = find_test_card("approve")
        answers = await asyncio.gather(*(acquirer.client.authorize(acquirer.purchase(card, 100))
                                         for _ in range(20)))
        assert {answer.response_code for answer in answers} == {ResponseCode.APPROVED}
        await until(lambda: _records_in_daily_file(acquirer) == 20, 5)
        assert _records_in_daily_file(acquirer) == 20
        assert publisher.writes <= 3, publisher.writes
        await acquirer.client.authorize(acquirer.purchase(card, 100))
    finally:
        await acquirer.server.close()
    assert _records_in_daily_file(acquirer) == 21


class _SlowPublisher(_CountingPublisher):
    def publish(self, day=None):
        time.sleep(0.1)  # a long day's file: rebuilding it takes a while
        return super().publish(day)


async def test_a_day_file_slow_to_rebuild_is_rebuilt_less_often(tmp_path: Path) -> None:
    """Rebuilding takes at most a twentieth of the simulator's time: after a rebuild of 0.1 s
    the next waits about 1.9 s, not half a second (a 30-minute soak's growing file cost it more
    CPU per payment than the ivr service spent)."""
    acquirer, publisher = await _with_daily_files(tmp_path, _SlowPublisher)
    try:
        card = find_test_card("approve")
        await acquirer.client.authorize(acquirer.purchase(card, 100))
        await until(lambda: publisher.writes == 1, 5)
        assert publisher.writes == 1
        await acquirer.client.authorize(acquirer.purchase(card, 100))
        await asyncio.sleep(1.2)
        assert publisher.writes == 1  # at half a second it would have been rewritten by now
        await until(lambda: publisher.writes == 2, 5)
        assert publisher.writes == 2 and _records_in_daily_file(acquirer) == 2
    finally:
        await acquirer.server.close()
