"""baresip as a test user agent, driven through its ``ctrl_tcp`` module.

ctrl_tcp speaks netstrings (``<length>:<json>,``) over TCP: commands go in as
``{"command": "dial", "params": "...", "token": "..."}``, and baresip sends back a response per
command and an event for everything that happens (``REGISTER_OK``, ``CALL_ESTABLISHED``,
``CALL_DTMF_START`` for a key received, ``CALL_CLOSED``...). A reader thread keeps every event, so
a test waits for one instead of sleeping.

The account line is the README's (``account_line``; tests/unit/test_softphones.py holds the two
together). Audio: the phone plays a silent WAV as its microphone (``aufile``), renders what it
receives to ALSA's ``null`` device, and, for a phone made with ``record=True``, ``sndfile`` writes
the audio it received to a WAV in the phone's directory (``received_audio``) for the DTMF detector.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from pathlib import Path

from tests.softphones import (Account, Softphone, SoftphoneError, silent_wav, wait_or_kill,
                              wait_until)

__all__ = ["Baresip", "account_line"]


# "audio: send DTMF digit: '1'", "call: received DTMF: '5' (duration=...)": the key is the
# quoted character.
_DTMF_KEY = re.compile(rb"(DTMF[^'\n]*')[0-9A-D*#](?=')")


# reginfo colours its states ("\x1b[32mOK\x1b[;m"): the codes go before reading it.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def account_line(account: Account) -> str:
    """The line for ``~/.baresip/accounts``: the account at the edge, digest auth with its
    password (the README's "Pointing a softphone at it")."""
    return f"<{account.aor}>;auth_pass={account.password}"


def _config(account: Account, ctrl_port: int, silence: Path, audio_dir: Path | None) -> str:
    # sndfile dumps every call's audio, both ways, into snd_path: only where it is asked for.
    recording = [] if audio_dir is None else [f"snd_path {audio_dir}", "module sndfile.so"]
    return "\n".join([
        "poll_method epoll",
        f"sip_listen {account.address}:{account.sip_port}",
        f"rtp_ports {account.rtp_port}-{account.rtp_port + 1}",
        "rtcp_mux no",
        "call_local_timeout 120",
        "audio_player alsa,null",
        f"audio_source aufile,{silence}",
        "audio_alert alsa,null",
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        "module alsa.so",
        "module aufile.so",
        *recording,
        "module_tmp uuid.so",
        "module_tmp account.so",
        "module_app menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
        "",
    ])


class Baresip(Softphone):
    """One baresip process with one account; ``with Baresip(...) as phone:`` starts and stops it.

    ``ctrl_port`` is the loopback TCP port of its control socket (one per phone); ``record``:
    keep the audio it receives (``received_audio``)."""

    def __init__(self, account: Account, directory: Path, *, ctrl_port: int,
                 record: bool = False) -> None:
        self.account = account
        self.directory = directory
        self.ctrl_port = ctrl_port
        self.record = record
        self.events: list[dict] = []
        self._responses: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._token = 0
        self._process: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        audio_dir = self.directory / "audio" if self.record else None
        if audio_dir is not None:
            audio_dir.mkdir(exist_ok=True)
        silence = silent_wav(self.directory / "silence.wav")
        (self.directory / "config").write_text(
            _config(self.account, self.ctrl_port, silence, audio_dir), encoding="utf-8")
        (self.directory / "accounts").write_text(account_line(self.account) + "\n", encoding="utf-8")
        (self.directory / "contacts").write_text("", encoding="utf-8")
        # -f: this directory instead of ~/.baresip.
        self._process = subprocess.Popen(["baresip", "-f", str(self.directory)],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._log, daemon=True).start()
        wait_until(self._connect, 15, f"baresip's ctrl_tcp on port {self.ctrl_port}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def stop(self) -> None:
        """Unregister (an expires=0 REGISTER, so the next test's phone has the account), quit."""
        if self._process is None:
            return
        try:
            if self._process.poll() is None and self._socket is not None:
                # baresip unregisters every account (expires=0) as it quits.
                self._send("quit", "")
                wait_or_kill(self._process, 10)
        finally:
            if self._socket is not None:
                self._socket.close()
            self._process = None
            # The password stays where the installation keeps it, not in the test's files.
            (self.directory / "accounts").unlink(missing_ok=True)
            (self.directory / "silence.wav").unlink(missing_ok=True)  # minutes of nothing

    def _log(self) -> None:
        """baresip's output into baresip.log, with the key of every DTMF line masked: the
        phone's screen is no log of ours, but var/ is leak-scanned, and a card number keyed
        here would be in it digit by digit."""
        assert self._process is not None and self._process.stdout is not None
        with (self.directory / "baresip.log").open("wb") as log:
            for line in self._process.stdout:
                log.write(_DTMF_KEY.sub(rb"\1?", line))
                log.flush()

    def _connect(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise SoftphoneError(f"baresip exited: {self.log_tail()}")
        try:
            self._socket = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
        except OSError:
            return False
        self._socket.settimeout(None)
        return True

    # ---- the control socket ----
    def _read(self) -> None:
        buffer = b""
        assert self._socket is not None
        while True:
            try:
                chunk = self._socket.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b":" in buffer:
                length_text, rest = buffer.split(b":", 1)
                length = int(length_text)
                if len(rest) < length + 1:
                    break
                message = json.loads(rest[:length])
                buffer = rest[length + 1:]
                with self._lock:
                    if message.get("event"):
                        self.events.append(message)
                    elif "token" in message:
                        self._responses[message["token"]] = message

    def _send(self, command: str, params: str) -> str:
        with self._lock:
            self._token += 1
            token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        assert self._socket is not None
        self._socket.sendall(str(len(body)).encode() + b":" + body + b",")
        return token

    def command(self, command: str, params: str = "", timeout: float = 10) -> dict:
        """Run one command; its response (``ok``, ``data``)."""
        token = self._send(command, params)
        wait_until(lambda: token in self._responses, timeout, f"baresip's answer to {command}")
        return self._responses.pop(token)

    def event_types(self) -> list[str]:
        with self._lock:
            return [event["type"] for event in self.events]

    def wait_for_event(self, kind: str, *, count: int = 1, timeout: float = 60) -> dict:
        """The ``count``-th event of type ``kind`` (``CALL_ESTABLISHED``...), once it has come."""
        def found() -> list[dict]:
            with self._lock:
                return [event for event in self.events if event["type"] == kind]
        wait_until(lambda: len(found()) >= count, timeout, f"baresip event {kind}")
        return found()[count - 1]

    # ---- what a user does ----
    def wait_registered(self, timeout: float = 20) -> None:
        """Registered: a REGISTER_OK event, or, as baresip registers as it starts, before the
        control socket is connected, ``reginfo`` saying OK for the account."""
        def registered() -> bool:
            return ("REGISTER_OK" in self.event_types()
                    or re.search(r"\bOK\b", _ANSI.sub("", self.command("reginfo").get("data", "")))
                    is not None)
        try:
            wait_until(registered, timeout, f"baresip registering {self.account.aor}")
        except SoftphoneError:
            raise SoftphoneError(f"baresip never registered {self.account.aor}; events "
                                 f"{self.event_types()}; log: {self.log_tail()}") from None

    def dial(self, number: str) -> None:
        answer = self.command("dial", self.account.uri(number))
        if not answer.get("ok"):
            raise SoftphoneError(f"baresip could not dial {number}: {answer}")

    def answer_when_called(self, *, count: int = 1, timeout: float = 60) -> None:
        """Wait for the ``count``-th incoming call and answer it, as a user picks up."""
        self.wait_for_event("CALL_INCOMING", count=count, timeout=timeout)
        self.command("accept")

    def answer_every_call(self) -> None:
        """Answer every incoming call at once (an agent's phone on auto-answer)."""
        answer = self.command("answermode", "auto")
        if not answer.get("ok"):
            raise SoftphoneError(f"baresip refused auto-answer: {answer}")

    def wait_connected(self, *, count: int = 1, timeout: float = 60) -> None:
        self.wait_for_event("CALL_ESTABLISHED", count=count, timeout=timeout)

    def wait_ended(self, *, count: int = 1, timeout: float = 60) -> None:
        self.wait_for_event("CALL_CLOSED", count=count, timeout=timeout)

    def keys(self, digits: str) -> None:
        """Key ``digits`` on the keypad: RFC 4733 telephone-events, one after the other."""
        answer = self.command("sndcode", digits)
        if not answer.get("ok"):
            raise SoftphoneError(f"baresip could not send keys: {answer.get('data')}")

    def hang_up(self) -> None:
        self.command("hangup")

    def keys_received(self) -> str:
        """The keys the far end sent this phone (RFC 4733 or SIP INFO), in order."""
        with self._lock:
            return "".join(event.get("param", "") for event in self.events
                           if event["type"] == "CALL_DTMF_START")

    def received_audio(self) -> list[Path]:
        """The WAVs of the audio this phone received (decoded), one per call."""
        return sorted((self.directory / "audio").glob("*-dec.wav"))

    def log_tail(self) -> str:
        path = self.directory / "baresip.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
