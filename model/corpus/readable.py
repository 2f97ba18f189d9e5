"""Which Hanzi an espeak-ng voice can pronounce.

espeak-ng 1.51 voices and Chinese:
* ``cmn-latn-pinyin`` (Mandarin) - must be used instead of plain ``cmn``,
  which misreads. Characters missing from its dictionary come out as the
  single phoneme string ``@:11`` (a bare schwa), i.e. silently dropped.
* ``yue`` (Cantonese) - a missing character is announced as a "letter"
  (phonemes ``l'e1t@1``) instead of a syllable.
* ``hak`` (Hakka) has only a tiny dictionary and switches to English to
  spell every Hanzi ("Chinese letter ..."), so it is not usable.
* ``yue-Latn-jyutping`` reads Jyutping romanisation, not Hanzi: not used.
No other Chinese variety (Min, Wu, Gan, Xiang ...) has an espeak-ng voice,
so the builder supports zh-CN (Mandarin) and yue-HK (Cantonese) only.

Each distinct character is checked alone with ``espeak-ng -x -q`` (batched,
one "char." per line gives one phoneme line per char) and the readable set is
cached as JSON, since the check is per-voice and never changes.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterable

# Phoneme outputs (found empirically) meaning "I don't know this character".
UNKNOWN_MARKERS: dict[str, tuple[str, ...]] = {
    "yue": ("l'e1t@1",),
    "cmn-latn-pinyin": ("@:11",),
}
_BATCH = 400


def _phonemes(chars: list[str], voice: str) -> list[str]:
    text = "".join(f"{c}.\n" for c in chars)
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-x", "-q", "--stdin"],
        input=text.encode("utf-8"), capture_output=True, check=True,
    ).stdout.decode("utf-8", errors="replace")
    return [line.strip() for line in out.splitlines() if line.strip()]


def is_readable_output(phonemes: str, voice: str) -> bool:
    """False for the voice's unknown-char marker, a language switch or nothing."""
    if not phonemes or "(" in phonemes:  # "(en)" = switched language to spell it
        return False
    core = phonemes.replace("_|", "").strip()
    return not any(core == m or m in core for m in UNKNOWN_MARKERS.get(voice, ()))


def _check_batch(chars: list[str], voice: str) -> dict[str, bool]:
    lines = _phonemes(chars, voice)
    if len(lines) != len(chars):  # batching misaligned: fall back to one call each
        lines = [" ".join(_phonemes([c], voice)) for c in chars]
    return {c: is_readable_output(p, voice) for c, p in zip(chars, lines)}


def check_chars(chars: Iterable[str], voice: str) -> dict[str, bool]:
    """Map each character to whether ``voice`` pronounces it."""
    todo = sorted(set(chars))
    result: dict[str, bool] = {}
    for i in range(0, len(todo), _BATCH):
        result.update(_check_batch(todo[i:i + _BATCH], voice))
    return result


def _load_cache(path: Path) -> dict[str, bool]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def readable_map(chars: Iterable[str], voice: str, cache_path: Path) -> dict[str, bool]:
    """check_chars with a JSON cache (only unseen characters hit espeak)."""
    cache = _load_cache(cache_path)
    missing = set(chars) - set(cache)
    if missing:
        cache.update(check_chars(missing, voice))
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    return cache


def filter_readable(sentences: list[str], voice: str, cache_path: Path) -> tuple[list[str], list[str]]:
    """Keep sentences whose every character the voice can read.

    Returns (kept sentences, sorted unreadable characters seen).
    """
    chars = {c for s in sentences for c in s if not c.isspace()}
    ok = readable_map(chars, voice, cache_path)
    kept = [s for s in sentences if all(ok.get(c, True) for c in s if not c.isspace())]
    return kept, sorted(c for c in chars if not ok[c])
