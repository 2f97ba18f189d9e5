"""Accuracy (not speed) of recordings as they are and after a quiet room: each clip as recorded, and after 2 s of
white noise at -50 dBFS with 0.5 s of digital silence after it (a microphone opened before the speaker talks);
uploads (`Recognizer.transcribe`) and 640 ms streams (`decode_stream_offline`, the service's streaming path with its
endpointing), locale given and `auto`: error per locale, and how often `auto` put an upload or a final in the right
locale. The model learned from utterances with a fraction of a second of silence around them, so this is where its
handling of silence and its locale detection show (docs/model_releases.md, 0.16.0).

    python -m bench.bench_room_silence [--checkpoint PATH] [--per-locale 12] [--manifest M ...]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import benchmark_recognizer, git_commit, machine_info, print_table, write_results  # noqa: E402
from model.accuracy.scoring import count_errors  # noqa: E402
from model.corpus.manifest import Utterance, read_manifest  # noqa: E402
from model.decoding.results import join_texts  # noqa: E402
from model.frontend.audio import load_audio_file  # noqa: E402
from model.frontend.features import SAMPLE_RATE  # noqa: E402
from model.recognition.recognizer import DecodeOptions, Recognizer  # noqa: E402
from model.recognition.stream_decoder import FinalEvent, decode_stream_offline  # noqa: E402

MANIFESTS = ("../shared/realdev/manifest.jsonl", "data/kokoro_dev_all/manifest.jsonl", "data/synth/test.jsonl")
ROOM_LEVEL = 0.003  # white noise at about -50 dBFS
ROOM_BEFORE_S, SILENCE_AFTER_S = 2.0, 0.5
CHUNK_FRAMES = 16  # 640 ms


def in_a_room(samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    room = ROOM_LEVEL * torch.randn(int(ROOM_BEFORE_S * SAMPLE_RATE), generator=generator)
    return torch.cat([room, samples, torch.zeros(int(SILENCE_AFTER_S * SAMPLE_RATE))])


def heard(recognizer: Recognizer, samples: torch.Tensor, locale: str | None) -> dict[str, tuple[str, list[str]]]:
    """Per path, the text and the locale of each upload or final."""
    upload = recognizer.transcribe(samples, DecodeOptions(locale=locale))
    _, events = decode_stream_offline(recognizer, samples, DecodeOptions(locale=locale), CHUNK_FRAMES)
    finals = [e.segment for e in events if isinstance(e, FinalEvent) and e.segment.text]
    return {"upload": (upload.text, [upload.locale]),
            "stream": (join_texts([f.text for f in finals]), [f.locale or "" for f in finals])}


def first_per_locale(path: str, per_locale: int) -> list[Utterance]:
    counts: dict[str, int] = defaultdict(int)
    chosen = []
    for utterance in read_manifest(path):
        if counts[utterance.locale] < per_locale:
            counts[utterance.locale] += 1
            chosen.append(utterance)
    return chosen


def measure(recognizer: Recognizer, path: str, per_locale: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    right: dict[str, list[bool]] = defaultdict(list)
    for utterance in first_per_locale(path, per_locale):
        samples = load_audio_file(str(utterance.audio))
        for condition, audio in (("as recorded", samples), ("after 2 s of room", in_a_room(samples, generator))):
            for locale in (utterance.locale, None):
                for way, (text, locales) in heard(recognizer, audio, locale).items():
                    count = count_errors(utterance.text, text, utterance.locale)
                    key = f"{utterance.locale} | {condition} | {way} | {'given' if locale else 'auto'}"
                    tally[key][0] += count.errors
                    tally[key][1] += count.reference_units
                    if locale is None:
                        right[f"{utterance.locale} | {condition} | {way}"] += [l == utterance.locale for l in locales]
    return {"error": {k: round(100 * e / max(n, 1), 1) for k, (e, n) in sorted(tally.items())},
            "locale_right": {k: [sum(v), len(v)] for k, v in sorted(right.items())}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: the bundled model")
    parser.add_argument("--manifest", nargs="+", default=list(MANIFESTS))
    parser.add_argument("--per-locale", type=int, default=12, help="utterances per locale of each manifest "
                                                                  "(the real-speech set: all of them)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint, loaded, recognizer = benchmark_recognizer(args.checkpoint)
    results = {}
    for path in args.manifest:
        results[path] = measure(recognizer, path, 1000 if "realdev" in path else args.per_locale)
        rows = [[k, v] for k, v in results[path]["error"].items()]
        print_table(f"{path}: error (%)", ["locale | condition | path | locale given or auto", "error"], rows)
    write_results("room_silence", {"machine": machine_info(args.threads), "commit": git_commit(),
                                   "model": f"{loaded.name} {loaded.version}", "checkpoint": checkpoint,
                                   "results": results})


if __name__ == "__main__":
    main()
