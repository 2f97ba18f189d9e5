"""Where English word errors come from: words heard wrong, or words written wrong that sound right (a homophone
such as "knight" for "night", or a phonetic spelling such as "nite"), which only spelling and context can fix.

Every word of each reference and hypothesis is replaced by how espeak-ng pronounces it (the `en-us` voice's phonemes,
`espeak-ng -x --sep=_`, stress marks dropped) and the two sequences are scored with the same edit distance as WER.
Sound errors are what remains; homophone errors = word errors - sound errors. Of the sound errors, a word written in
place of the one said whose phonemes are one edit from it ("darmage" for "damage", "bag" for "big") is a near miss:
the word was nearly heard, which a lexicon and a language model are there to mend; the rest (words left out or added,
words two or more phonemes off, and letter strings espeak-ng spells out, such as "plt" for "plate") were heard wrong.
The phoneme error rate compares the utterances' phoneme sequences (per reference phoneme): how well the model hears,
whatever it writes. Greedy decoding (CTC, no LM, no rescoring) describes the acoustic model; `served` (beam search, LM
fusion, rescoring) what the user gets.

The corpus is espeak-ng speech, so "sounds the same" is decided by the synthesiser that spoke it: a hypothesis
word that espeak-ng says alike is one the audio cannot tell apart.

    python -m model.evaluation.sound_alike --checkpoint model/checkpoints/default.pt --manifest data/synth/dev.jsonl
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import rapidfuzz.distance.Levenshtein as levenshtein

from model.accuracy.scoring import count_errors, scoring_units
from model.decoding.pronunciation import VOICE, Pronunciation, pronounce
from model.evaluation.splits import add_analysis_arguments, analysis_inputs, store_analysis, transcribe_all
from model.recognition.recognizer import DecodeOptions

ENGLISH = ("en-US",)


@dataclass
class SoundAlikeCounts:
    words: int = 0  # reference words
    word_errors: int = 0
    sound_errors: int = 0
    near_misses: int = 0  # of the sound errors: a substituted word one phoneme edit from the word said
    phonemes: int = 0  # reference phonemes
    phoneme_errors: int = 0

    def add(self, reference: str, hypothesis: str, sounds: dict[str, Pronunciation]) -> None:
        errors = count_errors(reference, hypothesis, "en-US")  # the WER of model.evaluation.evaluate, same units
        self.words += errors.reference_units
        self.word_errors += errors.errors
        ref, hyp = scoring_units(reference, "en-US"), scoring_units(hypothesis, "en-US")
        ref_sounds, hyp_sounds = [sounds.get(w, (w,)) for w in ref], [sounds.get(w, (w,)) for w in hyp]
        edits = levenshtein.editops(ref_sounds, hyp_sounds)
        self.sound_errors += len(edits)
        self.near_misses += sum(e.tag == "replace"
                                and levenshtein.distance(ref_sounds[e.src_pos], hyp_sounds[e.dest_pos]) == 1
                                for e in edits)
        ref_phonemes, hyp_phonemes = [p for s in ref_sounds for p in s], [p for s in hyp_sounds for p in s]
        self.phonemes += len(ref_phonemes)
        self.phoneme_errors += levenshtein.distance(ref_phonemes, hyp_phonemes)

    def rates(self) -> dict[str, float]:
        n = max(self.words, 1)
        return {"wer": round(self.word_errors / n, 4), "sound_error_rate": round(self.sound_errors / n, 4),
                "homophone_rate": round((self.word_errors - self.sound_errors) / n, 4), "words": self.words,
                "near_miss_rate": round(self.near_misses / n, 4),
                "phoneme_error_rate": round(self.phoneme_errors / max(self.phonemes, 1), 4)}


def count(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Rates over (reference, hypothesis) pairs of English text."""
    sounds = pronounce([w for pair in pairs for text in pair for w in scoring_units(text, "en-US")])
    counts = SoundAlikeCounts()
    for reference, hypothesis in pairs:
        counts.add(reference, hypothesis, sounds)
    return counts.rates()


def measure(recognizer, utterances, audio, served: bool) -> dict[str, float]:
    options = DecodeOptions() if served else DecodeOptions(lm_weight=0.0, rescore=False)
    transcripts = transcribe_all(recognizer, utterances, audio, options)
    return count([(u.text, t.text) for u, t in zip(utterances, transcripts)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_analysis_arguments(parser)
    args = parser.parse_args(argv)
    utterances, audio, recognizer = analysis_inputs(args, ENGLISH)
    modes = {"greedy": measure(recognizer, utterances, audio, served=False),
             "served": measure(recognizer, utterances, audio, served=True)}
    results = {"checkpoint": args.checkpoint, "manifest": args.manifest, "voice": VOICE, "modes": modes,
               "utterances": len(utterances)}
    print(f"{'decoding':8} {'WER':>7} {'sound errors':>13} {'one phoneme off':>16} {'sounds alike':>13} "
          f"{'phoneme errors':>15}")
    for mode, r in modes.items():
        print(f"{mode:8} {r['wer']:7.1%} {r['sound_error_rate']:13.1%} {r['near_miss_rate']:16.1%} "
              f"{r['homophone_rate']:13.1%} {r['phoneme_error_rate']:15.1%}")
    store_analysis(args, "sound_alike_errors", results)


if __name__ == "__main__":
    main()
