"""Our ISO 8583 messages and framing: round trips, the bytes on the wire, errors, reprs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import iso8583
import pytest

from ivr.hostlink.framing import MAX_FRAME, ConnectionClosed, FramingError, read_frame, write_frame
from ivr.hostlink.messages import (
    EchoRequest,
    EchoResponse,
    Iso8583Error,
    PurchaseRequest,
    PurchaseResponse,
    ResponseCode,
    ReversalRequest,
    ReversalResponse,
    decode_message,
    transmission_datetime,
)
from ivr.hostlink.spec import VOICEPAY_SPEC

PAN = "6221881000000011"
PIN_BLOCK = bytes.fromhex("E4BE5B623AF7E006AC319E5B93544564")
CVV2_BLOCK = bytes.fromhex("00112233445566778899AABBCCDDEEFF0011223344556677889900AABBCCDD")
CREDIT_PAN = "6259061000000015"
NOW = datetime(2025, 3, 7, 9, 5, 1, tzinfo=timezone.utc)


def purchase(**changes: object) -> PurchaseRequest:
    fields: dict[str, object] = dict(
        pan=PAN,
        amount=12345,
        stan="000042",
        transmission="0307090501",
        local_time="170501",
        local_date="0307",
        terminal_id="VPIVR001",
        merchant_id="898100048160001",
        pin_block=PIN_BLOCK,
        expiry="3012",
    )
    fields.update(changes)
    return PurchaseRequest(**fields)  # type: ignore[arg-type]


def all_messages() -> list[object]:
    request = purchase()
    return [
        request,
        purchase(expiry=None, pan="6221882000000000017"),
        purchase(pan=CREDIT_PAN, pin_block=None, expiry="2911", cvv2_block=CVV2_BLOCK),
        purchase(pan=CREDIT_PAN, expiry="2911", cvv2_block=CVV2_BLOCK),  # PIN and CVV2 both
        purchase(pin_block=None),  # neither: well-formed, the acquirer answers 12
        PurchaseResponse.for_request(request, ResponseCode.APPROVED, "503070900001", "123456"),
        PurchaseResponse.for_request(request, ResponseCode.INCORRECT_PIN, "503070900002", "123456"),
        ReversalRequest.for_purchase(request, now=NOW),
        ReversalResponse.for_request(ReversalRequest.for_purchase(request, now=NOW), ResponseCode.APPROVED),
        EchoRequest(stan="000007", transmission="0307090501"),
        EchoResponse(stan="000007", transmission="0307090501"),
    ]


@pytest.mark.parametrize("message", all_messages(), ids=lambda m: type(m).__name__)
def test_round_trip(message) -> None:  # type: ignore[no-untyped-def]
    raw = message.encode()
    assert type(message).decode(raw) == message
    assert decode_message(raw) == message


def test_purchase_wire_format() -> None:
    raw = purchase().encode()
    assert raw[:4] == b"0200"
    decoded, encoded = iso8583.decode(raw, VOICEPAY_SPEC)
    # The whole message, byte by byte: test_published_vectors.py::test_purchase_golden_bytes.
    fields = {k for k in decoded if k.isdigit()}
    assert fields == {"2", "3", "4", "7", "11", "12", "13", "14", "22", "41", "42", "49", "52"}
    bitmap = int(raw[4:20], 16)
    for field in (2, 3, 4, 7, 11, 12, 13, 14, 22, 41, 42, 49, 52):
        assert bitmap & (1 << (64 - field)), field
    assert not bitmap & (1 << 63)  # no secondary bitmap
    assert encoded["2"] == {"len": b"16", "data": PAN.encode()}
    assert encoded["4"]["data"] == b"000000012345"
    assert encoded["3"]["data"] == b"000000"
    assert encoded["22"]["data"] == b"012"
    assert encoded["49"]["data"] == b"156"
    # Field 52 is the 16 raw bytes of the format 4 block, at the very end.
    assert encoded["52"]["data"] == PIN_BLOCK
    assert raw.endswith(PIN_BLOCK)


def test_credit_purchase_wire_format() -> None:
    request = purchase(pan=CREDIT_PAN, pin_block=None, expiry="2911", cvv2_block=CVV2_BLOCK)
    raw = request.encode()
    decoded, encoded = iso8583.decode(raw, VOICEPAY_SPEC)
    assert {k for k in decoded if k.isdigit()} == {
        "2", "3", "4", "7", "11", "12", "13", "14", "22", "41", "42", "48", "49"
    }
    assert not int(raw[4:20], 16) & (1 << 63)  # still no secondary bitmap
    # Field 48 is LLL + the 31 raw bytes of the CVV2 block; field 14 is YYMM.
    assert encoded["48"] == {"len": b"031", "data": CVV2_BLOCK}
    assert encoded["14"]["data"] == b"2911"
    assert raw.count(CVV2_BLOCK) == 1 and CVV2_BLOCK.hex().encode() not in raw.lower()
    # A reversal never carries the CVV2 (nor the PIN block).
    reversal_fields, _ = iso8583.decode(ReversalRequest.for_purchase(request).encode(), VOICEPAY_SPEC)
    assert "48" not in reversal_fields and "52" not in reversal_fields


def test_create_takes_expiry_and_cvv2_block() -> None:
    request = PurchaseRequest.create(
        pan=CREDIT_PAN, amount=1, stan="000001", terminal_id="VPIVR001", merchant_id="898100048160001",
        expiry="2911", cvv2_block=bytearray(CVV2_BLOCK), now=NOW,
    )
    assert request.pin_block is None and request.cvv2_block == CVV2_BLOCK and request.expiry == "2911"
    assert isinstance(request.cvv2_block, bytes)


def test_response_does_not_echo_the_pan_and_auth_code_only_when_approved() -> None:
    request = purchase()
    approved = PurchaseResponse.for_request(request, ResponseCode.APPROVED, "503070900001", "654321")
    declined = PurchaseResponse.for_request(request, ResponseCode.INSUFFICIENT_FUNDS, "503070900002", "654321")
    approved_fields, _ = iso8583.decode(approved.encode(), VOICEPAY_SPEC)
    declined_fields, _ = iso8583.decode(declined.encode(), VOICEPAY_SPEC)
    assert approved_fields["t"] == "0210" and approved_fields["39"] == "00" and approved_fields["38"] == "654321"
    assert "2" not in approved_fields and PAN.encode() not in approved.encode()
    assert "38" not in declined_fields and declined_fields["39"] == "51"
    assert approved.approved and not declined.approved


def test_reversal_names_the_original() -> None:
    request = purchase()
    reversal = ReversalRequest.for_purchase(request, now=NOW)
    fields, _ = iso8583.decode(reversal.encode(), VOICEPAY_SPEC)
    assert fields["t"] == "0400"
    assert "52" not in fields
    assert fields["90"] == "0200" + "000042" + "0307090501" + "0" * 22
    assert fields["7"] == "0307090501" == transmission_datetime(NOW)
    assert reversal.original_key == request.key


def test_echo_uses_network_management_code_301() -> None:
    raw = EchoRequest(stan="000007", transmission="0307090501").encode()
    fields, _ = iso8583.decode(raw, VOICEPAY_SPEC)
    assert fields["t"] == "0800" and fields["70"] == "301" and "1" in fields  # secondary bitmap
    response, _ = iso8583.decode(EchoResponse("000007", "0307090501").encode(), VOICEPAY_SPEC)
    assert response["t"] == "0810" and response["39"] == "00"


def test_create_stamps_the_time() -> None:
    request = PurchaseRequest.create(
        pan=PAN, amount=1, pin_block=PIN_BLOCK, stan="000001", terminal_id="VPIVR001",
        merchant_id="898100048160001", now=NOW,
    )
    assert request.transmission == "0307090501"
    local = NOW.astimezone()
    assert (request.local_date, request.local_time) == (local.strftime("%m%d"), local.strftime("%H%M%S"))


def test_repr_masks_pan_and_hides_pin_block() -> None:
    for message in (purchase(), ReversalRequest.for_purchase(purchase())):
        text = repr(message) + str(message)
        assert PAN not in text and "622188******0011" in text
        assert PIN_BLOCK.hex() not in text.lower() and repr(PIN_BLOCK) not in text
        assert "3012" not in text


def test_repr_hides_cvv2_block_and_expiry() -> None:
    message = purchase(pan=CREDIT_PAN, pin_block=None, expiry="2911", cvv2_block=CVV2_BLOCK)
    text = repr(message) + str(message)
    assert CREDIT_PAN not in text and "625906******0015" in text
    assert CVV2_BLOCK.hex() not in text.lower() and repr(CVV2_BLOCK) not in text
    assert "2911" not in text and "cvv2_block=<hidden>" in text and "pin_block=None" in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pan": "12345"}, "pan must be"),
        ({"amount": -1}, "amount must be"),
        ({"amount": 10**12}, "amount must be"),
        ({"stan": "42"}, "stan must be 6 digits"),
        ({"terminal_id": "SHORT"}, "terminal_id must be 8"),
        ({"merchant_id": "X" * 16}, "merchant_id must be 15"),
        ({"pin_block": PIN_BLOCK[:8]}, "pin_block must be 16 bytes"),
        ({"expiry": "30-12"}, "expiry must be 4 digits"),
        ({"cvv2_block": CVV2_BLOCK[:30]}, "cvv2_block must be 31 bytes"),
        ({"cvv2_block": "398"}, "cvv2_block must be 31 bytes"),
    ],
)
def test_invalid_fields(changes: dict[str, object], message: str) -> None:
    with pytest.raises(Iso8583Error, match=message) as excinfo:
        purchase(**changes)
    assert PAN not in str(excinfo.value)


def test_decode_errors_never_carry_bytes() -> None:
    raw = purchase().encode()
    cases = [
        (raw[:-4], "malformed message at field 52"),
        (raw[:30], "malformed message"),
        (b"garbage", "unsupported message type"),
    ]
    for bad, message in cases:
        with pytest.raises(Iso8583Error, match=message) as excinfo:
            decode_message(bad)
        assert PAN not in str(excinfo.value) and excinfo.value.__cause__ is None
        assert excinfo.value.__suppress_context__ or excinfo.value.__context__ is None
    response = PurchaseResponse.for_request(purchase(), ResponseCode.APPROVED, "1" * 12, "1" * 6)
    with pytest.raises(Iso8583Error, match="expected MTI 0200, got 0210"):
        PurchaseRequest.decode(response.encode())
    # Without field 52 it is still a purchase (a credit card needs no PIN); the acquirer decides.
    doc = {k: v for k, v in iso8583.decode(raw, VOICEPAY_SPEC)[0].items() if k not in ("52", "p")}
    no_pin, _ = iso8583.encode(doc, VOICEPAY_SPEC)
    assert PurchaseRequest.decode(bytes(no_pin)).pin_block is None
    # A CVV2 block of the wrong length is an error naming field 48, never showing it.
    doc["48"] = CVV2_BLOCK[:20].hex()
    short, _ = iso8583.encode(doc, VOICEPAY_SPEC)
    with pytest.raises(Iso8583Error, match="cvv2_block must be 31 bytes") as excinfo:
        PurchaseRequest.decode(bytes(short))
    assert CVV2_BLOCK[:20].hex() not in str(excinfo.value).lower()


def test_response_codes() -> None:
    expected = {"00", "05", "12", "13", "14", "25", "30", "51", "54", "55", "61", "62", "75", "82", "91", "94", "96"}
    assert expected <= {code.value for code in ResponseCode}
    assert ResponseCode("55") is ResponseCode.INCORRECT_PIN
    assert ResponseCode.INCORRECT_PIN.description == "Incorrect PIN"
    assert ResponseCode("82") is ResponseCode.BAD_CVV2
    assert ResponseCode.BAD_CVV2.description == "CVV2 verification failed"
    assert ResponseCode.APPROVED == "00" and ResponseCode.APPROVED.approved
    assert all(code.description for code in ResponseCode)
    with pytest.raises(ValueError):
        ResponseCode("99")


# --- framing --------------------------------------------------------------------------------


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_frames_in_sequence() -> None:
    first, second = purchase().encode(), EchoRequest("000001", "0307090501").encode()
    reader = _reader(len(first).to_bytes(2, "big") + first + len(second).to_bytes(2, "big") + second)
    assert await read_frame(reader) == first
    assert await read_frame(reader) == second
    with pytest.raises(ConnectionClosed):
        await read_frame(reader)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "inside a length prefix"),
        (b"\x00\x10abc", "after 3 of 16 bytes"),
        (b"\x00\x00", "empty frame"),
        ((MAX_FRAME + 1).to_bytes(2, "big"), "exceeds"),
    ],
)
async def test_read_frame_errors(data: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message) as excinfo:
        await read_frame(_reader(data))
    assert not isinstance(excinfo.value, ConnectionClosed)


class _Writer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


async def test_write_frame_prefixes_length_in_one_write() -> None:
    writer = _Writer()
    payload = purchase().encode()
    write_frame(writer, payload)  # type: ignore[arg-type]
    assert writer.chunks == [len(payload).to_bytes(2, "big") + payload]
    assert await read_frame(_reader(writer.chunks[0])) == payload
    with pytest.raises(FramingError, match="exceeds"):
        write_frame(writer, b"x" * (MAX_FRAME + 1))  # type: ignore[arg-type]
    with pytest.raises(FramingError, match="empty"):
        write_frame(writer, b"")  # type: ignore[arg-type]


async def test_framing_over_a_real_socket() -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_frame(reader))
        write_frame(writer, b"pong")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    write_frame(writer, b"ping")
    await writer.drain()
    assert await read_frame(reader) == b"pong"
    assert received == [b"ping"]
    writer.close()
    server.close()
    await server.wait_closed()
