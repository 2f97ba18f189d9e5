"""espeak-ng synthesis to float32 16 kHz mono.

espeak-ng writes 22050 Hz 16-bit WAV to stdout with a streaming header (the
size fields are 0x7fffffff), so the header is parsed here rather than handed
to soundfile. Resampling uses scipy's polyphase filter (22050 * 320/441 = 16000).
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile
from scipy.signal import resample_poly

from model.corpus.random_voices import ensure_variant, is_random_variant

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050


@dataclass(frozen=True)
class VoiceSpec:
    language: str  # espeak voice, e.g. "cmn-latn-pinyin", "yue", "en-gb-x-rp"
    variant: str | None = None  # e.g. "m3", "f2", "klatt2", "Andy"
    speed: int = 175  # words per minute (-s); Chinese needs 170-300
    pitch: int = 50  # 0-99 (-p)
    amplitude: int = 100  # 0-200 (-a); keep <= 120 to avoid clipping

    @property
    def espeak_voice(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language

    @property
    def speaker(self) -> str:
        """Speaker identity = voice + variant; speed/pitch vary within a speaker."""
        return self.espeak_voice


@lru_cache(maxsize=None)
def voice_file(language: str) -> str:
    """The voice file of an espeak language code ("en-gb" -> "gmw/en"; MBROLA voices, not installed, skipped)."""
    rows = subprocess.run(["espeak-ng", "--voices"], capture_output=True, check=True).stdout.decode().splitlines()[1:]
    files = [cells[4] for cells in map(str.split, rows) if len(cells) > 4 and cells[1] == language]
    return next((f for f in files if not f.startswith("mb/")), language)


def voice_argument(voice: VoiceSpec) -> str:
    """What selects the voice with its variant. A language code that is not its voice file's own name ("en-gb",
    whose file is gmw/en) is resolved by espeak-ng by language, which silently drops "+variant": every en-gb
    variant spoke as the plain en-gb voice, held-out ones included, until the corpus builder named the file."""
    file = voice_file(voice.language)
    name = voice.language if file.rsplit("/", 1)[-1].lower() == voice.language.lower() else file
    return f"{name}+{voice.variant}" if voice.variant else name


def espeak_args(voice: VoiceSpec) -> list[str]:
    # A random variant (model/corpus/random_voices.py) lives in a private copy of espeak-ng's data folder.
    data = [f"--path={ensure_variant(voice.variant)}"] if is_random_variant(voice.variant) else []
    return [
        "espeak-ng", *data, "-v", voice_argument(voice), "-s", str(voice.speed),
        "-p", str(voice.pitch), "-a", str(min(voice.amplitude, 120)), "--stdout", "--stdin",
    ]


def parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode espeak's 16-bit mono WAV (ignoring its bogus size fields)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not return a WAV stream")
    rate = struct.unpack("<I", data[24:28])[0]
    start = data.find(b"data", 12) + 8
    pcm = data[start:]
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, rate


def _espeak_raw(text: str, voice: VoiceSpec) -> tuple[np.ndarray, int]:
    proc = subprocess.run(espeak_args(voice), input=text.encode("utf-8"), capture_output=True, check=True)
    return parse_wav_bytes(proc.stdout)


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return audio.astype(np.float32)
    g = np.gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def loud_frames(audio: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Indices of the 10 ms frames louder than threshold_db below the peak (none in silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    n = audio.size // frame
    if peak == 0.0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    env = np.abs(audio[: n * frame]).reshape(n, frame).max(axis=1)
    return np.nonzero(env > peak * 10 ** (threshold_db / 20))[0]


def trim_silence(audio: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Cut leading/trailing 10 ms frames quieter than threshold_db below peak."""
    active = loud_frames(audio, threshold_db, frame)
    if active.size == 0:
        return audio
    # Keep one frame either side so soft onsets/releases are not clipped.
    start = max(active[0] - 1, 0) * frame
    end = min((active[-1] + 2) * frame, audio.size)
    return audio[start:end]


def pad_silence(audio: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """50-150 ms of silence each side (random when rng given, else 100 ms)."""
    lead, tail = (rng.integers(800, 2401, size=2) if rng is not None else (1600, 1600))
    return np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)])


def synthesize(text: str, voice: VoiceSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """Speak ``text`` with ``voice``; float32 mono at 16 kHz, lightly trimmed+padded."""
    raw, rate = _espeak_raw(text, voice)
    return pad_silence(trim_silence(to_16k(raw, rate)), rng)


@lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """Variant file names from ``espeak-ng --voices=variant`` (e.g. "m3", "Andy")."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, check=True).stdout
    names = []
    for line in out.decode("utf-8", errors="replace").splitlines()[1:]:
        m = re.search(r"!v/(\S+)(\s+\(.*\))?\s*$", line)
        if m:  # "Mr serious" has a space in its file name and cannot be selected
            names.append(m.group(1))
    return tuple(names)


@lru_cache(maxsize=1)
def list_languages() -> tuple[str, ...]:
    """Language voice names from ``espeak-ng --voices`` (second column)."""
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, check=True).stdout
    rows = out.decode("utf-8", errors="replace").splitlines()[1:]
    return tuple(r.split()[1] for r in rows if len(r.split()) > 1)


def write_wav(path: os.PathLike | str, audio: np.ndarray) -> None:
    """16-bit 16 kHz WAV, written atomically: an interrupted render never leaves half a clip that a resumed one keeps."""
    path = os.fspath(path)
    tmp = path[: -len(".wav")] + ".tmp.wav" if path.endswith(".wav") else path + ".tmp.wav"
    soundfile.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
