"""Whether hotwords bring out the names a support desk asks for. Per locale, product and brand names in short
support-call sentences spoken by two espeak-ng voices: English (20 names outside the English lexicon, such as
Kubernetes or PayPal, 3 sentences: 120 utterances), Mandarin (10 Chinese platforms, 2 sentences: 40) and Cantonese
(10 Hong Kong brands, 2 sentences: 40). Each is transcribed as an upload at full context and in 640 ms chunks (the
streaming search), locale named, with:

- no hotwords;
- the utterance's own name, as a caller writes it ("Kubernetes", "PayPal", "美团");
- English only: the same name lower-cased ("kubernetes"), which hotwords matched before they were normalised;
- all the locale's names as one list (a product catalogue);

at each boost asked for (`--boosts`; the service's default is 2.0 per token). Reported: how many utterances' transcripts
contain the spoken name (as a word in English, as a substring in Chinese), and how many times another name of the list
appears (false insertions). (Chinese finals also write a requested name where the characters sound like it but for the
tones: model.decoding.hotwords.correct_to_hotwords.) With a manifest (the corpus's dev split by default, when built),
also what the list costs speech that names none of them: each locale's error rate in 640 ms chunks without and with it.

    python -m bench.bench_hotwords [--checkpoint PATH] [--boosts 2 3] [--manifest data/synth/dev.jsonl]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import benchmark_recognizer, machine_info, print_table, set_threads, write_results
from model.corpus.manifest import read_manifest
from model.corpus.synthesize import VoiceSpec, synthesize
from model.evaluation.splits import error_table, transcribe_all
from model.frontend.audio import load_audio_file
from model.recognition.recognizer import DecodeOptions


@dataclass(frozen=True)
class NameSet:
    names: tuple[str, ...]
    sentences: tuple[str, ...]  # each with one {} for the name
    voices: tuple[VoiceSpec, ...]


NAME_SETS = {
    "en-US": NameSet(
        ("Zendesk", "Spotify", "Xiaomi", "Huawei", "TikTok", "Airbnb", "PayPal", "Netflix", "Dropbox", "Salesforce",
         "Shopify", "Twilio", "Grafana", "Okta", "Venmo", "Lyft", "Kubernetes", "Instacart", "DoorDash", "HubSpot"),
        ("please transfer me to {} support", "my {} account is locked", "i want to cancel my {} order"),
        (VoiceSpec("en-us", "m3", 170), VoiceSpec("en-us", "f2", 190))),
    "zh-CN": NameSet(
        ("拼多多", "美团", "京东", "小红书", "支付宝", "淘宝", "抖音", "饿了么", "携程", "滴滴"),
        ("我的{}账号被锁了", "请帮我转接{}客服"),
        (VoiceSpec("cmn-latn-pinyin", "m3", 220), VoiceSpec("cmn-latn-pinyin", "f2", 240))),
    "yue-HK": NameSet(
        ("港鐵", "八達通", "匯豐", "恒生", "百佳", "惠康", "屈臣氏", "豐澤", "中電", "煤氣"),
        ("我個{}戶口俾人鎖咗", "唔該幫我轉去{}客服"),
        (VoiceSpec("yue", "m3", 200), VoiceSpec("yue", "f2", 220))),
}
MODES = {"full context": None, "640 ms chunks": 16}
DEV_MANIFEST = Path("data/synth/dev.jsonl")


def says(text: str, name: str, locale: str) -> bool:
    return name.lower() in text.split() if locale == "en-US" else name in text


def cases(names: tuple[str, ...], boosts: tuple[float, ...]) -> dict[str, tuple]:
    """Case label -> (hotwords for an utterance naming `name`, boost)."""
    chosen: dict[str, tuple] = {"none": (lambda name: (), 0.0)}
    for boost in boosts:
        chosen[f"own name, boost {boost:g}"] = (lambda name: (name,), boost)
        if any(n != n.lower() for n in names):
            chosen[f"own name lower-cased, boost {boost:g}"] = (lambda name: (name.lower(),), boost)
        chosen[f"all {len(names)} names, boost {boost:g}"] = (lambda name: names, boost)
    return chosen


def name_rows(recognizer, locale: str, name_set: NameSet, boosts: tuple[float, ...]) -> list[dict]:
    spoken = [(name, synthesize(sentence.format(name.lower()), voice))
              for name in name_set.names for sentence in name_set.sentences for voice in name_set.voices]
    rows = []
    for mode, chunk_frames in MODES.items():
        for case, (hotwords, boost) in cases(name_set.names, boosts).items():
            found = inserted = 0
            for name, audio in spoken:
                options = DecodeOptions(locale=locale, hotwords=hotwords(name), hotword_boost=boost or 2.0,
                                        chunk_frames=chunk_frames)
                text = recognizer.transcribe(torch.from_numpy(audio), options).text
                found += says(text, name, locale)
                inserted += sum(says(text, other, locale) for other in name_set.names if other != name)
            rows.append({"locale": locale, "mode": mode, "hotwords": case, "utterances": len(spoken),
                         "name_found": found, "other_names_inserted": inserted})
            print(rows[-1], flush=True)
    return rows


def unrelated_speech(recognizer, manifest: Path, boosts: tuple[float, ...]) -> list[dict]:
    """Each locale's error rate on the manifest's utterances (which name none of the products) in 640 ms chunks,
    without hotwords and with the locale's whole name list at each boost."""
    rows = []
    by_locale: dict[str, list] = {}
    for utterance in read_manifest(manifest):
        by_locale.setdefault(utterance.locale, []).append(utterance)
    for locale, utterances in sorted(by_locale.items()):
        if locale not in NAME_SETS:
            continue
        audio = [load_audio_file(u.audio) for u in utterances]
        for boost in (0.0, *boosts):
            hotwords = NAME_SETS[locale].names if boost else ()
            options = DecodeOptions(hotwords=hotwords, hotword_boost=boost or 2.0, chunk_frames=16)
            # as model.evaluation.evaluate does
            texts = [t.text for t in transcribe_all(recognizer, utterances, audio, options)]
            rows.append({"locale": locale,
                         "hotwords": f"all {len(hotwords)} names, boost {boost:g}" if boost else "none",
                         "utterances": len(utterances),
                         "error_rate_640ms": error_table(utterances, texts)[0]["per_locale"][locale]["error_rate"]})
            print(rows[-1], flush=True)
    return rows


def run(checkpoint: str | None, boosts: tuple[float, ...], manifest: Path | None, locales: tuple[str, ...]) -> dict:
    path, _, recognizer = benchmark_recognizer(checkpoint)
    lexicon = recognizer.lexicons.get("en-US")
    rows = [row for locale in locales for row in name_rows(recognizer, locale, NAME_SETS[locale], boosts)]
    return {"checkpoint": path, "boosts": boosts,
            "name_sets": {loc: {"names": s.names, "sentences": s.sentences,
                                "voices": [v.espeak_voice for v in s.voices]}
                          for loc, s in NAME_SETS.items() if loc in locales},
            "english_names_in_lexicon": [n for n in NAME_SETS["en-US"].names if lexicon and n.lower() in lexicon.words],
            "rows": rows, "unrelated_speech": unrelated_speech(recognizer, manifest, boosts) if manifest else None,
            "machine": machine_info(torch.get_num_threads())}


def print_report(report: dict) -> None:
    print_table("hotwords: support-call utterances that name a product (name recognised / utterances)",
                ("locale", "mode", "hotwords", "name recognised", "other names inserted"),
                [(r["locale"], r["mode"], r["hotwords"], f"{r['name_found']}/{r['utterances']}",
                  r["other_names_inserted"])
                 for r in report["rows"]])
    if report["unrelated_speech"]:
        print()
        print_table("what the name list costs speech that names none of them (640 ms chunks; CER, English WER)",
                    ("locale", "hotwords", "utterances", "error rate"),
                    [(r["locale"], r["hotwords"], r["utterances"], f"{r['error_rate_640ms']:.2%}")
                     for r in report["unrelated_speech"]])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--boosts", type=float, nargs="+", default=[2.0], help="hotword boosts per token to compare")
    parser.add_argument("--locales", nargs="+", default=list(NAME_SETS), choices=list(NAME_SETS))
    parser.add_argument("--name", default="hotwords", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--manifest", type=Path, default=DEV_MANIFEST if DEV_MANIFEST.exists() else None,
                        help="speech that names no product, for the error rate the lists cost (default: the dev split)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    report = run(args.checkpoint, tuple(args.boosts), args.manifest, tuple(args.locales))
    print_report(report)
    print(f"\nwrote {write_results(args.name, report)}")


if __name__ == "__main__":
    main()
