"""The IVR's prompts: names checked against sounds/manifest.toml, and the WAVs built from it.

Flows refer to prompts by name through :class:`Prompts`, which turns a name into the path Asterisk
plays (inside its sandbox) and refuses names the manifest does not have, so a typo fails in the
unit tests rather than as silence on a live call.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ivr.config import REPO_ROOT

__all__ = ["Manifest", "Prompts", "UnknownPrompt", "build_sounds", "MANIFEST_PATH"]

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

    def with_texts(self, extra: dict[str, dict[str, str]]) -> "Manifest":
        """This manifest plus prompts defined elsewhere (merchant names, from the registry)."""
        texts = {lang: {**names, **extra.get(lang, {})} for lang, names in self.texts.items()}
        return Manifest(voices=self.voices, texts=texts)


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
        if name not in self._names:
            raise UnknownPrompt(name)
        return f"{self._base}/{name}"

    def digits(self, digits: str) -> list[str]:
        """The files that read a string of digits out one by one (reference numbers)."""
        return [self[f"digit_{d}"] for d in digits if d.isdigit()]


def build_sounds(manifest: Manifest, out_dir: Path, *, force: bool = False) -> int:
    """Render every prompt to ``out_dir/<lang>/<name>.wav``; returns how many were (re)built.

    A WAV is rebuilt only when it is missing or older than the manifest, so a second
    ``make run`` costs nothing.
    """
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    if not espeak or not sox:
        raise RuntimeError("espeak-ng and sox are needed to build the prompts (make deps installs them)")
    built = 0
    for language, prompts in manifest.texts.items():
        voice = manifest.voices[language]
        lang_dir = out_dir / language
        lang_dir.mkdir(parents=True, exist_ok=True)
        for name, text in prompts.items():
            target = lang_dir / f"{name}.wav"
            # A sidecar with the text the WAV was made from: rebuilt only when the text changes.
            stamp = lang_dir / f".{name}.txt"
            if not force and target.exists() and stamp.exists() and stamp.read_text("utf-8") == text:
                continue
            with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
                subprocess.run([espeak, "-v", voice, "-s", "165", "-w", raw.name, text], check=True)
                # Asterisk's format_wav wants 8 kHz, mono, signed 16-bit.
                subprocess.run(
                    [sox, "-V1", raw.name, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                     str(target), "gain", "-n", "-3"],
                    check=True,
                )
            stamp.write_text(text, "utf-8")
            built += 1
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.prompts", description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "sounds")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    built = build_sounds(Manifest.load(), args.out, force=args.force)
    print(f"prompts: {built} built")
    return 0


if __name__ == "__main__":
    sys.exit(main())
