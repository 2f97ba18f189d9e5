"""How sure the evaluation's numbers are: percentile-bootstrap confidence intervals over test utterances.

A locale's test split is a few hundred short utterances (2,329 Cantonese characters in 0.10.0's), so an error rate,
the disparity between locales and the cost of streaming over full context each carry sampling noise of a point or
more. Each resample draws every locale's utterances with replacement (the locales independently, as they are
separate populations) and recomputes every statistic from the same draw; the chunk-size costs are therefore paired:
one utterance counts at both context sizes, which is what makes their intervals narrow enough to read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapOptions:
    resamples: int = 2000
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class LocaleCounts:
    """Per-utterance counts of one locale: reference units (N,) and errors (N,) under each decoding mode."""

    units: np.ndarray
    errors: dict[str, np.ndarray]


def resampled_rates(counts: LocaleCounts, resamples: int, rng: np.random.Generator,
                    block_elements: int = 4_000_000) -> dict[str, np.ndarray]:
    """Each mode's error rate in each of `resamples` draws of the utterances with replacement, (R,). Drawn in blocks
    of at most `block_elements` indices, so a long live window (service/fairness.py) stays within a few tens of MB."""
    n = len(counts.units)
    rates: dict[str, list[np.ndarray]] = {mode: [] for mode in counts.errors}
    block = max(1, block_elements // n)
    for start in range(0, resamples, block):
        draws = rng.integers(0, n, (min(block, resamples - start), n))
        units = np.maximum(counts.units[draws].sum(axis=1), 1)
        for mode, errors in counts.errors.items():
            rates[mode].append(errors[draws].sum(axis=1) / units)
    return {mode: np.concatenate(parts) for mode, parts in rates.items()}


def interval(samples: np.ndarray, level: float) -> list[float | None]:
    """The central `level` of the samples; an infinite bound (a ratio over a resample without errors) is None."""
    tail = (1 - level) / 2
    bounds = np.quantile(samples, [tail, 1 - tail], method="inverted_cdf")  # no interpolation: infinities stay exact
    return [round(float(b), 4) if np.isfinite(b) else None for b in bounds]


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0 / 0 = 1 (both without errors: no difference) and x / 0 = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.where(numerator > 0, np.inf, 1.0))


def evaluation_intervals(by_locale: dict[str, LocaleCounts], reference_mode: str = "full_context",
                         options: BootstrapOptions = BootstrapOptions()) -> dict:
    """Intervals for every mode's per-locale error rate and disparity (worst / best locale), and for each other
    mode's relative cost over `reference_mode` per locale (rate / reference rate - 1)."""
    rng = np.random.default_rng(options.seed)
    rates = {locale: resampled_rates(counts, options.resamples, rng)
             for locale, counts in sorted(by_locale.items()) if len(counts.units)}
    modes = sorted({mode for per_mode in rates.values() for mode in per_mode})
    result: dict = {"per_locale": {}, "disparity": {}, "cost_over_reference": {}}
    for mode in modes:
        result["per_locale"][mode] = {loc: interval(per_mode[mode], options.level) for loc, per_mode in rates.items()}
        stacked = np.stack([per_mode[mode] for per_mode in rates.values()])  # (locales, R)
        result["disparity"][mode] = interval(ratio(stacked.max(axis=0), stacked.min(axis=0)), options.level)
        if mode != reference_mode:
            result["cost_over_reference"][mode] = {
                loc: interval(ratio(per_mode[mode], per_mode[reference_mode]) - 1, options.level)
                for loc, per_mode in rates.items()}
    return result
