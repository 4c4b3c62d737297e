"""The merchant API under load: signed orders per second, then ``GET /v1/payments/{id}`` per
second on the payments they made, each at rising concurrency against the running stack.

A step runs ``concurrency`` clients in a closed loop for a few seconds (each sends its next
request when its last is answered, over keep-alive connections), every request signed as a
merchant's own system would sign it (``merchant_auth.signed_headers``, a fresh nonce each). It
reports answers per second, p50/p99 latency, every status seen, and the CPU of the ivr service,
Redis, the identity simulators and this load generator as a share of one core: the ivr service
is one asyncio process, so near 100 % it is the limit.

Callbacks are not placed: for the steps, the operator puts the orders' merchant on the risk
review list (``review:merchant``, the operator's API), as an operator holding a merchant's
payments would. So every order goes the whole way (signature, nonce, rate limits, parsing, the
merchant's daily total, the payment with its card number encrypted, every risk rule with both
identity providers asked) and is held in ``risk_review`` instead of being scheduled for a call.
The entry is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from bench.load.measure import ApiStep, api_step
from bench.load.steps import Probes
from ivr.api.merchant_auth import signed_headers
from ivr.config import Settings
from ivr.merchants import MerchantRegistry
from simulators.acquirer.testcards import find_test_card
from simulators.identity.registry import find_test_identity

__all__ = ["SERVICES", "Api", "Request", "order_body", "run_api_steps", "API_HEADER", "api_row"]

# The processes an order or a read makes work, whose CPU a step reports; "client" is this one.
SERVICES = ("ivr", "redis", "police", "binding")
MERCHANT = "M100002"  # a seed merchant, held for review during the steps
_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


def order_body(merchant_order_id: str, mobile: str, card_name: str = "approve_19") -> bytes:
    """A well-formed callback order for ¥1.00 (a test card, the demo test identity)."""
    identity = find_test_identity("demo")
    return json.dumps({
        "merchant_order_id": merchant_order_id, "amount": "1.00", "description": "Bench order",
        "card_number": find_test_card(card_name).pan, "cardholder_name": identity.names[0],
        "id_number": identity.id_number, "mobile": mobile, "mode": "callback"}).encode()


class Api:
    """The stack's HTTP API as a merchant's system and the operator use it."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.base = f"http://{settings.http_host}:{settings.http_port}"
        self.session = session
        self._keys = MerchantRegistry.load(settings)
        self._operator = {"Authorization": "Bearer " + settings.operator_token_file.read_text(
            encoding="ascii").strip()}

    def signed(self, merchant: str, method: str, path: str, body: bytes | None = None) -> Request:
        headers = signed_headers(merchant, self._keys.get(merchant).key, method, path, body or b"")
        if body is not None:
            headers["Content-Type"] = "application/json"
        return Request(method, path, body, headers)

    def operator(self, method: str, path: str, body: dict | None = None) -> Request:
        raw = json.dumps(body).encode() if body is not None else None
        return Request(method, path, raw, {**self._operator, "Content-Type": "application/json"})

    async def send(self, request: Request) -> tuple[int, bytes]:
        """(status, body); status 0 when no HTTP answer came (refused, reset, timed out)."""
        try:
            async with self.session.request(request.method, self.base + request.path,
                                            data=request.body, headers=request.headers) as answer:
                return answer.status, await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, b""

    @contextlib.asynccontextmanager
    async def held_for_review(self, merchant: str) -> AsyncIterator[None]:
        """While inside, ``merchant``'s orders are held in ``risk_review`` (the operator's review
        list): made in full, no call placed. The entry is removed on the way out."""
        path = "/v1/admin/risk/lists/review/merchant"
        status, body = await self.send(self.operator("POST", path, {
            "value": merchant, "note": "load benchmark: its orders are held, no call is placed"}))
        if status != 201:
            raise SystemExit(f"could not put {merchant} on the review list: {status} {body[:200]!r}")
        try:
            yield
        finally:
            await self.send(self.operator("DELETE", f"{path}/{json.loads(body)['digest']}"))

    async def closed_loop(self, request_of: Callable[[int], Request], concurrency: int,
                          seconds: float, on_answer: Callable[[int, bytes], None] | None = None,
                          ) -> tuple[list[tuple[int, float]], float]:
        """``concurrency`` clients sending ``request_of(n)`` (n counting up across them) until
        ``seconds`` have passed: every (status, ms), and the wall time to the last answer."""
        loop = asyncio.get_running_loop()
        numbers = itertools.count()
        samples: list[tuple[int, float]] = []
        started = loop.time()
        deadline = started + seconds

        async def client() -> None:
            while loop.time() < deadline:
                request = request_of(next(numbers))  # signed now: its timestamp is fresh
                sent = time.perf_counter()
                status, body = await self.send(request)
                samples.append((status, 1000 * (time.perf_counter() - sent)))
                if on_answer is not None:
                    on_answer(status, body)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return samples, loop.time() - started


async def _step(api: Api, probes: Probes, name: str, expected: int, concurrency: int,
                seconds: float, request_of: Callable[[int], Request],
                on_answer: Callable[[int, bytes], None] | None = None) -> ApiStep:
    before = {**probes.cpu(SERVICES), "client": time.process_time()}
    wait_before = probes.run_queue(("ivr",))
    samples, elapsed = await api.closed_loop(request_of, concurrency, seconds, on_answer)
    after = {**probes.cpu(SERVICES), "client": time.process_time()}
    return api_step(name, concurrency, expected, samples, elapsed, before, after, wait_before,
                    probes.run_queue(("ivr",)))


async def run_api_steps(settings: Settings, probes: Probes, concurrencies: list[int],
                        seconds: float, report: Callable[[ApiStep], None]) -> list[ApiStep]:
    """The orders steps, then the reads on the payments they made; each reported as it ends."""
    run = f"{int(time.time()) % 100000:05d}"
    created: list[str] = []
    held: Counter[str] = Counter()  # the created payments' states: risk_review, not a call

    def keep_id(status: int, body: bytes) -> None:
        if status == 201:
            payment = json.loads(body)
            created.append(payment["id"])
            held[payment["status"]] += 1

    def order(n: int) -> Request:
        return api.signed(MERCHANT, "POST", "/v1/payments",
                          order_body(f"B{run}N{n:07d}", f"139{int(run) % 1000:03d}{n % 100000:05d}"))

    def read(n: int) -> Request:
        return api.signed(MERCHANT, "GET", f"/v1/payments/{created[n % len(created)]}")

    steps: list[ApiStep] = []
    connector = aiohttp.TCPConnector(limit=max(concurrencies))
    async with aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT) as session:
        api = Api(settings, session)
        async with api.held_for_review(MERCHANT):
            for concurrency in concurrencies:
                steps.append(await _step(api, probes, "orders", 201, concurrency, seconds, order,
                                         keep_id))
                report(steps[-1])
        print("orders made: " + ", ".join(f"{count} {state}" for state, count in held.items()),
              flush=True)
        if not created:
            raise SystemExit("no order was accepted: nothing to read")
        for concurrency in concurrencies:
            steps.append(await _step(api, probes, "get", 200, concurrency, seconds, read))
            report(steps[-1])
    return steps


API_HEADER = (f"{'api':<7} {'conc':>5} {'answers':>8} {'ok/s':>8} {'p50 ms':>8} {'p99 ms':>8}  "
              f"{'ivr %':>6} {'ivr wait %':>10} {'redis %':>7} {'police %':>8} {'binding %':>9} "
              f"{'client %':>8}  statuses")


def api_row(step: ApiStep) -> str:
    def ms(value: float | None) -> str:
        return f"{value:8.1f}" if value is not None else f"{'-':>8}"
    cpu = step.cpu_percent
    statuses = " ".join(f"{status}:{count}" for status, count in step.statuses.items())
    return (f"{step.name:<7} {step.concurrency:>5} {step.answers:>8} {step.ok_per_s:>8.1f} "
            f"{ms(step.p50_ms)} {ms(step.p99_ms)}  {cpu['ivr']:>6.0f} "
            f"{step.run_queue_percent['ivr']:>10.0f} {cpu['redis']:>7.0f} "
            f"{cpu['police']:>8.0f} {cpu['binding']:>9.0f} {cpu['client']:>8.0f}  {statuses}")
