"""Linphone's command-line client (``linphonec``) as a test user agent, driven over its stdin.

linphonec takes one command a line (``call sip:8000@...``, ``answer``, a single key such as ``5``
keys it in the current call, ``terminate``) and prints what happens ("Call 1 with ... connected.",
"Receiving tone 5 from ...", "Call 1 with ... ended (...)."). A reader thread keeps every line, so
a test waits for one instead of sleeping. ``linphonecsh`` would drive the same client through a
socket every linphonec of the user shares: one phone per test runs here, each on its own pipe.

The account is the README's linphonerc sections (``account_sections``; tests/unit/
test_softphones.py holds the two together). Audio: ``soundcard use files`` (no sound card
here): the phone sends silence and, made with ``record=True``, writes what it plays to a WAV
(``received_audio``): the far end's audio, and its own key clicks (a cardholder's keys would be in
it, so only the agent's phone records).
"""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from tests.softphones import (Account, Softphone, SoftphoneError, silent_wav, wait_or_kill,
                              wait_until)

__all__ = ["Linphone", "account_sections"]

# What linphonec prints when a key arrives, and its echo of a key sent (a line of one key after
# its prompts): the key is left out of the phone's log file.
_TONE = re.compile(r"Receiving tone (\S) from")
_KEY_ECHO = re.compile(r"^((?:linphonec> )*)[0-9A-D*#]$", re.MULTILINE)


def account_sections(account: Account) -> str:
    """The account in a linphonerc: the identity at the edge, the edge as proxy, digest auth
    with the password, UDP (the README's "Pointing a softphone at it")."""
    return "\n".join([
        "[proxy_0]",
        f"reg_identity=sip:{account.user}@{account.edge}",
        f"reg_proxy=<sip:{account.edge};transport=udp>",
        "reg_sendregister=1",
        "reg_expires=300",
        "[auth_info_0]",
        f"username={account.user}",
        f"passwd={account.password}",
        "",
    ])


def _linphonerc(account: Account, account_directory: Path) -> str:
    return "\n".join([
        "[sip]",
        # RFC 2833/4733 keys, not SIP INFO.
        "use_info=0",
        "use_rfc2833=1",
        "use_ipv6=0",
        "guess_hostname=0",
        f"contact=sip:{account.user}@{account.address}",
        "register_only_when_network_is_up=0",
        "default_proxy=0",
        # Its own database (call history and the like): without a usable one the core never
        # reaches its "on" state and turns every incoming call away with a 503.
        "[storage]",
        f"uri={account_directory}/linphone.db",
        "[rtp]",
        f"audio_rtp_port={account.rtp_port}",
        # linphonec ends a call by itself after 30 s without RTP: a call the far end hung up
        # ends by its BYE here, or the test waiting for the end sees it does not.
        "nortp_timeout=3600",
        "[video]",
        "capture=0",
        "display=0",
        "automatically_initiate=0",
        "automatically_accept=0",
        account_sections(account),
    ])


class Linphone(Softphone):
    """One linphonec process with one account; ``with Linphone(...) as phone:`` starts and stops
    it; ``record``: keep what it plays (``received_audio``)."""

    def __init__(self, account: Account, directory: Path, *, record: bool = False) -> None:
        self.account = account
        self.directory = directory
        self.record = record
        self.lines: list[str] = []
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        rc = self.directory / "linphonerc"
        rc.write_text(_linphonerc(self.account, self.directory), encoding="utf-8")
        self._process = subprocess.Popen(
            # stdbuf: its lines as they come, not when a pipe buffer fills.
            ["stdbuf", "-oL", "linphonec", "-c", str(rc), "-S"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True, cwd=self.directory)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # No sound card: WAV files stand in for it (silence out; what it plays, recorded or not).
        self.send("soundcard use files")
        self.send(f"play {silent_wav(self.directory / 'silence.wav')}")
        if self.record:
            self.send(f"record {self.directory / 'received.wav'}")
        # IPv4 media (the linphonerc's use_ipv6=0 is not enough: it offers its IPv6 address).
        self.send("ipv6 disable")
        # The port in the linphonerc is not applied at start; this opens the SIP listener.
        self.send(f"ports sip {self.account.sip_port}")
        self.wait_for_line(f"Setting sip port to {self.account.sip_port}", timeout=15)

    def stop(self) -> None:
        """Unregister (expires=0, so the next test's phone has the account), then quit."""
        if self._process is None:
            return
        try:
            if self._process.poll() is None:
                self.send("unregister")
                self.send("quit")
                wait_or_kill(self._process, 15)
        finally:
            self._process = None
            # The password stays where the installation keeps it, not in the test's files.
            (self.directory / "linphonerc").unlink(missing_ok=True)
            (self.directory / "silence.wav").unlink(missing_ok=True)  # minutes of nothing

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with (self.directory / "linphonec.log").open("w", encoding="utf-8") as log:
            for line in self._process.stdout:
                tone = _TONE.search(line)
                with self._lock:
                    if tone:
                        self._keys.append(tone.group(1))
                    self.lines.append(line.rstrip("\n"))
                # The phone's log keeps that a key came or went, not which: var/ is leak-scanned,
                # and a card number keyed here would be in it digit by digit.
                log.write(_KEY_ECHO.sub(r"\1?", _TONE.sub("Receiving tone ? from", line)))
                log.flush()

    def send(self, command: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        if self._process.poll() is not None:
            raise SoftphoneError(f"linphonec exited: {self.log_tail()}")
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()

    def wait_for_line(self, pattern: str, *, count: int = 1, timeout: float = 60) -> str:
        """The ``count``-th line linphonec printed that matches ``pattern`` (a regex)."""
        def found() -> list[str]:
            with self._lock:
                return [line for line in self.lines if re.search(pattern, line)]
        try:
            wait_until(lambda: len(found()) >= count, timeout, f"linphonec saying {pattern!r}")
        except SoftphoneError:
            raise SoftphoneError(f"linphonec never said {pattern!r}: {self.log_tail()}") from None
        return found()[count - 1]

    # ---- what a user does ----
    def wait_registered(self, timeout: float = 20) -> None:
        """Ask ``status register`` until the answer is "registered, identity=...": linphonec
        prints nothing of its own when a registration succeeds."""
        def registered() -> bool:
            answers = len(self._status_answers())
            self.send("status register")
            wait_until(lambda: len(self._status_answers()) > answers, 5, "linphonec's status")
            return self._status_answers()[-1].startswith("registered, identity=")
        try:
            wait_until(registered, timeout, f"linphonec registering {self.account.user}")
        except SoftphoneError:
            raise SoftphoneError(f"linphonec never registered: {self.log_tail()}") from None

    def _status_answers(self) -> list[str]:
        with self._lock:
            return [line.removeprefix("linphonec> ") for line in self.lines
                    if re.match(r"(linphonec> )?registered[,=]", line)]

    def dial(self, number: str) -> None:
        self.send(f"call {self.account.uri(number)}")

    def answer_when_called(self, *, count: int = 1, timeout: float = 60) -> None:
        """Wait for the ``count``-th incoming call and answer it, as a user picks up."""
        self.wait_for_line("Receiving new incoming call", count=count, timeout=timeout)
        self.send("answer")

    def answer_every_call(self) -> None:
        """Answer every incoming call at once (an agent's phone on auto-answer)."""
        self.send("autoanswer enable")
        self.wait_for_line("Auto answer enabled", timeout=15)

    def wait_connected(self, *, count: int = 1, timeout: float = 60) -> None:
        self.wait_for_line(r"Call \d+ with .* connected", count=count, timeout=timeout)

    def wait_ended(self, *, count: int = 1, timeout: float = 60) -> None:
        self.wait_for_line(r"Call \d+ with .* (ended|error)", count=count, timeout=timeout)

    def keys(self, digits: str) -> None:
        """Key ``digits``: linphonec sends a line holding one key as that key (RFC 4733 here).
        It takes one line of its stdin a second (a thumb's pace); returns once all are sent."""
        for digit in digits:
            self.send(digit)
        self._sync(timeout=len(digits) * 2 + 10)

    def _sync(self, timeout: float) -> None:
        """Wait until linphonec has worked through every command sent so far: it answers
        ``ports`` in order, after them."""
        answers = len(self._ports_answers())
        self.send("ports")
        wait_until(lambda: len(self._ports_answers()) > answers, timeout, "linphonec's ports")

    def _ports_answers(self) -> list[str]:
        with self._lock:
            return [line for line in self.lines if "sip port = " in line]

    def hang_up(self) -> None:
        self.send("terminate")

    def keys_received(self) -> str:
        with self._lock:
            return "".join(self._keys)

    def received_audio(self) -> list[Path]:
        path = self.directory / "received.wav"
        return [path] if path.exists() else []

    def log_tail(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-40:])
