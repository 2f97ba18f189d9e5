"""How espeak-ng says English words: its phonemes per word, the synthesiser's own reading of the text.

The synthetic corpus is espeak-ng speech, so these are the phonemes the audio carries: what the auxiliary pronunciation
CTC learns for English (model.decoding.syllables) and what model.evaluation.sound_alike compares errors by.
"""

from __future__ import annotations

import subprocess

VOICE = "en-us"
STRESS_MARKS = str.maketrans("", "", "',")  # espeak-ng's primary and secondary stress
Pronunciation = tuple[str, ...]  # phonemes (espeak-ng's ASCII mnemonics, e.g. ("n", "aI", "t") for "night")


def pronounce(words, voice: str = VOICE) -> dict[str, Pronunciation]:
    """espeak-ng's phonemes of each word, spoken alone, stress marks dropped (one process for all: a word and a full
    stop per line gives one output line per word)."""
    unique = sorted({w for w in words if w.strip()})
    if not unique:
        return {}
    command = ["espeak-ng", "-q", "-x", "--sep=_", "-v", voice]
    out = subprocess.run(command, input="".join(f"{w}.\n" for w in unique), capture_output=True, text=True,
                         check=True).stdout.splitlines()
    if len(out) != len(unique):  # a word espeak-ng splits into clauses of its own: ask for each word alone
        out = [subprocess.run(command, input=f"{w}.\n", capture_output=True, text=True, check=True).stdout
               for w in unique]
    return {w: tuple(p for p in line.translate(STRESS_MARKS).replace("\n", " ").replace(" ", "_").split("_") if p)
            for w, line in zip(unique, out)}
