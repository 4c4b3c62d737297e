"""The prompt sounds (ivr/prompts.py build_sounds) and the run-time name cache
(ivr/spoken_names.py), with the real espeak-ng and sox."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

import G722

from ivr.config import load_settings
from ivr.g722_file import BIT_RATE, SAMPLE_RATE, write_g722
from ivr.prompts import (AGENT_SOUNDS, CODECS, HOLD_MUSIC, Manifest, build_hold_music,
                         build_sounds, clean_sounds, link_agent_sounds)
from tests.dtmf_detect import detect_dtmf
from ivr.spoken_names import SpokenNames, run_command

SMALL = Manifest(voices={"zh": "cmn", "yue": "yue", "en": "en"},
                 texts={"zh": {"goodbye": "谢谢，再见。"}, "yue": {"goodbye": "多謝，再見。"},
                        "en": {"goodbye": "Thank you. Goodbye."}})


def _recording(path: Path) -> bytes:
    """A stand-in for a studio recording: one second of a tone, 8 kHz mono 16-bit."""
    frames = b"".join(int(8000 * ((i // 8) % 2 * 2 - 1)).to_bytes(2, "little", signed=True)
                      for i in range(8000))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path.read_bytes()


def test_every_prompt_gets_a_wav_and_its_g711_and_g722_files(tmp_path: Path) -> None:
    assert build_sounds(SMALL, tmp_path) == 3
    for language in ("zh", "yue", "en"):
        wav = tmp_path / language / "goodbye.wav"
        with wave.open(str(wav)) as sound:
            assert (sound.getframerate(), sound.getnchannels(), sound.getsampwidth()) == (8000, 1, 2)
            frames = sound.getnframes()
        for codec in CODECS:
            # Raw G.711: one byte a sample, as many samples as the WAV; G.722 is 8000 bytes a
            # second too (two 16 kHz samples a byte).
            assert (wav.with_suffix(f".{codec}")).stat().st_size == frames
    assert build_sounds(SMALL, tmp_path) == 0  # nothing changed: nothing rebuilt


def test_the_g722_file_is_the_wav_in_wideband_g722(tmp_path: Path) -> None:
    # The recording stand-in is a 500 Hz square wave: decoded, the .g722 file holds a second of
    # 16 kHz audio crossing zero about 1000 times, as loud as the source, not noise or silence.
    wav = tmp_path / "tone.wav"
    _recording(wav)
    decoded = G722.G722(SAMPLE_RATE, BIT_RATE).decode(write_g722(wav).read_bytes())
    assert len(decoded) == SAMPLE_RATE
    middle = decoded[2000:14000]  # past the coder's start-up
    crossings = sum((a < 0) != (b < 0) for a, b in zip(middle, middle[1:]))
    assert 700 <= crossings <= 800  # 12000 samples at 16 kHz = 0.75 s of 500 Hz: 750 crossings
    assert 5000 < max(abs(x) for x in middle) < 12000


def test_the_hold_music_is_ours_and_holds_nothing_a_dtmf_detector_reads_as_a_key(
        tmp_path: Path) -> None:
    # The agents' hold music (asterisk-conf/musiconhold.conf plays its folder): the isolation
    # proof decodes the agent's audio for keys, so the music itself must decode to none.
    assert build_hold_music(tmp_path) == 1 and build_hold_music(tmp_path) == 0
    hold = tmp_path / HOLD_MUSIC
    assert detect_dtmf(hold) == []
    with wave.open(str(hold)) as sound:
        assert sound.getframerate() == 8000 and sound.getnframes() > 8000 * 10
    assert all(hold.with_suffix(f".{codec}").exists() for codec in CODECS)
    conf = (Path(__file__).parents[2] / "asterisk-conf" / "musiconhold.conf").read_text()
    assert f"directory = {load_settings().sounds_path}/{Path(HOLD_MUSIC).parent}" in conf
    assert clean_sounds(tmp_path) == 1 + len(CODECS) and not hold.exists()


def test_a_changed_text_is_regenerated(tmp_path: Path) -> None:
    build_sounds(SMALL, tmp_path)
    before = (tmp_path / "en" / "goodbye.wav").read_bytes()
    changed = Manifest(SMALL.voices, {**SMALL.texts, "en": {"goodbye": "Goodbye, and thank you."}})
    assert build_sounds(changed, tmp_path) == 1
    assert (tmp_path / "en" / "goodbye.wav").read_bytes() != before


def test_a_recording_is_never_overwritten_and_its_g711_files_follow_it(tmp_path: Path) -> None:
    build_sounds(SMALL, tmp_path)
    wav = tmp_path / "zh" / "goodbye.wav"
    generated_ulaw = wav.with_suffix(".ulaw").read_bytes()
    recorded = _recording(wav)  # the studio's file copied over the generated one

    changed = Manifest(SMALL.voices, {**SMALL.texts, "zh": {"goodbye": "再见。"}})
    assert build_sounds(changed, tmp_path, force=True) == 2  # en and yue, not the recording
    assert wav.read_bytes() == recorded
    ulaw = wav.with_suffix(".ulaw").read_bytes()
    assert ulaw != generated_ulaw and len(ulaw) == 8000  # remade from the recording

    clean_sounds(tmp_path)
    assert wav.read_bytes() == recorded
    assert not (tmp_path / "en" / "goodbye.wav").exists()


def test_a_recording_in_place_before_the_first_build_is_kept(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    recorded = _recording(tmp_path / "en" / "goodbye.wav")
    assert build_sounds(SMALL, tmp_path) == 2
    assert (tmp_path / "en" / "goodbye.wav").read_bytes() == recorded
    assert (tmp_path / "en" / "goodbye.alaw").stat().st_size == 8000


# --- run-time names ---------------------------------------------------------------------------


class CountingRunner:
    """The real commands, counting how many times espeak-ng was run."""

    def __init__(self) -> None:
        self.espeak_runs = 0

    async def __call__(self, command: list[str]) -> None:
        if command[0] == "espeak-ng":
            self.espeak_runs += 1
        await run_command(command)


async def test_a_name_is_synthesized_once_for_concurrent_calls(tmp_path: Path) -> None:
    runner = CountingRunner()
    names = SpokenNames(tmp_path, SMALL.voices, asterisk_path="/var/names", run=runner)
    paths = await asyncio.gather(*(names.prompt("上海移动", "yue") for _ in range(5)))
    key = names.key("上海移动", "yue")
    assert paths == [f"/var/names/{key}"] * 5
    assert runner.espeak_runs == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{key}.{ext}" for ext in ("wav", *CODECS))  # no scratch left behind
    # Cached: a later call runs nothing; the same name in another language is another file.
    assert await names.prompt("上海移动", "yue") == f"/var/names/{key}"
    assert runner.espeak_runs == 1
    assert await names.prompt("上海移动", "zh") == f"/var/names/{names.key('上海移动', 'zh')}"
    assert runner.espeak_runs == 2


async def test_a_renamed_merchant_gets_a_new_file(tmp_path: Path) -> None:
    names = SpokenNames(tmp_path, SMALL.voices)
    old = await names.prompt("Old Shop", "en")
    new = await names.prompt("New Shop", "en")
    assert old and new and old != new


async def test_a_failed_synthesis_gives_none_and_leaves_nothing(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async def espeak_fails(command: list[str]) -> None:
        await run_command(["false"] if command[0] == "espeak-ng" else command)

    names = SpokenNames(tmp_path, SMALL.voices, run=espeak_fails)
    assert await names.prompt("Some Shop", "en") is None
    assert [p for p in tmp_path.iterdir()] == []
    assert "Some Shop" not in caplog.text and "synthesis failed" in caplog.text


async def test_a_synthesis_past_its_timeout_gives_none(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def hangs(command: list[str]) -> None:
        started.set()
        await run_command(["sleep", "60"])  # killed when the timeout cancels it

    names = SpokenNames(tmp_path, SMALL.voices, timeout_s=0.2, run=hangs)
    assert await names.prompt("Slow Shop", "en") is None
    assert started.is_set()
    assert not (tmp_path / f"{names.key('Slow Shop', 'en')}.wav").exists()


async def test_unknown_language_or_empty_name_gives_none(tmp_path: Path) -> None:
    names = SpokenNames(tmp_path, SMALL.voices)
    assert await names.prompt("Shop", "fr") is None
    assert await names.prompt("  ", "en") is None


async def test_a_name_cached_before_a_codec_was_added_is_made_again(tmp_path: Path) -> None:
    runner = CountingRunner()
    names = SpokenNames(tmp_path, SMALL.voices, asterisk_path="/var/names", run=runner)
    await names.prompt("上海移动", "zh")
    key = names.key("上海移动", "zh")
    (tmp_path / f"{key}.g722").unlink()  # as a cache from before .g722 files were made
    await names.prompt("上海移动", "zh")
    assert runner.espeak_runs == 2 and (tmp_path / f"{key}.g722").exists()


def test_the_agent_hears_signed_linear_links_only_and_clean_removes_them(tmp_path: Path) -> None:
    # Issue 9: what an agent hears while held apart must be played as signed linear (see
    # AGENT_SOUNDS), so its folders hold links to the WAVs and no G.711/G.722 file.
    build_sounds(Manifest(voices={"en": "en"}, texts={"en": {
        "agent_progress": "The customer is entering payment details.",
        "customer_hung_up": "The customer hung up."}}), tmp_path)
    build_hold_music(tmp_path)
    assert link_agent_sounds(tmp_path) == 3 and link_agent_sounds(tmp_path) == 0
    agent = tmp_path / AGENT_SOUNDS
    links = sorted(p.relative_to(agent).as_posix() for p in agent.rglob("*") if p.is_symlink())
    assert links == ["agent_progress.wav", "customer_hung_up.wav", "hold/voicepay-hold.wav"]
    for link in agent.rglob("*.wav"):
        assert not Path(link.readlink()).is_absolute()  # also right inside Asterisk's sandbox
        assert link.read_bytes()[:4] == b"RIFF"
    assert [p for p in agent.rglob("*") if p.suffix in {f".{c}" for c in CODECS}] == []
    conf = (Path(__file__).parents[2] / "asterisk-conf" / "musiconhold.conf").read_text()
    assert f"directory = {load_settings().sounds_path}/{AGENT_SOUNDS}/hold" in conf
    dialplan = (Path(__file__).parents[2] / "dialplan" / "oneline.conf").read_text()
    assert "MusicOnHold(agent," in dialplan and "sounds/en/agent_" not in dialplan
    clean_sounds(tmp_path)
    assert not any(p.is_symlink() for p in agent.rglob("*"))
