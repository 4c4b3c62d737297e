"""Huge requests are refused early: a 100 MB body or header never gets read, let alone kept.

The HTTP edge reads at most ``MAX_BODY`` bytes of a body (aiohttp's ``client_max_size``, counted
after decompression, so a gzip bomb stops there too) and answers 413 ``body-too-large`` as a
documented JSON error; a header line longer than aiohttp's 8190-byte limit ends the request at
the parser. Each test streams its 100 MB only as far as the server reads it, and proves the
server answered long before: by the bytes sent, never by a clock.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from ivr.api.merchant_auth import signed_headers
from ivr.api.merchant_routes import OPENAPI_FILE
from ivr.api.routes import MAX_BODY
from tests.integration.test_merchant_api import ORDER, Api, api  # noqa: F401  (api: the fixture)

HUGE = 100 * 1024 * 1024
CHUNK = 64 * 1024
# Loopback socket buffers hold a few MB however early the server answers; 100 MB never fit.
EARLY = 16 * 1024 * 1024
FAKE = pytest.mark.parametrize("api", ["fake"], indirect=True)


async def _stream_until_answered(api: Api, head: bytes, chunk: bytes) -> tuple[bytes, int]:
    """Send ``head``, then ``chunk`` after ``chunk`` up to HUGE bytes, stopping as soon as the
    server answers (or stops reading): the first line of its answer and how much was sent."""
    host, port = api.client.server.host, api.client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    answer = asyncio.ensure_future(reader.readline())
    sent = 0
    try:
        writer.write(head)
        while sent < HUGE and not answer.done():
            writer.write(chunk)
            sent += len(chunk)
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drained, answer}, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()  # the server answered and stopped reading: stop writing
        return await answer, sent
    finally:
        answer.cancel()
        writer.close()


@FAKE
async def test_a_100_mb_body_is_refused_as_a_documented_error(api: Api) -> None:
    path = "/v1/payments"
    headers = signed_headers("M100001", api.key("M100001"), "POST", path, b"")
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {HUGE}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n").encode()
    status_line, sent = await _stream_until_answered(api, head, b" " * CHUNK)
    assert status_line.split(b" ")[1] == b"413", status_line
    assert sent < EARLY, f"the server read {sent} bytes before answering"
    assert await api.payment_count() == 0


@FAKE
async def test_over_the_limit_is_413_body_too_large_in_json(api: Api) -> None:
    body = json.dumps({**ORDER, "description": "x" * MAX_BODY}).encode()
    status, answer = await api.request("POST", "/v1/payments", body=body)
    assert status == 413 and answer["error_id"] == "body-too-large", answer
    assert str(MAX_BODY) in answer["message"]
    # The operator's writes read their bodies through the same limit.
    status, answer = await api.request(
        "POST", "/v1/admin/merchants", body=b" " * (MAX_BODY + 1), merchant=None,
        headers={"Authorization": f"Bearer {api.operator_token}"})
    assert status == 413 and answer["error_id"] == "body-too-large", answer
    assert (await api.post_order())[0] == 201  # and the service goes on
    document = json.loads(OPENAPI_FILE.read_text())
    for path in ("/v1/payments", "/v1/admin/merchants"):
        assert "413" in document["paths"][path]["post"]["responses"], path


@FAKE
async def test_a_gzip_bomb_stops_at_the_limit(api: Api) -> None:
    bomb = gzip.compress(b" " * (HUGE // 2), compresslevel=9)  # 50 MB in ~50 KB on the wire
    assert len(bomb) < MAX_BODY
    status, answer = await api.request("POST", "/v1/payments", body=bomb,
                                       headers={"Content-Encoding": "gzip"})
    assert status == 413 and answer["error_id"] == "body-too-large", answer


@FAKE
async def test_a_100_mb_header_is_refused_at_the_parser(api: Api) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: "
    status_line, sent = await _stream_until_answered(api, head, b"a" * CHUNK)
    assert status_line.split(b" ")[1] == b"400", status_line
    assert sent < EARLY, f"the server read {sent} bytes of one header before answering"
    assert (await api.post_order())[0] == 201
