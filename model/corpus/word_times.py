"""espeak-ng synthesis with the time each word starts: ground truth for timestamp accuracy (bench/bench_timestamps.py).

The `espeak-ng` command line (model/corpus/synthesize.py) returns audio only. The library reports, while it
synthesises, a word event with the word's position in the text and its sample offset in the audio, so the time a
word begins is known exactly, with no aligner in between. For Mandarin and Cantonese every Hanzi is its own word
event (checked: one event per character, positions counted in characters), which is the unit CER and the service's
`words` use. The library is bound with ctypes (libespeak-ng1, installed with espeak-ng) and is not thread-safe: one
synthesis at a time per process.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.corpus.synthesize import SAMPLE_RATE, VoiceSpec, loud_frames, to_16k, voice_argument

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EVENT_LIST_TERMINATED, EVENT_WORD = 0, 1
PARAMETER = {"rate": 1, "volume": 2, "pitch": 3}


class _Event(ctypes.Structure):  # espeak_EVENT (speak_lib.h)
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_LOCK = threading.Lock()


@dataclass(frozen=True)
class WordTime:
    text: str  # the word as written in the input text
    start_s: float  # where it begins in the returned audio
    end_s: float  # where the next word begins; the last word ends where the speech does (40 dB below its peak)


@dataclass
class _Capture:
    samples: list
    words: list  # (text position from 1, length in characters, sample offset at the engine's rate)


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int, _Capture, object]:
    library = ctypes.CDLL("libespeak-ng.so.1")
    rate = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
    if rate <= 0:
        raise RuntimeError("libespeak-ng failed to initialise (is espeak-ng-data installed?)")
    capture = _Capture([], [])

    def on_audio(wav, count, events) -> int:
        if wav and count > 0:
            capture.samples.extend(wav[:count])
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == EVENT_WORD:
                capture.words.append((event.text_position, event.length, event.sample))
            index += 1
        return 0

    callback = _CALLBACK(on_audio)  # kept alive with the library: ctypes does not hold it for the C side
    library.espeak_SetSynthCallback(callback)
    return library, rate, capture, callback


def synthesize_with_word_times(text: str, voice: VoiceSpec, lead_s: float = 0.3, tail_s: float = 0.3
                               ) -> tuple[np.ndarray, list[WordTime]]:
    """Speak `text` with `voice` -> float32 16 kHz mono (untrimmed, `lead_s` / `tail_s` of silence around it) and
    the start and end time of each of its words in that audio."""
    library, rate, capture, _ = _library()
    encoded = text.encode("utf-8")
    with _LOCK:
        capture.samples.clear()
        capture.words.clear()
        if library.espeak_SetVoiceByName(voice_argument(voice).encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.espeak_voice!r}")
        for name, value in (("rate", voice.speed), ("pitch", voice.pitch), ("volume", min(voice.amplitude, 120))):
            library.espeak_SetParameter(PARAMETER[name], value, 0)
        if library.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"espeak-ng could not synthesise {text!r}")
        library.espeak_Synchronize()
        pcm = np.array(capture.samples, dtype=np.float32) / 32768.0
        events = list(capture.words)
    audio = to_16k(pcm, rate)
    loud = loud_frames(audio)  # the last word ends with the last 10 ms frame within 40 dB of the peak
    speech_end_s = lead_s + (int(loud[-1]) + 1) / 100 if loud.size else lead_s  # frames of 10 ms
    found = [(text[position - 1 : position - 1 + length], lead_s + sample / rate)
             for position, length, sample in events if position > 0 and length > 0]
    ends = [start for _, start in found[1:]] + [speech_end_s]
    words = [WordTime(word, start, end) for (word, start), end in zip(found, ends)]
    lead = np.zeros(int(lead_s * SAMPLE_RATE), np.float32)
    return np.concatenate([lead, audio, np.zeros(int(tail_s * SAMPLE_RATE), np.float32)]), words
