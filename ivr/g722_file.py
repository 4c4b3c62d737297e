"""A sound file in Asterisk's ``.g722`` format, made from any file sox reads (our 8 kHz WAVs).

Asterisk plays ``<prompt>.g722`` to a G.722 call as it is, with no translation (its format_pcm
reads raw G.722: 64 kbit/s, 16 kHz audio, 8000 bytes a second). sox has no G.722 encoder, and
Asterisk's ``file convert`` needs a running Asterisk: so sox resamples to 16 kHz signed linear and
the ``g722`` package from PyPI (the ITU-T reference coder, in C) encodes it.

    python ivr/g722_file.py sounds/zh/enter_pin.wav     # writes sounds/zh/enter_pin.g722

Run as a script by path as well as imported: the ivr service's run-time name synthesis
(ivr/spoken_names.py) runs its codec steps as commands, and this one needs nothing but the
standard library, sox and ``G722``.
"""

from __future__ import annotations

import array
import subprocess
import sys
from pathlib import Path

import G722

__all__ = ["SAMPLE_RATE", "BIT_RATE", "encode_g722", "write_g722"]

SAMPLE_RATE = 16000
BIT_RATE = 64000  # the G.722 mode every SIP phone speaks, and the one Asterisk's files hold


def encode_g722(samples: array.array) -> bytes:
    """16 kHz signed 16-bit samples, encoded: one byte per two samples."""
    return G722.G722(SAMPLE_RATE, BIT_RATE).encode(samples)


def write_g722(source: Path) -> Path:
    """The ``.g722`` file beside ``source``, made from it; returns its path."""
    pcm = subprocess.run(
        ["sox", "-V1", str(source), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
         "-e", "signed-integer", "-t", "raw", "--endian", sys.byteorder, "-"],
        check=True, capture_output=True).stdout
    samples = array.array("h")
    samples.frombytes(pcm)
    target = source.with_suffix(".g722")
    target.write_bytes(encode_g722(samples))
    return target


if __name__ == "__main__":
    for name in sys.argv[1:]:
        write_g722(Path(name))
