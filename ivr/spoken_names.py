"""Names spoken at run time: a merchant's name synthesized by the ivr service on first use, cached.

A merchant admitted while the stack runs is spoken on its first call, with no prompt rebuild: the
first call that needs a name in a language runs espeak-ng and sox (the commands ``make sounds``
uses, ivr/prompts.py) in a subprocess, never on the event loop, and every later call plays the
cached file. The cache is keyed by a hash of the voice, language and text, so a renamed merchant
gets a new file and an old one is never played for a new name.

The files are written where Asterisk can read them: under ``var/asterisk/spool/``, which the
Asterisk sandbox mounts as ``/var/spool/asterisk`` (devstack/asterisk_sandbox.py). Each file
appears complete or not at all (written in a scratch directory beside it, then renamed; the WAV
last; "cached" means every file of the set is there). Concurrent requests for one name in this
process share one synthesis; two ivr instances may both synthesize it once, and either rename
wins with the same sound.

A synthesis that fails or takes longer than ``timeout_s`` gives ``None``: the flow says "the
merchant" instead (the ``merchant_generic`` prompt) and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr.prompts import CODECS, codec_commands, synthesis_commands

__all__ = ["SpokenNames", "CACHE_SUBDIR", "ASTERISK_CACHE_PATH", "SYNTHESIS_TIMEOUT_S"]

log = logging.getLogger(__name__)

# Under VOICEPAY_VAR_DIR, and the same folder as Asterisk sees it inside its sandbox.
CACHE_SUBDIR = Path("asterisk") / "spool" / "voicepay-names"
ASTERISK_CACHE_PATH = "/var/spool/asterisk/voicepay-names"
# espeak-ng says a name in well under a second; past this the caller hears "the merchant".
SYNTHESIS_TIMEOUT_S = 5.0

Runner = Callable[[list[str]], Awaitable[None]]


class SynthesisFailed(Exception):
    """A synthesis command exited with an error (its stderr is not kept: it may echo the text)."""


async def run_command(command: list[str]) -> None:
    """One command in a subprocess; killed if the caller is cancelled (e.g. by a timeout)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        returncode = await process.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if returncode != 0:
        raise SynthesisFailed(f"{command[0]} exited with {returncode}")


class SpokenNames:
    def __init__(self, cache_dir: Path, voices: dict[str, str], *,
                 asterisk_path: str = ASTERISK_CACHE_PATH,
                 timeout_s: float = SYNTHESIS_TIMEOUT_S, run: Runner = run_command) -> None:
        self._dir = Path(cache_dir)
        self._voices = voices
        self._asterisk_path = asterisk_path.rstrip("/")
        self._timeout_s = timeout_s
        self._run = run
        self._pending: dict[str, asyncio.Future[bool]] = {}

    def key(self, text: str, language: str) -> str:
        voice = self._voices[language]
        return hashlib.sha256(f"{voice}\n{language}\n{text}".encode()).hexdigest()[:32]

    async def prompt(self, text: str, language: str) -> str | None:
        """The path Asterisk plays for ``text`` said in ``language`` (no extension: Asterisk picks
        the format), or None if it could not be synthesized."""
        if language not in self._voices or not text.strip():
            return None
        key = self.key(text, language)
        # Every file of the set: a name cached before a codec was added (.g722) is made again.
        if not all((self._dir / f"{key}.{ext}").exists() for ext in (*CODECS, "wav")):
            # One synthesis per name at a time: later requests wait for the first one's result.
            pending = self._pending.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._synthesize(text, language, key))
                self._pending[key] = pending
                pending.add_done_callback(lambda _: self._pending.pop(key, None))
            if not await asyncio.shield(pending):
                return None
        return f"{self._asterisk_path}/{key}"

    async def _synthesize(self, text: str, language: str, key: str) -> bool:
        try:
            await asyncio.wait_for(self._render(text, self._voices[language], key), self._timeout_s)
        except (OSError, SynthesisFailed, TimeoutError) as exc:
            # The name itself is not logged: the cache key says which one.
            log.warning("spoken name %s (%s): synthesis failed: %s", key, language,
                        exc.__class__.__name__ if isinstance(exc, TimeoutError) else exc)
            return False
        log.info("spoken name %s (%s): synthesized into the cache", key, language)
        return True

    async def _render(self, text: str, voice: str, key: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        # Scratch beside the cache, so the renames below stay on one filesystem (atomic).
        with tempfile.TemporaryDirectory(dir=self._dir, prefix=".render-") as scratch:
            wav = Path(scratch) / f"{key}.wav"
            for command in [*synthesis_commands(text, voice, wav, Path(scratch) / "espeak.wav"),
                            *codec_commands(wav)]:
                await self._run(command)
            for codec in CODECS:  # the WAV last: its presence means the set is complete
                os.replace(wav.with_suffix(f".{codec}"), self._dir / f"{key}.{codec}")
            os.chmod(wav, 0o644)
            os.replace(wav, self._dir / f"{key}.wav")
