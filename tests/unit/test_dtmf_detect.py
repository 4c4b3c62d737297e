"""The Goertzel detector hears real DTMF tones and nothing in speech or music."""

import shutil
import subprocess

import pytest

from tests.dtmf_detect import detect_dtmf

TONES = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "#": (941, 1477)}


def _sox(*args: str) -> None:
    if shutil.which("sox") is None:
        pytest.fail("sox is required (make test installs it)")
    subprocess.run(["sox", *args], check=True, capture_output=True)


def _tone_file(tmp_path, digits: str):
    parts = []
    for index, digit in enumerate(digits):
        low, high = TONES[digit]
        part = tmp_path / f"t{index}.wav"
        _sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(part), "synth", "0.12", "sine", str(low),
             "sine", str(high), "remix", "1,2", "gain", "-6", "pad", "0", "0.1")
        parts.append(str(part))
    out = tmp_path / "tones.wav"
    _sox(*parts, str(out))
    return out


def test_hears_keyed_digits_including_repeats(tmp_path):
    wav = _tone_file(tmp_path, "1195#")
    assert [digit for _, digit in detect_dtmf(wav)] == list("1195#")


def test_hears_nothing_in_speech(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required (make test installs it)")
    raw = tmp_path / "speech_raw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "Please enter your PIN, then press hash. "
                    "One two three four five six seven eight nine zero."], check=True)
    speech = tmp_path / "speech.wav"
    _sox(str(raw), "-r", "8000", "-c", "1", "-b", "16", str(speech))
    assert detect_dtmf(speech) == []


def test_a_time_window_limits_what_is_reported(tmp_path):
    wav = _tone_file(tmp_path, "15")
    assert [d for _, d in detect_dtmf(wav, start_s=0.2)] == ["5"]
