"""Where a tonal locale's character errors come from: the wrong syllable, or the right syllable with the wrong tone
(the rest are homophones: right syllable and tone, wrong character), and how much the pitch input helps.

Each reference and hypothesis is romanised (pinyin with tone numbers for Mandarin via pypinyin, Jyutping for Cantonese
via pycantonese) and scored three ways with the same edit distance as CER: characters, syllables with tones, syllables
without tones. Tone errors = syllable-with-tone errors - syllable errors. Decoding is greedy CTC without LM or
rescoring, so the numbers describe the acoustic model itself; further passes repeat it with the relative log F0 channel
switched off (for a model that has one), then with the encoder's whole pitch path. A model with the auxiliary
tonal-syllable head (model.decoding.syllables) also reports what that head hears, syllable by syllable.

    python -m model.evaluation.tone_errors --checkpoint model/checkpoints/default.pt --manifest data/synth/dev.jsonl
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import rapidfuzz.distance.Levenshtein as levenshtein
import torch

from model.accuracy.scoring import count_errors, scoring_units
from model.decoding.syllables import SYLLABLE_BLANK, SYLLABLES, TONAL_LOCALES, tonal_syllables, without_tone
from model.evaluation.splits import add_analysis_arguments, analysis_inputs, store_analysis, transcribe_all
from model.recognition.recognizer import DecodeOptions


@dataclass
class ToneErrorCounts:
    characters: int = 0  # reference characters
    character_errors: int = 0
    syllable_tone_errors: int = 0
    syllable_errors: int = 0

    def add(self, locale: str, reference: str, hypothesis: str) -> None:
        characters = count_errors(reference, hypothesis, locale)  # the CER of model.evaluation.evaluate, same units
        self.characters += characters.reference_units
        self.character_errors += characters.errors
        romanise = SYLLABLES[locale]
        reference, hypothesis = "".join(scoring_units(reference, locale)), "".join(scoring_units(hypothesis, locale))
        self.syllable_tone_errors += levenshtein.distance(romanise(reference, True), romanise(hypothesis, True))
        self.syllable_errors += levenshtein.distance(romanise(reference, False), romanise(hypothesis, False))

    def rates(self) -> dict[str, float]:
        n = max(self.characters, 1)
        return {"cer": round(self.character_errors / n, 4),
                "syllable_error_rate": round(self.syllable_errors / n, 4),
                "tone_error_rate": round((self.syllable_tone_errors - self.syllable_errors) / n, 4)}


def homophone_rate(rates: dict[str, float]) -> float:
    """The character errors left once wrong syllables and wrong tones are counted: right syllable and tone,
    wrong character (rates as ToneErrorCounts.rates gives them, stored without this share)."""
    return rates["cer"] - rates["syllable_error_rate"] - rates["tone_error_rate"]


def measure(recognizer, utterances, audio, served: bool = False) -> dict[str, dict]:
    """Greedy CTC (what the acoustic model hears), or `served`: the service's beam search with LM fusion and
    rescoring (what is left after context has had its say)."""
    counts = {locale: ToneErrorCounts() for locale in TONAL_LOCALES if any(u.locale == locale for u in utterances)}
    options = DecodeOptions() if served else DecodeOptions(lm_weight=0.0, rescore=False)
    transcripts = transcribe_all(recognizer, utterances, audio, options)
    for utterance, transcript in zip(utterances, transcripts):
        counts[utterance.locale].add(utterance.locale, utterance.text, transcript.text)
    return {locale: {**c.rates(), "characters": c.characters} for locale, c in counts.items()}


@torch.no_grad()
def syllable_head_errors(recognizer, utterances, audio) -> dict[str, dict]:
    """What the model's auxiliary tonal-syllable head (model.decoding.syllables) hears, greedy, at full context:
    syllable errors and tone-only errors per reference syllable. It reads tones directly, without the characters'
    context."""
    model, table = recognizer.model, recognizer.model.config.syllables
    counts: dict[str, list[int]] = {}  # locale -> [reference syllables, errors with tones, errors without]
    for utterance, samples in zip(utterances, audio):
        features = recognizer.extractor(samples).to(recognizer.device, recognizer.dtype)
        _, lengths, tapped = model.encoder.forward_with_tap(
            model.normalize(features)[None], torch.tensor([features.shape[0]], device=recognizer.device), None, None,
            model.config.syllable_layer)
        best = model.syllable_head(tapped[0, : int(lengths[0])]).argmax(-1).tolist()
        heard = [table[i] for j, i in enumerate(best) if i != SYLLABLE_BLANK and (j == 0 or best[j - 1] != i)]
        reference = tonal_syllables(utterance.text, utterance.locale)
        assert reference is not None, utterance.text  # the analysis reads tonal locales only
        toneless = [without_tone(s) for s in reference], [without_tone(s) for s in heard]
        count = counts.setdefault(utterance.locale, [0, 0, 0])
        count[0] += len(reference)
        count[1] += levenshtein.distance(reference, heard)
        count[2] += levenshtein.distance(*toneless)
    return {locale: {"syllable_error_rate": round(wrong / max(n, 1), 4),
                     "tone_error_rate": round((tonal - wrong) / max(n, 1), 4),
                     "syllables": n} for locale, (n, tonal, wrong) in counts.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_analysis_arguments(parser)
    args = parser.parse_args(argv)
    utterances, audio, recognizer = analysis_inputs(args, TONAL_LOCALES)
    modes = {"with_pitch": measure(recognizer, utterances, audio),
             "served": measure(recognizer, utterances, audio, served=True)}
    head = syllable_head_errors(recognizer, utterances, audio) if recognizer.model.syllable_head else None
    pitch = recognizer.model.encoder.pitch_path
    pitch_dim = recognizer.model.config.encoder.pitch_dim
    if pitch is not None and pitch.weight.shape[1] > pitch_dim:  # the relative log F0 channel (EncoderConfig)
        with torch.no_grad():
            pitch.weight[:, pitch_dim:] = 0
        modes["relative_pitch_zeroed"] = measure(recognizer, utterances, audio)
    if pitch is not None:
        with torch.no_grad():
            pitch.weight.zero_()
            if pitch.bias is not None:
                pitch.bias.zero_()
        modes["pitch_path_zeroed"] = measure(recognizer, utterances, audio)
    results = {"checkpoint": args.checkpoint, "manifest": args.manifest,
               "decoding": "greedy CTC, no LM, no rescoring; `served`: beam search, LM fusion and rescoring",
               "modes": modes, "syllable_head": head}
    print(f"{'locale':8} {'input':22} {'CER':>7} {'syllable':>9} {'tone':>7} {'homophone':>10}")
    for mode, per_locale in modes.items():
        for locale, r in per_locale.items():
            print(f"{locale:8} {mode:22} {r['cer']:7.1%} {r['syllable_error_rate']:9.1%} {r['tone_error_rate']:7.1%} "
                  f"{homophone_rate(r):10.1%}")
    for locale, r in (head or {}).items():
        print(f"{locale:8} {'syllable head':22} {'':>7} {r['syllable_error_rate']:9.1%} {r['tone_error_rate']:7.1%}"
              f"  (per reference syllable: the auxiliary head's own greedy output)")
    # the pitch path above was zeroed in place: store_analysis loads the checkpoint afresh
    store_analysis(args, "tone_errors", {**results, "utterances_per_locale": args.limit_per_locale})


if __name__ == "__main__":
    main()
