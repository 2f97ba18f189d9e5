"""English from another synthesiser family: Debian's flite voices, rendered from a manifest's sentences.

A model trained on espeak-ng's English meets flite's voices as an unheard synthesiser family (the held-out
synthesiser cell of the real-speech issue): what it reads there it reads from speech, not from one engine's signal.
Resumable: a clip already on disk is kept.

    python -m model.corpus.flite --manifest data/synth/test.jsonl --out data/flite_test --per-voice 25
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from model.corpus.manifest import Utterance, read_manifest, write_manifest
from model.corpus.synthesize import pad_silence, to_16k, trim_silence, write_wav

VOICES = ("slt", "awb", "rms", "kal16")  # kal (8 kHz) and awb_time (awb again) left out


def flite_speak(text: str, voice: str) -> np.ndarray:
    """float32 mono 16 kHz of `text` in flite's `voice`, trimmed and padded as the espeak-ng corpus is."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", wav.name], check=True, capture_output=True)
        audio, rate = soundfile.read(wav.name, dtype="float32")
    return pad_silence(trim_silence(to_16k(audio, rate)), None)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="its en-US sentences are spoken")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-voice", type=int, default=50)
    args = p.parse_args(argv)
    sentences = [u.text for u in read_manifest(args.manifest) if u.locale == "en-US"]
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for number, voice in enumerate(VOICES):
        first = number * args.per_voice
        for index, text in enumerate(sentences[first : first + args.per_voice], start=first):
            # named by the sentence's place in the manifest, so a clip kept on disk is always its own sentence's
            path = args.out / "wav" / f"en-US_flite_{voice}_{index:04d}.wav"
            if not path.exists():
                write_wav(path, flite_speak(text, voice))
            duration = soundfile.info(path).duration
            rows.append(Utterance(path.stem, f"wav/{path.name}", text, "en-US", f"flite-{voice}", round(duration, 3), "flite"))
    write_manifest(args.out / "manifest.jsonl", rows)
    print(f"{len(rows)} utterances in {args.out / 'manifest.jsonl'}")


if __name__ == "__main__":
    main()
