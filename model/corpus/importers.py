"""Import real corpora into the manifest format.

    python -m model.corpus.importers kaldi DATA_DIR --out m.jsonl [--locale zh-CN]
    python -m model.corpus.importers commonvoice CV_DIR --out m.jsonl [--tsv validated.tsv]

Kaldi data directory: ``wav.scp`` (utt -> audio path), ``text``, ``utt2spk``,
optional ``utt2locale`` (else ``--locale``, e.g. zh-CN for AISHELL-1).
Only plain paths are supported in wav.scp; the ``cmd |`` pipe form (sph2pipe,
sox ...) raises ValueError - materialise those files first. ``segments`` is
not supported either (one utterance per file).

Common Voice release folder: a TSV (client_id, path, sentence[, locale]) and
``clips/*.mp3``. Durations come from ``clip_durations.tsv`` (shipped with
recent releases, milliseconds) when present; otherwise they are left at 0.0
("unknown") because decoding every MP3 header of a large release is slow:
compute them lazily at load time, or pass ``--probe-durations``.

Audio paths are written absolute; transcripts go through normalize_text.
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import soundfile as sf

from .manifest import Utterance, write_manifest
from model.text.normalize import normalize_text

# Common Voice locale -> our locale code.
CV_LOCALES = {"zh-CN": "zh-CN", "zh-HK": "yue-HK", "yue": "yue-HK", "zh-TW": "zh-TW", "en": "en-US"}


def map_cv_locale(locale: str) -> str:
    return CV_LOCALES.get(locale, locale)


def read_kaldi_table(path: Path) -> dict[str, str]:
    """'key rest of line' per line -> {key: rest}."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(maxsplit=1)
            if parts:
                table[parts[0]] = parts[1] if len(parts) > 1 else ""
    return table


def _wav_path(value: str, data_dir: Path) -> str:
    if value.rstrip().endswith("|"):
        raise ValueError(
            f"wav.scp pipe commands are not supported ({value!r}); "
            "convert the audio to files (e.g. with sox) and list plain paths"
        )
    path = Path(value)
    return str(path if path.is_absolute() else (data_dir / path).resolve())


def audio_duration(path: str) -> float:
    info = sf.info(path)
    return info.frames / info.samplerate


def import_kaldi(data_dir: str | os.PathLike, locale: str = "zh-CN") -> list[Utterance]:
    d = Path(data_dir)
    wavs, texts = read_kaldi_table(d / "wav.scp"), read_kaldi_table(d / "text")
    spk = read_kaldi_table(d / "utt2spk")
    locs = read_kaldi_table(d / "utt2locale") if (d / "utt2locale").is_file() else {}
    utts = []
    for utt_id in sorted(wavs.keys() & texts.keys()):
        loc = locs.get(utt_id, locale)
        audio = _wav_path(wavs[utt_id], d)
        utts.append(Utterance(utt_id, audio, normalize_text(texts[utt_id], loc), loc,
                              spk.get(utt_id, utt_id), round(audio_duration(audio), 4), "clean"))
    return utts


def read_cv_durations(cv_dir: Path) -> dict[str, float]:
    path = cv_dir / "clip_durations.tsv"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows, None)  # header: clip, duration[ms]
        return {r[0]: float(r[1]) / 1000 for r in rows if len(r) >= 2}


def _cv_duration(clip: Path, known: dict[str, float], probe: bool) -> float:
    if clip.name in known:
        return known[clip.name]
    return round(audio_duration(str(clip)), 4) if probe else 0.0


def import_commonvoice(cv_dir: str | os.PathLike, tsv: str = "validated.tsv",
                       locale: str | None = None, probe_durations: bool = False) -> list[Utterance]:
    d = Path(cv_dir)
    known = read_cv_durations(d)
    utts = []
    with open(d / tsv, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            loc = map_cv_locale(row.get("locale") or locale or "")
            if not loc:
                raise ValueError("TSV has no locale column: pass locale=/--locale")
            clip = (d / "clips" / row["path"]).resolve()
            utts.append(Utterance(Path(row["path"]).stem, str(clip), normalize_text(row["sentence"], loc), loc,
                                  row["client_id"], _cv_duration(clip, known, probe_durations), "clean"))
    return utts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    k = sub.add_parser("kaldi", help="Kaldi data directory")
    k.add_argument("data_dir")
    k.add_argument("--locale", default="zh-CN", help="default when utt2locale is absent")
    c = sub.add_parser("commonvoice", help="Common Voice release folder")
    c.add_argument("cv_dir")
    c.add_argument("--tsv", default="validated.tsv")
    c.add_argument("--locale", default=None, help="for TSVs without a locale column (CV code, e.g. zh-HK)")
    c.add_argument("--probe-durations", action="store_true", help="read every clip header for its duration")
    for s in (k, c):
        s.add_argument("--out", required=True, help="manifest .jsonl to write")
    a = p.parse_args(argv)
    if a.kind == "kaldi":
        utts = import_kaldi(a.data_dir, a.locale)
    else:
        utts = import_commonvoice(a.cv_dir, a.tsv, a.locale, a.probe_durations)
    kept = [u for u in utts if u.text]  # empty after normalisation: nothing to learn
    write_manifest(a.out, kept)
    print(f"wrote {len(kept)} utterances to {a.out} ({len(utts) - len(kept)} empty transcripts dropped)")


if __name__ == "__main__":
    main()
