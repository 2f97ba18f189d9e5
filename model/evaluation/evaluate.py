"""Evaluation: decode a manifest per locale at full context and at streaming chunk sizes with the same pipeline
the service runs (CTC prefix beam search + attention rescoring, locale given), plus greedy CTC for reference and
language identification with `auto`. CER for Chinese locales, WER for English, per locale and per recording
condition; disparity = worst / best locale error rate. Writes JSON and a markdown model card, and can store the
results in the checkpoint so `/v1/models` serves them.

    python -m model.evaluation.evaluate --checkpoint model/checkpoints/default.pt --manifest data/synth/test.jsonl \
        --out model/checkpoints/eval.json --card model/checkpoints/MODEL_CARD.md --store
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.accuracy.bootstrap import BootstrapOptions, LocaleCounts, evaluation_intervals
from model.accuracy.scoring import ErrorCount
from model.corpus.manifest import Utterance, read_manifest
from model.decoding.rescoring import RescoredHypothesis, RescoreWeights
from model.decoding.results import join_texts
from model.evaluation.model_card import bundled_as, write_model_card
from model.evaluation.splits import count_table, error_table, first_per_locale, transcribe_all, utterance_errors
from model.frontend.audio import load_audio_file
from model.frontend.segmenter import AudioSpan
from model.network.checkpoint import load_checkpoint, update_checkpoint
from model.network.encoder import ENCODER_FRAME_MS
from model.network.precision import QUANTIZATIONS
from model.recognition.recognizer import DecodeOptions, FusionSetting, Recognizer
from model.recognition.stream_decoder import (FinalEvent, StreamState, decode_stream_offline, finalize_segment,
                                              run_pending_final)

CHUNK_SIZES_MS = (320, 640, 1280)


# --------------------------------------------------------------------------- the service's pipeline, on audio


def evaluate_pipeline(recognizer: Recognizer, utterances: list[Utterance]) -> dict:
    audio = [load_audio_file(u.audio) for u in utterances]
    results: dict = {"utterances": len(utterances), "modes": {},
                     "beam_size": {loc: recognizer.beam_options(loc, DecodeOptions()).beam_size
                                   for loc in sorted({u.locale for u in utterances})}}
    modes = {"full_context": None, **{f"chunk_{ms}ms": ms // ENCODER_FRAME_MS for ms in CHUNK_SIZES_MS}}
    per_utterance: dict[str, list[ErrorCount]] = {}
    for name, chunk_frames in modes.items():
        rescored = transcribe_all(recognizer, utterances, audio, DecodeOptions(nbest=1, chunk_frames=chunk_frames))
        per_utterance[name] = utterance_errors(utterances, [t.text for t in rescored])
        summary, conditions = count_table(utterances, per_utterance[name])
        results["modes"][name] = {**summary, "per_condition": conditions}
        if chunk_frames is None:  # what each decoding stage adds, at full context
            greedy = transcribe_all(recognizer, utterances, audio, DecodeOptions(rescore=False, lm_weight=0.0))
            no_lm = transcribe_all(recognizer, utterances, audio, DecodeOptions(lm_weight=0.0))
            results["modes"][name]["greedy_ctc"] = error_table(utterances, [t.text for t in greedy])[0]
            results["modes"][name]["without_lm"] = error_table(utterances, [t.text for t in no_lm])[0]
        print(name, json.dumps({k: v["error_rate"] for k, v in summary["per_locale"].items()}), flush=True)
    add_intervals(results, utterances, per_utterance)
    # per utterance, so two models evaluated on one manifest compare pair by pair (model.evaluation.release_rule)
    results["per_utterance"] = {"ids": [u.id for u in utterances], "locales": [u.locale for u in utterances],
                                "reference_units": [c.reference_units for c in per_utterance["full_context"]],
                                "errors": {mode: [c.errors for c in counts] for mode, counts in per_utterance.items()}}
    detected = transcribe_all(recognizer, utterances, audio, DecodeOptions(rescore=False), detect=True)
    hits: dict[str, list[bool]] = defaultdict(list)
    for utterance, transcript in zip(utterances, detected):
        hits[utterance.locale].append(transcript.locale == utterance.locale)
    results["locale_detection_accuracy"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}
    streamed = evaluate_streamed_auto(recognizer, utterances, audio)
    for key, result in zip(("streamed_auto", "streamed_auto_full_context_finals"), streamed):
        results[key] = result
        print(key, json.dumps({k: v["error_rate"] for k, v in result["per_locale"].items()}), flush=True)
    return results


def add_intervals(results: dict, utterances: list[Utterance], per_utterance: dict[str, list[ErrorCount]],
                  options: BootstrapOptions = BootstrapOptions()) -> None:
    """Put 95% bootstrap intervals (model/accuracy/bootstrap.py) next to each mode's per-locale error rates and
    disparity, and each chunk size's relative cost over full context per locale (the issue's streaming target), with its
    own."""
    by_locale = {}
    for locale in sorted({u.locale for u in utterances}):
        rows = [i for i, u in enumerate(utterances) if u.locale == locale]
        by_locale[locale] = LocaleCounts(
            np.array([per_utterance["full_context"][i].reference_units for i in rows]),
            {mode: np.array([counts[i].errors for i in rows]) for mode, counts in per_utterance.items()})
    intervals = evaluation_intervals(by_locale, "full_context", options)
    full = {locale: int(counts.errors["full_context"].sum()) for locale, counts in by_locale.items()}
    for mode, summary in results["modes"].items():
        for locale, row in summary["per_locale"].items():
            row["ci95"] = intervals["per_locale"][mode][locale]
        summary["disparity_ci95"] = intervals["disparity"][mode]
        if mode in intervals["cost_over_reference"]:
            summary["cost_over_full_context"] = {
                locale: {"relative": round(int(counts.errors[mode].sum()) / full[locale] - 1, 4) if full[locale]
                         else None, "ci95": intervals["cost_over_reference"][mode][locale]}
                for locale, counts in by_locale.items()}
    results["intervals"] = {"method": "percentile bootstrap over each locale's utterances, the same draws for every "
                                      "mode (paired)", "level": options.level, "resamples": options.resamples,
                            "seed": options.seed}


def evaluate_streamed_auto(recognizer: Recognizer, utterances: list[Utterance], audio: list[torch.Tensor],
                           chunk_ms: int = 640) -> tuple[dict, dict]:
    """The WebSocket default: the streaming path (model.recognition.stream_decoder, the service's code, endpointing
    included) at `chunk_ms` with `locale=auto`, so the locale is detected while the audio arrives. Error rates per
    locale, and how often the finals were decoded as the right locale: for the finals as streamed, and for the stream
    option `full_context_finals` that decodes each final again from its segment's audio at full context. One pass gives
    both: the option changes only the finals (the partials, endpoints and the state after a final are the same), so
    each segment's end is finalised both ways (`streamed_finals_both_ways`)."""
    texts: tuple[list[str], list[str]] = ([], [])
    hits: tuple[dict, dict] = (defaultdict(list), defaultdict(list))
    options = DecodeOptions(locale=None, full_context_finals=True)
    for utterance, samples in zip(utterances, audio):
        for way, events in enumerate(streamed_finals_both_ways(recognizer, samples, options,
                                                               chunk_ms // ENCODER_FRAME_MS)):
            spoken = [e for e in events if isinstance(e, FinalEvent) and e.segment.text]
            texts[way].append(join_texts([e.segment.text for e in spoken]))
            hits[way][utterance.locale] += [e.segment.locale == utterance.locale for e in spoken]
    results = []
    for way, full_context_finals in enumerate((False, True)):
        summary, _ = error_table(utterances, texts[way])
        accuracy = {k: round(float(np.mean(v)), 4) for k, v in sorted(hits[way].items()) if v}
        results.append({**summary, "chunk_ms": chunk_ms, "full_context_finals": full_context_finals,
                        "final_locale_accuracy": accuracy})
    return results[0], results[1]


def streamed_finals_both_ways(recognizer: Recognizer, samples: torch.Tensor, options: DecodeOptions,
                              chunk_frames: int) -> tuple[list, list]:
    """One recording through `decode_stream_offline` with `full_context_finals`: its events with each segment's
    final as the chunked pass makes it, and as the full-context pass does."""
    chunked_final: dict[int, list] = {}  # id of a full-context final -> the chunked pass's final in its place

    def finish_both(recognizer: Recognizer, state: StreamState, events: list) -> tuple[StreamState, list]:
        if state.pending_final is None:
            return state, events
        chunked = finalize_segment(recognizer, replace(state, pending_final=None), state.pending_final)[1]
        state, second = run_pending_final(recognizer, state, [])
        # A chunked final with text has a full-context final (it falls back to the chunked one where it hears nothing).
        assert second or not chunked
        chunked_final.update({id(event): [] for event in second[1:]})
        if second:
            chunked_final[id(second[0])] = chunked
        return state, events + second

    _, events = decode_stream_offline(recognizer, samples, options, chunk_frames, finish_pending=finish_both)
    return [e for event in events for e in chunked_final.get(id(event), [event])], events


def locale_dev_error_rate(recognizer: Recognizer, locale: str, setting: FusionSetting, utterances: list[Utterance],
                          audio: list[torch.Tensor]) -> float:
    """Give `locale` this setting and measure its error rate on (its own) dev utterances."""
    recognizer.fusion_settings[locale] = setting
    texts = [t.text for t in transcribe_all(recognizer, utterances, audio, DecodeOptions())]
    return error_table(utterances, texts)[0]["per_locale"][locale]["error_rate"]


# RescoreWeights() (WeNet's decoder + 0.5 CTC) first: of equal dev errors the grid keeps the first.
RESCORE_GRID = tuple(RescoreWeights(ctc, lm, length) for ctc in (0.5, 1.0, 2.0, 3.0) for lm in (1.0, 1.5, 2.0, 3.0)
                     for length in (0.0, 1.0, 2.0, 3.0))


def ranked_segments(recognizer: Recognizer, locale: str,
                    segments: list[list[tuple[AudioSpan, torch.Tensor]]]) -> list[list[list[RescoredHypothesis]]]:
    """Per recording, its segments (`Recognizer.encode_recordings`, cut and encoded as an upload's are), each with
    its scored n-best as `locale` at the locale's current setting: what the final's ranking chooses from."""
    options = DecodeOptions(locale=locale)
    return [[recognizer.decode_segment(e, locale, options, None) for _, e in recording] for recording in segments]


def reranked_text(recognizer: Recognizer, segments: list[list[RescoredHypothesis]], weights: RescoreWeights) -> str:
    """The transcript if the finals ranked each segment's n-best by `weights` (a segment the decoder did not score,
    being a single hypothesis or too long for it, keeps its ranking)."""
    texts = []
    for ranked in segments:
        if not ranked:
            continue
        rescored = any(r.attention_log_prob != 0.0 for r in ranked)
        best = max(ranked, key=lambda r: weights.score(r.hypothesis, r.attention_log_prob)) if rescored else ranked[0]
        texts.append(recognizer.tokenizer.decode(best.hypothesis.token_ids))
    return join_texts([t for t in texts if t])


def tune_rescoring(recognizer: Recognizer, utterances: list[Utterance], ranked: list[list[list[RescoredHypothesis]]],
                   grid: tuple[RescoreWeights, ...] = RESCORE_GRID) -> tuple[RescoreWeights, float]:
    """The final ranking's weights with the lowest error on one locale's dev utterances (their n-best from
    `ranked_segments`, ranked again without decoding anything), and that error rate."""
    def rate(weights: RescoreWeights) -> float:
        counts = utterance_errors(utterances, [reranked_text(recognizer, segments, weights) for segments in ranked])
        return sum(c.errors for c in counts) / max(1, sum(c.reference_units for c in counts))

    rates = [rate(w) for w in grid]
    best = min(range(len(grid)), key=rates.__getitem__)
    return grid[best], rates[best]


def tune_lm_fusion(recognizer: Recognizer, utterances: list[Utterance],
                   weights: tuple[float, ...] = (0.0, 0.3, 0.5, 0.8, 1.2),
                   bonuses: tuple[float, ...] = (0.5, 1.5, 2.5, 3.5),
                   oov_penalties: tuple[float, ...] = (2.0, 4.0, 6.0), wider_beams: tuple[int, ...] = (16, 24),
                   beam_gain: float = 0.03, rescore_grid: tuple[RescoreWeights, ...] = RESCORE_GRID) -> dict:
    """Grid search of the LM weight and length bonus on a dev set, chosen per locale: each locale's LM only ever
    scores its own utterances, and the locales differ (token sets, sentence lengths, how much the acoustic model
    already gets right). The shared default (for a locale without its own setting) is the best mean. Then, for
    locales with a lexicon, the out-of-lexicon penalty at their chosen weight and bonus (0 stays if none helps).
    Last, how finals rank the n-best (`rescore_grid`, ranked again from one decode), at the beam so far and at
    each wider beam in turn, a wider beam kept only where it cuts the dev error of the beam chosen so far by
    `beam_gain` (relative) or more: it costs search time on every chunk of every stream of that locale."""
    audio = [load_audio_file(u.audio) for u in utterances]
    trials: list[dict[str, Any]] = []
    for bonus in bonuses:
        for weight in weights:
            if weight == 0 and bonus != bonuses[0]:
                continue  # without the LM the bonus is not used
            recognizer.fusion_settings, recognizer.default_fusion = {}, FusionSetting(weight, bonus)
            texts = [t.text for t in transcribe_all(recognizer, utterances, audio, DecodeOptions())]
            rates = {k: v["error_rate"] for k, v in error_table(utterances, texts)[0]["per_locale"].items()}
            trials.append({"weight": weight, "bonus": bonus, "per_locale": rates,
                           "mean": float(np.mean(list(rates.values())))})
            print(json.dumps(trials[-1]), flush=True)
    shared = min(trials, key=lambda t: t["mean"])  # min keeps the first (lightest) of equals
    per_locale = {}
    for locale in sorted(shared["per_locale"]):
        best = min(trials, key=lambda t: t["per_locale"][locale])
        per_locale[locale] = {"weight": best["weight"], "bonus": best["bonus"],
                              "dev_error_rate": best["per_locale"][locale]}
    recognizer.default_fusion = FusionSetting(shared["weight"], shared["bonus"])
    recognizer.fusion_settings = {k: FusionSetting(v["weight"], v["bonus"]) for k, v in per_locale.items()}
    for locale, chosen in per_locale.items():
        own = [i for i, u in enumerate(utterances) if u.locale == locale]
        own_utterances, own_audio = [utterances[i] for i in own], [audio[i] for i in own]
        setting = FusionSetting(chosen["weight"], chosen["bonus"])
        for value in oov_penalties if locale in recognizer.lexicons and chosen["weight"] > 0 else ():
            rate = locale_dev_error_rate(recognizer, locale, replace(setting, oov_penalty=value), own_utterances,
                                         own_audio)
            trials.append({**{k: v for k, v in chosen.items() if k != "dev_error_rate"}, "oov_penalty": value,
                           "per_locale": {locale: rate}})
            print(json.dumps(trials[-1]), flush=True)
            if rate < chosen["dev_error_rate"]:
                chosen.update({"oov_penalty": value, "dev_error_rate": rate})
        setting = replace(setting, oov_penalty=chosen.get("oov_penalty", 0.0))
        # Then the finals' ranking of the n-best (RescoreWeights), at the beam so far and at each wider beam, whose
        # n-best it ranks: a wider beam is kept with its own ranking only where the two together earn its cost.
        # The encoder output does not depend on the beam: encoded once, searched at each beam.
        own_segments = recognizer.encode_recordings(own_audio, [None] * len(own_audio))
        for beam in (setting.beam_size, *wider_beams):
            recognizer.fusion_settings[locale] = replace(setting, beam_size=beam)
            ranking, rate = tune_rescoring(recognizer, own_utterances,
                                           ranked_segments(recognizer, locale, own_segments), rescore_grid)
            wider = beam != setting.beam_size
            trials.append({**{k: v for k, v in chosen.items() if k not in ("dev_error_rate", "rescore")},
                           **({"beam_size": beam} if wider else {}), "rescore": asdict(ranking),
                           "per_locale": {locale: rate}})
            print(json.dumps(trials[-1]), flush=True)
            # A wider beam costs search time on every chunk of every stream of the locale: it must earn it.
            needed = (1 - beam_gain) * chosen["dev_error_rate"] if wider else chosen["dev_error_rate"]
            if rate < chosen["dev_error_rate"] and rate <= needed:
                chosen.update({"rescore": asdict(ranking), "dev_error_rate": rate,
                               **({"beam_size": beam} if wider else {})})
        recognizer.fusion_settings[locale] = replace(setting, beam_size=chosen.get("beam_size", setting.beam_size),
                                                     rescore=RescoreWeights(**chosen.get("rescore", {})))
    return {"weight": shared["weight"], "bonus": shared["bonus"], "per_locale": per_locale,
            "dev_mean_error_rate": float(np.mean([v["dev_error_rate"] for v in per_locale.values()])),
            "shared_dev_mean_error_rate": shared["mean"], "trials": trials}


# Where a checkpoint keeps each evaluation: the synthetic test, real recordings of people, an unheard synthesiser
EVALUATION_KEYS = ("evaluation", "real_speech_evaluation", "heldout_synthesiser_evaluation")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="model/checkpoints/default.pt")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", default="model/checkpoints/eval.json")
    parser.add_argument("--card", help="also write the markdown model card here")
    parser.add_argument("--store", action="store_true", help="store the results in the checkpoint's metadata")
    parser.add_argument("--store-as", default="evaluation", choices=EVALUATION_KEYS,
                        help="which evaluation the manifest is: the synthetic test (shown as the model's accuracy), "
                             "real speech (../shared/realdev) or a synthesiser family no training utterance uses")
    parser.add_argument("--limit-per-locale", type=int, help="evaluate only the first N utterances per locale")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tune-lm-on", help="a dev manifest: grid-search the LM fusion weight there first")
    parser.add_argument("--tune-per-locale", type=int, default=60, help="dev utterances per locale for the search")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="decode with int8 linear layers, as a CPU server with ASR_QUANTIZE=int8 does")
    args = parser.parse_args(argv)
    if args.store and args.quantize != "none":
        parser.error("--store writes the model back into the checkpoint: store the evaluation of the float model")
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint)
    utterances = read_manifest(args.manifest)
    if args.limit_per_locale:
        utterances = first_per_locale(utterances, args.limit_per_locale)
    recognizer = Recognizer(loaded, quantization=args.quantize)
    if args.tune_lm_on and loaded.language_models:
        dev = read_manifest(args.tune_lm_on)
        dev = first_per_locale(dev, args.tune_per_locale)
        loaded.metadata["lm_fusion"] = tune_lm_fusion(recognizer, dev)
    results = {"manifest": str(args.manifest), "quantization": args.quantize,
               **evaluate_pipeline(recognizer, utterances)}
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if args.store:
        loaded.metadata[args.store_as] = results
        update_checkpoint(args.checkpoint, loaded)
    if args.card:
        write_model_card(Path(args.card), loaded, results, bundled_as(args.checkpoint))
    print(json.dumps({m: r["per_locale"] for m, r in results["modes"].items()}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
