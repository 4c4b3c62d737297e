"""The IVR's prompts: names checked against sounds/manifest.toml, and the sounds built from it.

``make sounds`` (``python -m ivr.prompts build``) writes ``sounds/<lang>/<name>.wav`` with
espeak-ng and sox, and ``.ulaw``/``.alaw``/``.g722`` beside each WAV. A professional recording
replaces a prompt by being copied over its WAV: ``sounds/generated.json`` holds the hash of every
WAV the generator wrote, so a WAV with another hash is a recording, never overwritten; its
.ulaw/.alaw/.g722 are remade from it.

Flows refer to prompts by name through :class:`Prompts`, which turns a name into the path Asterisk
plays (inside its sandbox) and refuses names the manifest does not have, so a typo fails in the
unit tests rather than as silence on a live call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ivr.config import REPO_ROOT
from ivr.files import write_private

__all__ = ["Manifest", "PromptPath", "Prompts", "UnknownPrompt", "build_hold_music", "build_sounds",
           "clean_sounds", "codec_commands", "link_agent_sounds", "synthesis_commands",
           "AGENT_SOUNDS", "CODECS", "HOLD_MUSIC", "MANIFEST_PATH"]

MANIFEST_PATH = REPO_ROOT / "sounds" / "manifest.toml"


class UnknownPrompt(KeyError):
    """A flow asked for a prompt that the manifest does not define."""


@dataclass(frozen=True)
class Manifest:
    voices: dict[str, str]
    texts: dict[str, dict[str, str]]  # language -> prompt name -> text

    @classmethod
    def load(cls, path: Path = MANIFEST_PATH) -> "Manifest":
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        voices = data.pop("voices")
        return cls(voices=voices, texts=data)

    @property
    def languages(self) -> list[str]:
        return sorted(self.texts)


class PromptPath(str):
    """A sound already resolved to its path, not a manifest name (a merchant's name synthesized
    at run time): ``Prompts`` hands it back as it is, so a flow can put it among named prompts."""


class Prompts:
    """Prompt paths for one language, as Asterisk sees them (no extension: Asterisk picks .wav)."""

    def __init__(self, manifest: Manifest, sounds_path: str, language: str) -> None:
        if language not in manifest.texts:
            raise UnknownPrompt(f"no prompts for language {language!r}")
        self._names = manifest.texts[language]
        self._base = f"{sounds_path.rstrip('/')}/{language}"
        self.language = language

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> str:
        if isinstance(name, PromptPath):
            return name
        if name not in self._names:
            raise UnknownPrompt(name)
        return f"{self._base}/{name}"

    def digits(self, digits: str) -> list[str]:
        """The files that read a string of digits out one by one (reference numbers)."""
        return [self[f"digit_{d}"] for d in digits if d.isdigit()]


# The files each prompt is made of: the WAV (the source: generated or a recording) and the raw
# G.711 and G.722 files Asterisk plays to µ-law, A-law and G.722 calls without transcoding (it
# picks the format cheapest to translate to the channel's, so a PCMU call plays the .ulaw file
# and a G.722 call the .g722 file).
CODECS = ("ulaw", "alaw", "g722")
# sox has no G.722 encoder: ivr/g722_file.py, run as a script (it imports nothing of ivr).
G722_ENCODER = Path(__file__).resolve().with_name("g722_file.py")
# Where build_sounds records what it wrote: "<lang>/<name>" -> the text, the voice and the
# SHA-256 of the WAV it generated. A WAV whose hash is not the recorded one is someone's recording.
GENERATED_RECORD = "generated.json"


def synthesis_commands(text: str, voice: str, wav: Path, scratch: Path) -> list[list[str]]:
    """espeak-ng then sox: ``text`` spoken by ``voice`` into ``wav`` (8 kHz mono 16-bit, what
    Asterisk's format_wav wants), through the file ``scratch``. Shared with the run-time
    synthesis of merchant names (ivr/spoken_names.py)."""
    return [
        ["espeak-ng", "-v", voice, "-s", "165", "-w", str(scratch), text],
        ["sox", "-V1", str(scratch), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
         str(wav), "gain", "-n", "-3"],
    ]


def codec_commands(wav: Path) -> list[list[str]]:
    """The .ulaw, .alaw (sox) and .g722 (ivr/g722_file.py) files beside ``wav``, made from it
    (any WAV sox reads)."""
    return [*(["sox", "-V1", str(wav), "-r", "8000", "-c", "1", "-t", "raw", "-e", encoding,
               "-b", "8", str(wav.with_suffix(f".{codec}"))]
              for codec, encoding in (("ulaw", "mu-law"), ("alaw", "a-law"))),
            [sys.executable, str(G722_ENCODER), str(wav)]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_sounds(manifest: Manifest, out_dir: Path, *, force: bool = False) -> int:
    """Render every prompt to ``out_dir/<lang>/<name>.wav`` with its .ulaw, .alaw and .g722;
    returns how many WAVs were (re)generated.

    A WAV is generated when it is missing, or when the generator made it from another text (or
    voice), or with ``force``; never when it is not the generator's (a recording put in its
    place: its hash differs from the recorded one). The .ulaw/.alaw/.g722 files are always
    remade from the WAV beside them when that WAV changed, recordings included.
    """
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("espeak-ng and sox are needed to build the prompts (make deps installs them)")
    record_path = out_dir / GENERATED_RECORD
    record: dict[str, dict[str, str]] = (
        json.loads(record_path.read_text("utf-8")) if record_path.exists() else {})
    built = 0
    try:
        for language, prompts in manifest.texts.items():
            voice = manifest.voices[language]
            lang_dir = out_dir / language
            lang_dir.mkdir(parents=True, exist_ok=True)
            for name, text in prompts.items():
                key = f"{language}/{name}"
                wav = lang_dir / f"{name}.wav"
                _adopt_legacy_stamp(wav, text, voice, record, key)
                entry = record.get(key)
                ours = entry is not None and wav.exists() and _sha256(wav) == entry["wav_sha256"]
                if wav.exists() and not ours:
                    pass  # a recording: never overwritten
                elif force or not wav.exists() or (entry["text"], entry["voice"]) != (text, voice):
                    with tempfile.TemporaryDirectory() as scratch:
                        _run(synthesis_commands(text, voice, wav, Path(scratch) / "espeak.wav"))
                    record[key] = entry = {"text": text, "voice": voice, "wav_sha256": _sha256(wav)}
                    built += 1
                wav_hash = _sha256(wav)
                codecs_from = record.setdefault(f"{key}.codecs", {}).get("wav_sha256")
                if codecs_from != wav_hash or not all(wav.with_suffix(f".{c}").exists() for c in CODECS):
                    _run(codec_commands(wav))
                    record[f"{key}.codecs"] = {"wav_sha256": wav_hash}
    finally:
        # Saved even when a step failed: a WAV written before it must stay known as ours.
        write_private(record_path, json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False),
                      mode=0o644)
    return built


# What agents hear while the caller pays (asterisk-conf/musiconhold.conf plays this folder): a
# soft C major chord with a slow swell. Our own, because a hold tune with a tone pair in DTMF's
# two bands reads as a key to a detector (Asterisk's own robot_dity.wav holds a "5" every 4 s),
# and the isolation proof decodes the agent's audio for keys. Pure tones under 700 Hz have nothing
# in DTMF's high band.
HOLD_MUSIC = "moh/voicepay-hold.wav"
HOLD_MUSIC_SYNTH = ["synth", "16", "sine", "262", "sine", "330", "sine", "392", "remix", "-",
                    "tremolo", "0.25", "70", "gain", "-n", "-14", "fade", "0.5", "16", "0.5"]


def build_hold_music(out_dir: Path) -> int:
    """The hold music and its .ulaw/.alaw/.g722, made once (a file put in its place is kept);
    1 if made."""
    wav = out_dir / HOLD_MUSIC
    if wav.exists():
        return 0
    wav.parent.mkdir(parents=True, exist_ok=True)
    _run([["sox", "-V1", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), *HOLD_MUSIC_SYNTH],
          *codec_commands(wav)])
    return 1


# What an agent hears while held apart from a paying caller (dialplan/oneline.conf
# [agent-wait], [agent-released]; asterisk-conf/musiconhold.conf class "agent"): links to the
# signed-linear WAVs alone, no .ulaw/.alaw/.g722 beside them, so Asterisk plays them as signed
# linear whatever the call's codec. Why: the agent's call recording (MixMonitor) hooks what is
# written to the agent's channel and turns it into signed linear with one translator kept for the
# whole call. Debian's Asterisk 22 (the asterisk-opus packet-loss patch to main/translate.c) drops
# a frame whose RTP sequence number lies more than half the number space behind the last one that
# translator saw, and a prompt's frames carry none (0). Once the caller's voice had passed through
# it with sequence numbers under 32766, every G.711 prompt frame after it was dropped before the
# recording saw it (no muted payment in the file; with nothing more from the caller, the
# recording ended there: issue 9); with numbers above, the prompts passed and the caller's voice
# after them was dropped until its numbers wrapped. Signed-linear frames reach the recording
# without that translator, which then sees the caller's voice alone.
AGENT_SOUNDS = "agent"
AGENT_PROMPTS = ("en/agent_progress.wav", "en/customer_hung_up.wav", HOLD_MUSIC)
AGENT_HOLD_MUSIC = "agent/hold"


def _agent_links(out_dir: Path) -> list[tuple[Path, Path]]:
    """(link, what it points at) for every sound the agent hears while held apart."""
    return [(out_dir / (AGENT_HOLD_MUSIC if source == HOLD_MUSIC else AGENT_SOUNDS)
             / Path(source).name, out_dir / source) for source in AGENT_PROMPTS]


def link_agent_sounds(out_dir: Path) -> int:
    """Link the agent's sounds (AGENT_SOUNDS) to their WAVs, relative, so they resolve inside
    Asterisk's sandbox too; returns how many links were made."""
    made = 0
    for link, target in _agent_links(out_dir):
        if link.is_symlink() or not target.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))
        made += 1
    return made


def clean_sounds(out_dir: Path) -> int:
    """Remove what the generator wrote (WAVs still as it made them, and every .ulaw/.alaw/.g722
    made from a generated WAV, and the agent's links); recordings stay. Returns how many files
    were removed."""
    hold = out_dir / HOLD_MUSIC
    removed = 0
    for link, _ in _agent_links(out_dir):
        removed += link.is_symlink()
        link.unlink(missing_ok=True)
    for path in (hold, *(hold.with_suffix(f".{c}") for c in CODECS)):
        removed += path.exists()
        path.unlink(missing_ok=True)
    record_path = out_dir / GENERATED_RECORD
    if not record_path.exists():
        return removed
    record = json.loads(record_path.read_text("utf-8"))
    for key, entry in record.items():
        if key.endswith(".codecs") or "text" not in entry:
            continue
        wav = out_dir / f"{key}.wav"
        if wav.exists() and _sha256(wav) == entry["wav_sha256"]:
            for path in (wav, *(wav.with_suffix(f".{c}") for c in CODECS)):
                removed += path.exists()
                path.unlink(missing_ok=True)
    record_path.unlink()
    return removed


def _adopt_legacy_stamp(wav: Path, text: str, voice: str, record: dict, key: str) -> None:
    """Sounds built before generated.json kept the text in a ``.<name>.txt`` sidecar: a WAV with
    one was the generator's, so it is recorded as such (and regenerated if the text changed)."""
    stamp = wav.with_name(f".{wav.stem}.txt")
    if key not in record and stamp.exists() and wav.exists():
        record[key] = {"text": stamp.read_text("utf-8"), "voice": voice, "wav_sha256": _sha256(wav)}
    stamp.unlink(missing_ok=True)


def _run(commands: list[list[str]]) -> None:
    for command in commands:
        subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.prompts", description=__doc__)
    parser.add_argument("command", choices=["build", "clean"])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "sounds")
    parser.add_argument("--force", action="store_true",
                        help="regenerate every generated WAV (recordings are still kept)")
    args = parser.parse_args(argv)
    if args.command == "clean":
        print(f"prompts: {clean_sounds(args.out)} generated files removed")
        return 0
    built = build_sounds(Manifest.load(), args.out, force=args.force)
    print(f"prompts: {built} built" + (", and the hold music" if build_hold_music(args.out) else ""))
    link_agent_sounds(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
