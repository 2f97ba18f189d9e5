"""Random espeak-ng voice variants: new synthetic speakers beyond the ~90 variant files espeak-ng ships.

Why: the model hears unseen voices far worse than unseen sentences. Rendering fresh utterances of its own
training sentences with the held-out variants costs greedy CER +4.1 points in Cantonese, +6.7 in Mandarin and
+8.1 WER in English, more than unseen sentences spoken by training voices (+5.2, +4.5, +3.8; 150 utterances per
cell, docs/model_releases.md). With ~80 training variants, each a fixed set of formant scalings, the model learns
those speakers rather than speech. A variant file is a few lines of text (pitch range, a frequency / height / width
scaling per formant, roughness, flutter, voicing, breath, echo, or a Klatt voice source; espeak-ng's
docs/voices.md), so any number of new speakers can be drawn inside the ranges the shipped variants span.

A random variant is named `rnd<number>`, and its file is a pure function of the number: a plan names its voices, and any
machine that renders the plan (model.training.online_corpus on a GPU host) writes the same files. espeak-ng reads
variants only from its data folder, so each file goes into a small folder of its own that links to the rest of
espeak-ng's data (`RANDOM_VOICES_DIR`, default ~/.cache/openasr/espeak-voices), passed with `--path`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

PREFIX = "rnd"
SEED = 20261130  # the variants' own seed: fixed, so that rnd00042 is the same voice in every plan and on every machine


# rnd90000 and up never speak in a training plan (BuildConfig refuses more random voices than this): unheard random
# speakers from the same distribution, for measuring what new voices cost (model.evaluation.heldout_gap)
HELD_OUT_START = 90_000


def random_variant_names(count: int, start: int = 0) -> list[str]:
    return [f"{PREFIX}{number:05d}" for number in range(start, start + count)]


def is_random_variant(variant: str | None) -> bool:
    return bool(variant) and re.fullmatch(rf"{PREFIX}\d{{5}}", variant) is not None


def variant_text(name: str) -> str:
    """The variant file of `rnd<number>`: drawn from the number alone, inside the ranges of the shipped variants."""
    number = int(name[len(PREFIX):])
    rng = np.random.default_rng([SEED, number])
    female = rng.random() < 0.5
    # Hz: the shipped male variants sit about 70-130 base / 100-160 range, the female 140-220 / 180-280.
    base = int(rng.integers(140, 221)) if female else int(rng.integers(70, 131))
    span = int(rng.integers(180, 281)) if female else int(rng.integers(100, 161))
    lines = ["language variant", f"name {name}", f"gender {'female' if female else 'male'}", f"pitch {base} {span}"]
    shift = 1.08 if female else 1.0  # a shorter vocal tract raises every formant together
    for formant in range(9):
        low = formant <= 5  # formants 0-5 carry the vowels; 6-8 only colour the voice
        frequency = int(round(100 * shift * rng.uniform(0.88, 1.12) if low else rng.uniform(90, 110)))
        height = int(rng.integers(60, 131) if low else rng.integers(50, 101))
        width = int(rng.integers(60, 161))
        lines.append(f"formant {formant} {frequency} {height} {width}")
    lines.append(f"roughness {int(rng.integers(0, 5))}")
    lines.append(f"flutter {int(rng.integers(0, 21))}")
    lines.append(f"voicing {int(rng.integers(80, 161))}")
    lines.append(f"consonants {int(rng.integers(80, 131))} {int(rng.integers(80, 131))}")
    if rng.random() < 0.3:
        lines.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 4, size=8)))
    if rng.random() < 0.3:
        lines.append(f"echo {int(rng.integers(0, 161))} {int(rng.integers(0, 16))}")
    if rng.random() < 0.2:
        lines.append(f"klatt {int(rng.integers(1, 7))}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=None)
def system_data_dir() -> Path:
    """espeak-ng's own data folder ("Data at: ..." in its --version line)."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, check=True, text=True).stdout
    match = re.search(r"Data at:\s*(\S+)", out)
    if not match:
        raise RuntimeError(f"espeak-ng did not say where its data is: {out!r}")
    return Path(match.group(1))


def voices_root() -> Path:
    return Path(os.environ.get("RANDOM_VOICES_DIR", Path.home() / ".cache" / "openasr" / "espeak-voices"))


def ensure_variant(name: str) -> Path:
    """A data folder for espeak-ng's --path in which `name` is a variant (`variant_folder`), under `voices_root()`."""
    return variant_folder(voices_root(), name)


@lru_cache(maxsize=None)
def variant_folder(root: Path, name: str) -> Path:
    """A data folder for espeak-ng's --path in which `name` is a variant: links to the system folder's files, with
    a variants folder of its own that holds just this one file. One folder per variant, since espeak-ng lists at
    most 350 voice files and ignores the rest, so a few hundred variants cannot share a folder. Made atomically:
    render workers race."""
    folder = root / name
    if (folder / "voices" / "!v" / name).exists():
        return folder
    system = system_data_dir()
    partial = folder.with_name(f".{name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "voices" / "!v").mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name != "voices":
            (partial / entry.name).symlink_to(entry)
    for entry in (system / "voices").iterdir():
        if entry.name != "!v":
            (partial / "voices" / entry.name).symlink_to(entry)
    (partial / "voices" / "!v" / name).write_text(variant_text(name))
    try:
        partial.rename(folder)
    except OSError:  # another worker made it first
        shutil.rmtree(partial, ignore_errors=True)
    return folder
