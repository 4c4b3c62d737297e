"""The acquirer simulator as a TCP host: length-framed ISO 8583, many requests per connection.

Each request on a connection is handled in its own task, so a purchase held up by a slow issuer
delays only its own answer. Run it with ``python -m simulators.acquirer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ivr.hostlink.bin_table import BinTable
from ivr.payments.settlement_day import Cutoff
from simulators.acquirer.cardbook import CardBook, CardBookError, issue_cards
from simulators.acquirer.daily_file import DailyFilePublisher
from simulators.acquirer.simulator import AcquirerSimulator
from simulators.acquirer.testcards import SEED_PATH
from ivr.log import configure_logging
from ivr.crypto.keyring import KeyFileWatch
from ivr.crypto.keys import AcquirerKeys, generate_dev_keys, load_acquirer_keys
from ivr.hostlink.framing import ConnectionClosed, FramingError, read_frame, write_frame
from simulators.acquirer.settings import AcquirerSettings, load_acquirer_settings

__all__ = ["AcquirerServer", "cardbook_path", "journal_path", "prepare_acquirer", "build_simulator", "main"]

log = logging.getLogger("simulators.acquirer.server")
# How long after a message the day's file is rewritten, with every message of that moment; and
# at most this share of the simulator's time goes to rewriting it: a long day's file takes longer
# to rebuild, so it is rebuilt less often (a 30-minute soak's 14,400 payments cost 22 ms of CPU a
# payment at a fixed half second).
DAILY_FILE_DELAY_S = 0.5
DAILY_FILE_SHARE = 0.05


def cardbook_path(settings: AcquirerSettings) -> Path:
    return settings.files_dir / "cardbook.json"


def journal_path(settings: AcquirerSettings) -> Path:
    return settings.files_dir / "journal.jsonl"


def prepare_acquirer(settings: AcquirerSettings) -> tuple[AcquirerKeys, CardBook]:
    """Dev keys and an issued card book, created on first use and re-issued if the PVK changed.

    Also publishes the BIN table for the IVR at ``settings.bin_table_file``, from the seed.
    """
    if generate_dev_keys(settings.keys_dir):
        log.info("generated or upgraded development keys in %s", settings.keys_dir)
    keys = load_acquirer_keys(settings.keys_file)
    path = cardbook_path(settings)
    try:
        book = CardBook.load(path)
        book.check_pvk(keys.pvk)
    except CardBookError as exc:
        log.info("issuing test cards to %s (%s)", path, exc)
        book = issue_cards(SEED_PATH, keys.pvk, path)
    BinTable.load(SEED_PATH).write(settings.bin_table_file)
    return keys, book


def build_simulator(settings: AcquirerSettings) -> AcquirerSimulator:
    _, book = prepare_acquirer(settings)
    # Re-read on change: `voicepay-keys rotate pek` applies to the next message.
    keys = KeyFileWatch(settings.keys_file, load_acquirer_keys)
    return AcquirerSimulator(keys, book, journal_path(settings), settings.issuer_delay)


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    tasks: set[asyncio.Task[None]]


class AcquirerServer:
    def __init__(self, simulator: AcquirerSimulator, host: str, port: int, *,
                 daily_files: DailyFilePublisher | None = None) -> None:
        self._simulator = simulator
        # Rewrites the day's reconciliation file (daily_file.py) a moment after a message, once
        # for all the messages of that moment: the file is rebuilt from every transaction of
        # the day, so rebuilt for each message it cost more per message the longer a day ran.
        self._daily_files = daily_files
        self._publish_soon: asyncio.TimerHandle | None = None
        self._publish_delay_s = DAILY_FILE_DELAY_S
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def port(self) -> int:
        """The bound port: useful when started on port 0."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("acquirer simulator listening on %s:%s", self._host, self.port)

    async def close(self) -> None:
        """Stop listening, drop connections and abandon requests still waiting for the issuer."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            for task in connection.tasks:
                task.cancel()
            connection.writer.close()
        pending = [task for connection in list(self._connections) for task in connection.tasks]
        await asyncio.gather(*pending, return_exceptions=True)
        if self._publish_soon is not None:  # the last moment's messages reach the file too
            self._publish_soon.cancel()
            self._publish_daily_file()
        if self._server is not None:
            await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> AcquirerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer, set())
        self._connections.add(connection)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    raw = await read_frame(reader)
                except ConnectionClosed:
                    break
                except FramingError as exc:
                    log.warning("dropping connection from %s: %s", peer, exc)
                    break
                task = asyncio.create_task(self._answer(raw, writer))
                connection.tasks.add(task)
                task.add_done_callback(connection.tasks.discard)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            # Requests already read keep running: a delayed purchase must still reach the
            # journal (and find out it was reversed) after its terminal hung up.
            if connection.tasks:
                await asyncio.gather(*connection.tasks, return_exceptions=True)
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, raw: bytes, writer: asyncio.StreamWriter) -> None:
        answer = await self._simulator.handle(raw)
        if self._daily_files is not None and self._publish_soon is None:
            self._publish_soon = asyncio.get_running_loop().call_later(
                self._publish_delay_s, self._publish_daily_file)
        if answer is None or writer.is_closing():
            return
        try:
            write_frame(writer, answer)
            await writer.drain()
        except ConnectionError:
            log.info("terminal went away before its answer")

    def _publish_daily_file(self) -> None:
        self._publish_soon = None
        if self._daily_files is None:
            return
        started = time.monotonic()
        try:
            self._daily_files.publish()
        except OSError as exc:  # the file is late, the answers are not
            log.error("could not write the daily file: %s", exc)
        took = time.monotonic() - started
        self._publish_delay_s = max(DAILY_FILE_DELAY_S, took * (1 - DAILY_FILE_SHARE) / DAILY_FILE_SHARE)


async def _run(settings: AcquirerSettings) -> None:
    simulator = build_simulator(settings)
    daily_files = DailyFilePublisher(simulator, settings.daily_files_dir,
                                     Cutoff.parse(settings.settlement_cutoff))
    server = AcquirerServer(simulator, settings.host, settings.port, daily_files=daily_files)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
        log.info("acquirer simulator stopping")


def main() -> int:
    settings = load_acquirer_settings()
    configure_logging(settings.log_level)
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
