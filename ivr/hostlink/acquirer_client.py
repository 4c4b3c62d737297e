"""The IVR's side of the host link: authorize a purchase, reverse it when the answer is lost.

A purchase whose answer never arrives may still have been charged, so every such case (timeout,
connection lost after sending, unreadable answer) sends a reversal before raising. The caller then
knows the payment did not go through and the cardholder was not charged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import suppress

from ivr.hostlink.framing import FramingError, read_frame, write_frame
from ivr.hostlink.messages import (
    EchoRequest,
    EchoResponse,
    Iso8583Error,
    PurchaseRequest,
    PurchaseResponse,
    ResponseCode,
    ReversalRequest,
    ReversalResponse,
    transmission_datetime,
)
from ivr.hostlink.adjustments import (AdjustmentReversal, RefundRequest, RefundResponse,
                                      VoidRequest, VoidResponse)

__all__ = [
    "AcquirerError",
    "AcquirerUnavailable",
    "IssuerTimeout",
    "AcquirerProtocolError",
    "AcquirerClient",
]

log = logging.getLogger("ivr.hostlink.acquirer_client")

# A reversal the acquirer answered 25 found no original: nothing was charged, which is the point.
_REVERSAL_DONE = frozenset({ResponseCode.APPROVED, ResponseCode.ORIGINAL_NOT_FOUND})


class AcquirerError(Exception):
    """The authorization did not complete. Messages carry STANs, never card data."""

    def __init__(self, message: str, *, reversed: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        # True once the acquirer acknowledged a reversal of this purchase.
        self.reversed = reversed
        # False only when the purchase never left this process (no connection): nothing to undo.
        self.sent = sent


class AcquirerUnavailable(AcquirerError):
    """The acquirer could not be reached, or dropped the connection before answering."""


class IssuerTimeout(AcquirerError):
    """No answer within the timeout; a reversal was sent (see ``reversed``)."""


class AcquirerProtocolError(AcquirerError):
    """The acquirer answered something that is not the answer to our request."""


class _NoAnswer(Exception):
    pass


class AcquirerClient:
    def __init__(self, host: str, port: int, timeout: float, *, reversal_attempts: int = 3) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._reversal_attempts = reversal_attempts
        self._echo_stan = secrets.randbelow(1_000_000)

    def __repr__(self) -> str:
        return f"AcquirerClient({self._host}:{self._port}, timeout={self._timeout})"

    async def authorize(self, request: PurchaseRequest) -> PurchaseResponse:
        """The acquirer's answer, approved or declined; AcquirerError if there is none."""
        raw = request.encode()
        reader, writer = await self._connect()
        try:
            try:
                write_frame(writer, raw)
                await writer.drain()
                answer = await asyncio.wait_for(read_frame(reader), self._timeout)
            except TimeoutError:
                reversed_ = await self.reverse(request)
                raise IssuerTimeout(
                    f"no answer to stan {request.stan} within {self._timeout}s", reversed=reversed_
                ) from None
            except (FramingError, OSError):
                reversed_ = await self.reverse(request)
                raise AcquirerUnavailable(
                    f"connection lost before the answer to stan {request.stan}", reversed=reversed_
                ) from None
        finally:
            await _close(writer)

        try:
            response = PurchaseResponse.decode(answer)
        except Iso8583Error as exc:
            reversed_ = await self.reverse(request)
            raise AcquirerProtocolError(f"unreadable answer to stan {request.stan}: {exc}", reversed=reversed_) from None
        if (response.stan, response.terminal_id, response.transmission) != (
            request.stan,
            request.terminal_id,
            request.transmission,
        ):
            reversed_ = await self.reverse(request)
            raise AcquirerProtocolError(f"answer does not match stan {request.stan}", reversed=reversed_)
        return response

    async def reverse(self, request: PurchaseRequest) -> bool:
        """Reverse ``request``, retrying a few times; True once the acquirer acknowledges it."""
        return await self.reversal_answer(request) is not None

    async def reversal_answer(self, request: PurchaseRequest) -> ResponseCode | None:
        """Reverse ``request``; the acknowledging code (00 undone, 25 never arrived) or None.

        Every attempt sends the same message, so the acquirer treats retries as duplicates.
        """
        return await self._reversal_acknowledged(ReversalRequest.for_purchase(request).encode(),
                                                 request.stan)

    async def _reversal_acknowledged(self, raw: bytes, stan: str) -> ResponseCode | None:
        """Send the 0400 ``raw`` until acknowledged (00 or 25), a few times; the code or None."""
        for attempt in range(1, self._reversal_attempts + 1):
            try:
                answer = ReversalResponse.decode(await self._exchange(raw))
            except (AcquirerError, _NoAnswer, Iso8583Error) as exc:
                log.warning("reversal of stan %s, attempt %d: %s", stan, attempt, type(exc).__name__)
            else:
                if answer.response_code in _REVERSAL_DONE:
                    log.info("reversal of stan %s acknowledged (%s)", stan, answer.response_code.value)
                    return answer.response_code
                log.warning("reversal of stan %s refused (%s)", stan, answer.response_code.value)
            await asyncio.sleep(min(0.2 * attempt, 1.0))
        log.error("reversal of stan %s not acknowledged after %d attempts", stan, self._reversal_attempts)
        return None

    async def give_back(self, request: VoidRequest | RefundRequest) -> PurchaseResponse:
        """The acquirer's answer to a void (0210) or refund (0230); AcquirerError if there is none
        (``sent`` False when it never left). Unlike ``authorize`` it does not reverse on its own:
        the caller first records that a reversal is due, so a crash in between loses nothing
        (ivr/refunds/service.py)."""
        answer_type = RefundResponse if isinstance(request, RefundRequest) else VoidResponse
        try:
            answer = answer_type.decode(await self._exchange(request.encode()))
        except _NoAnswer:
            raise AcquirerUnavailable(f"no answer to stan {request.stan}") from None
        except Iso8583Error as exc:
            raise AcquirerProtocolError(f"unreadable answer to stan {request.stan}: {exc}") from None
        if (answer.terminal_id, answer.stan, answer.transmission) != request.key:
            raise AcquirerProtocolError(f"answer does not match stan {request.stan}")
        return answer

    async def reverse_adjustment(self, reversal: AdjustmentReversal) -> ResponseCode | None:
        """Reverse a void or refund (0400), retrying a few times; 00 (undone) or 25 (it never
        arrived) once acknowledged, None if not (the caller keeps it due)."""
        return await self._reversal_acknowledged(reversal.encode(), reversal.stan)

    async def echo(self) -> bool:
        """True if the acquirer answers a network echo test with 00."""
        self._echo_stan = (self._echo_stan + 1) % 1_000_000
        request = EchoRequest(stan=f"{self._echo_stan:06d}", transmission=transmission_datetime())
        try:
            response = EchoResponse.decode(await self._exchange(request.encode()))
        except (AcquirerError, _NoAnswer, Iso8583Error):
            return False
        return response.stan == request.stan and response.response_code.approved

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(self._host, self._port), self._timeout)
        except (OSError, TimeoutError):
            raise AcquirerUnavailable(f"cannot reach the acquirer at {self._host}:{self._port}",
                                      sent=False) from None

    async def _exchange(self, raw: bytes) -> bytes:
        """One request and its answer on a fresh connection."""
        reader, writer = await self._connect()
        try:
            write_frame(writer, raw)
            await writer.drain()
            return await asyncio.wait_for(read_frame(reader), self._timeout)
        except (TimeoutError, FramingError, OSError):
            raise _NoAnswer from None
        finally:
            await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
