"""Whether hotwords bring out the names a support desk asks for: 20 product names outside the English lexicon
(brands such as Kubernetes or PayPal, spoken in three support-call sentences by two espeak-ng voices: 120
utterances), transcribed as uploads at full context and in 640 ms chunks (the streaming search), with:

- no hotwords;
- the utterance's own name as a caller writes it ("Kubernetes", "PayPal");
- the same name lower-cased ("kubernetes");
- all 20 names as one list (a product catalogue).

Reported: the share of utterances whose transcript contains the spoken name as a word, and how many times any
other name of the list appears (false insertions). With a manifest (the corpus's dev split by default, when built),
also what the 20-name list costs speech that names none of them: English WER at 640 ms without and with it.

    python -m bench.bench_hotwords [--checkpoint PATH] [--manifest data/synth/dev.jsonl]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import benchmark_recognizer, machine_info, print_table, set_threads, write_results
from model.audio import load_audio_file
from model.corpus.manifest import read_manifest
from model.corpus.synthesize import VoiceSpec, synthesize
from model.recognizer import DecodeOptions
from model.scoring import ErrorCount, count_errors

NAMES = ("Zendesk", "Spotify", "Xiaomi", "Huawei", "TikTok", "Airbnb", "PayPal", "Netflix", "Dropbox", "Salesforce",
         "Shopify", "Twilio", "Grafana", "Okta", "Venmo", "Lyft", "Kubernetes", "Instacart", "DoorDash", "HubSpot")
TEMPLATES = ("please transfer me to {} support", "my {} account is locked", "i want to cancel my {} order")
VOICES = (VoiceSpec("en-us", "m3", 170), VoiceSpec("en-us", "f2", 190))
CASES = {
    "none": lambda name: (),
    "own name as written": lambda name: (name,),
    "own name lower-cased": lambda name: (name.lower(),),
    "all 20 names": lambda name: NAMES,
}
MODES = {"full context": None, "640 ms chunks": 16}
DEV_MANIFEST = Path("data/synth/dev.jsonl")


def unrelated_speech_wer(recognizer, manifest: Path) -> dict[str, float]:
    """English WER of the manifest's English utterances in 640 ms chunks, without hotwords and with all 20 names."""
    utterances = [u for u in read_manifest(manifest) if u.locale == "en-US"]
    audio = [load_audio_file(u.audio) for u in utterances]
    rates = {}
    for case, hotwords in (("none", ()), ("all 20 names", NAMES)):
        options = DecodeOptions(locale="en-US", hotwords=hotwords, chunk_frames=16)
        total = ErrorCount(0, 0)
        for start in range(0, len(audio), 32):
            texts = recognizer.transcribe_batch(audio[start : start + 32], [options] * len(audio[start : start + 32]))
            for utterance, transcript in zip(utterances[start : start + 32], texts):
                total += count_errors(utterance.text, transcript.text, "en-US")
        rates[case] = round(total.rate, 4)
    return {"manifest": str(manifest), "utterances": len(utterances), "wer_640ms": rates}


def run(checkpoint: str | None, manifest: Path | None = None) -> dict:
    path, _, recognizer = benchmark_recognizer(checkpoint)
    spoken = [(name, synthesize(template.format(name.lower()), voice))
              for name in NAMES for template in TEMPLATES for voice in VOICES]
    lexicon = recognizer.lexicons.get("en-US")
    rows = []
    for mode, chunk_frames in MODES.items():
        for case, hotwords in CASES.items():
            found = inserted = 0
            for name, audio in spoken:
                options = DecodeOptions(locale="en-US", hotwords=hotwords(name), chunk_frames=chunk_frames)
                words = recognizer.transcribe(torch.from_numpy(audio), options).text.split()
                found += name.lower() in words
                inserted += sum(other.lower() in words for other in NAMES if other != name)
            rows.append({"mode": mode, "hotwords": case, "utterances": len(spoken), "name_found": found,
                         "other_names_inserted": inserted})
            print(rows[-1], flush=True)
    return {"checkpoint": path, "names": NAMES, "templates": TEMPLATES, "voices": [v.espeak_voice for v in VOICES],
            "names_in_lexicon": [n for n in NAMES if lexicon is not None and n.lower() in lexicon.words],
            "rows": rows, "unrelated_speech": unrelated_speech_wer(recognizer, manifest) if manifest else None,
            "machine": machine_info(torch.get_num_threads())}


def print_report(report: dict) -> None:
    print_table(
        f"hotwords: support-call utterances that name a product ({len(report['names'])} names, "
        f"{len(report['names_in_lexicon'])} of them in the English lexicon)",
        ("mode", "hotwords", "name recognised", "other names inserted"),
        [(r["mode"], r["hotwords"], f"{r['name_found']}/{r['utterances']}", r["other_names_inserted"])
         for r in report["rows"]],
    )
    if report["unrelated_speech"]:
        u = report["unrelated_speech"]
        print(f"\nEnglish WER at 640 ms of {u['utterances']} utterances of {u['manifest']} that name none of them: "
              f"{u['wer_640ms']['none']:.2%} without hotwords, {u['wer_640ms']['all 20 names']:.2%} with the 20 names")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="hotwords", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--manifest", type=Path, default=DEV_MANIFEST if DEV_MANIFEST.exists() else None,
                        help="speech that names no product, for the English WER the list costs (default: the dev split)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    report = run(args.checkpoint, args.manifest)
    print_report(report)
    print(f"\nwrote {write_results(args.name, report)}")


if __name__ == "__main__":
    main()
