"""Confidence intervals of the evaluation (model/accuracy/bootstrap.py) and how the evaluation and the model card carry
them."""

from pathlib import Path

import numpy as np

from helpers import ROOT
from model.accuracy.bootstrap import BootstrapOptions, LocaleCounts, evaluation_intervals

# a convolutional model: the greedy comparison reads a feature cache made by its front end
CHECKPOINT = str(ROOT / "model" / "checkpoints" / "synthetic" / "synthetic_voices.pt")


def utterances(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    units = rng.integers(4, 16, n)
    return units, rng.binomial(units, rate)


def test_an_error_rate_interval_holds_the_rate_and_narrows_with_more_utterances():
    widths = []
    for n in (100, 1600):
        units, errors = utterances(n, 0.12, seed=n)
        intervals = evaluation_intervals({"zh-CN": LocaleCounts(units, {"full_context": errors})})
        low, high = intervals["per_locale"]["full_context"]["zh-CN"]
        assert low < errors.sum() / units.sum() < high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # about 1/sqrt(16) as wide


def test_the_streaming_cost_interval_is_paired_so_a_small_consistent_loss_is_told_apart_from_noise():
    """One extra error in every tenth utterance at 640 ms is a real loss even though the two rates' own intervals
    overlap: paired resampling sees it; the same errors at both sizes cost exactly nothing."""
    units, errors = utterances(300, 0.12, seed=1)
    worse = errors + (np.arange(300) % 10 == 0)
    result = evaluation_intervals({"yue-HK": LocaleCounts(units, {"full_context": errors, "chunk_640ms": worse,
                                                                   "chunk_1280ms": errors.copy()})})
    full, chunked = (result["per_locale"][m]["yue-HK"] for m in ("full_context", "chunk_640ms"))
    assert chunked[0] < full[1]  # the rates' intervals overlap...
    low, high = result["cost_over_reference"]["chunk_640ms"]["yue-HK"]
    assert 0 < low < worse.sum() / errors.sum() - 1 < high  # ...but the paired cost is above zero
    assert result["cost_over_reference"]["chunk_1280ms"]["yue-HK"] == [0.0, 0.0]


def test_intervals_are_reproducible_and_a_locale_without_errors_leaves_the_disparity_open_above():
    units, errors = utterances(200, 0.1, seed=2)
    counts = {"en-US": LocaleCounts(units, {"full_context": errors}),
              "yue-HK": LocaleCounts(units[:20], {"full_context": np.zeros(20, dtype=int)})}
    first = evaluation_intervals(counts, options=BootstrapOptions(resamples=500, seed=7))
    assert first == evaluation_intervals(counts, options=BootstrapOptions(resamples=500, seed=7))
    assert first["per_locale"]["full_context"]["yue-HK"] == [0.0, 0.0]
    assert first["disparity"]["full_context"] == [None, None]  # best locale at 0%: the worst is infinitely worse


def test_the_evaluation_stores_intervals_beside_every_rate_and_the_model_card_prints_them():
    from model.accuracy.scoring import ErrorCount
    from model.accuracy.scoring import summarize
    from model.corpus.manifest import Utterance
    from model.evaluation.evaluate import add_intervals
    from model.evaluation.model_card import evaluation_table, interval_lines

    rng = np.random.default_rng(3)
    rows = [Utterance(f"u{i}", "x.wav", "x", locale, "v", 1.0) for i, locale in enumerate(["en-US", "zh-CN"] * 150)]
    per_utterance = {mode: [ErrorCount(int(rng.binomial(10, p)), 10) for _ in rows]
                     for mode, p in (("full_context", 0.1), ("chunk_640ms", 0.12))}
    results = {"modes": {}}
    for mode, counts in per_utterance.items():
        totals = {locale: sum((c for c, u in zip(counts, rows) if u.locale == locale), ErrorCount(0, 0))
                  for locale in ("en-US", "zh-CN")}
        results["modes"][mode] = summarize(totals)
    add_intervals(results, rows, per_utterance)
    en_full = results["modes"]["full_context"]["per_locale"]["en-US"]
    assert en_full["ci95"][0] < en_full["error_rate"] < en_full["ci95"][1]
    assert results["modes"]["chunk_640ms"]["disparity_ci95"][0] >= 1.0
    cost = results["modes"]["chunk_640ms"]["cost_over_full_context"]["zh-CN"]
    full_errors, chunk_errors = (results["modes"][m]["per_locale"]["zh-CN"]["errors"]
                                 for m in ("full_context", "chunk_640ms"))
    assert cost["relative"] == round(chunk_errors / full_errors - 1, 4)
    assert cost["ci95"][0] < cost["relative"] < cost["ci95"][1]
    assert "cost_over_full_context" not in results["modes"]["full_context"]
    table = "\n".join(evaluation_table(results, ["en-US", "zh-CN"]))
    low, high = en_full["ci95"]
    assert f"{100 * en_full['error_rate']:.1f}% ({100 * low:.1f}–{100 * high:.1f})" in table
    costs = "\n".join(interval_lines({**results, "intervals": {"level": 0.95, "resamples": 2000}}, ["en-US", "zh-CN"]))
    low, high = cost["ci95"]
    assert f"| zh-CN | {100 * cost['relative']:+.1f}% ({100 * low:+.1f} to {100 * high:+.1f}) |" in costs


def test_a_paired_model_comparison_reads_the_difference_of_the_same_utterances():
    """bench/compare_models.py: the same errors give a zero difference with a zero interval; one model better on
    every utterance gives a negative difference whose interval excludes zero, and the counts say so."""
    from bench.compare_models import paired_difference

    units = np.full(50, 10)
    errors = np.random.default_rng(1).integers(0, 4, size=50)
    same = paired_difference(errors, errors, units, np.random.default_rng(0))
    assert same["difference_points"] == 0.0 and same["ci95_points"] == [0.0, 0.0]
    assert same["better"] == same["worse"] == 0
    better = paired_difference(errors + 1, errors, units, np.random.default_rng(0))
    assert better["difference_points"] == -10.0 and better["ci95_points"][1] < 0 and better["better"] == 50


def test_a_greedy_comparison_over_a_feature_cache_pairs_each_utterance_with_itself(tmp_path, monkeypatch,
                                                                                   bundled_samples):
    """bench/compare_models.py --greedy-cache: the bundled model against itself over a cache of the bundled samples
    gives zero difference in every locale and mode, and its per-utterance counts add up to the trainer's dev totals."""
    import bench.compare_models as compare_models
    from model.corpus.manifest import Utterance, write_manifest
    from model.network.checkpoint import load_checkpoint
    from model.training.dataset import FeatureCorpus, build_feature_cache
    from model.training.greedy_eval import evaluate_corpus, greedy_utterance_errors

    write_manifest(tmp_path / "dev.jsonl",
                   [Utterance(Path(s["audio"]).stem, str(s["path"]), s["text"], s["locale"], s["speaker"],
                                                      s["duration"]) for s in bundled_samples])
    build_feature_cache(tmp_path / "dev.jsonl", tmp_path / "cache", "dev", jobs=1)
    written = {}
    monkeypatch.setattr(compare_models, "write_results", lambda name, payload: written.update({name: payload}))
    compare_models.main(["--before", CHECKPOINT, "--after", CHECKPOINT, "--greedy-cache", str(tmp_path / "cache"),
                         "--threads", "1"])
    paired = written["compare_models_greedy"]["paired"]
    assert sorted(paired) == [f"{mode} {locale}" for mode in ("chunk_640ms", "full_context")
                              for locale in ("en-US", "yue-HK", "zh-CN")]
    assert all(r["difference_points"] == 0.0 and r["better"] == r["worse"] == 0 for r in paired.values())

    corpus, loaded = FeatureCorpus.open(tmp_path / "cache", "dev"), load_checkpoint(CHECKPOINT)
    per_utterance = greedy_utterance_errors(loaded, corpus, None)
    assert sorted(per_utterance) == list(range(len(corpus.rows)))
    for locale, total in evaluate_corpus(loaded, corpus, None).items():
        counts = [c for i, c in per_utterance.items() if corpus.rows[i]["locale"] == locale]
        after = paired[f"full_context {locale}"]["after"]
        assert total.errors == sum(c.errors for c in counts) == round(after * total.reference_units)
