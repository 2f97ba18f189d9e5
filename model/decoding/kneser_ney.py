"""Estimating the token n-gram tables that model.decoding.lm queries: interpolated Kneser-Ney (Chen & Goodman 1998)
with one discount per order, and perplexity on held-out sentences. model.training.build_lm runs it on the corpus text
sources when a model is built; model.decoding.adaptation on an operator's own sentences when a deployment adapts one.

N-grams of the highest order seen fewer than `min_count` times (default 2: singletons) are pruned, their mass staying
with the lower orders, which keeps the model a few MB. A context none of whose n-grams survived backs off with weight
exactly 1, which is what an unseen context does, so it is not stored either.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from model.decoding.lm import LanguageModel, NgramLM, max_order, ngram_key

DISCOUNT = 0.75


def count_ngrams(sentences: Iterable[list[int]], order: int, start_id: int) -> list[Counter]:
    """counts[n][tuple of n+1 tokens]; each sentence is padded with order-1 start tokens and one end token."""
    counts: list[Counter] = [Counter() for _ in range(order)]
    for tokens in sentences:
        padded = [start_id] * (order - 1) + list(tokens) + [start_id]
        for n in range(order):
            for i in range(order - 1 - n, len(padded) - n):
                counts[n][tuple(padded[i : i + n + 1])] += 1
    return counts


def continuation_counts(counts: Counter) -> Counter:
    """N1+(. w_2..w_n): in how many distinct contexts each shorter n-gram appears (Kneser-Ney's lower orders)."""
    continuation: Counter = Counter()
    for ngram in counts:
        continuation[ngram[1:]] += 1
    return continuation


def discounted_tables(counts: Counter, min_count: int, vocab_size: int) -> tuple[dict, dict]:
    """alpha for each kept n-gram and gamma for each context, from (possibly continuation) counts; n-grams seen
    fewer than min_count times are pruned (1 keeps all)."""
    totals: dict[tuple, float] = defaultdict(float)
    types: dict[tuple, int] = defaultdict(int)
    for ngram, count in counts.items():
        totals[ngram[:-1]] += count
        types[ngram[:-1]] += 1
    alpha = {
        ngram_key(ngram, vocab_size): (count - DISCOUNT) / totals[ngram[:-1]]
        for ngram, count in counts.items() if count > DISCOUNT and count >= min_count
    }
    # Pruned n-grams keep their mass in gamma, so the distribution still sums to one.
    pruned_mass: dict[tuple, float] = defaultdict(float)
    kept_contexts: set[tuple] = set()
    for ngram, count in counts.items():
        if count < min_count:
            pruned_mass[ngram[:-1]] += (count - DISCOUNT) / totals[ngram[:-1]]
        else:
            kept_contexts.add(ngram[:-1])
    # A context that kept nothing has gamma = (D * types + sum(count - D)) / total = 1: exactly the back-off of a
    # context never seen, so leaving it out changes no probability (a third of a Mandarin 4-gram's entries).
    gamma = {ngram_key(context, vocab_size): DISCOUNT * types[context] / totals[context] + pruned_mass[context]
             for context in totals if context in kept_contexts}
    return alpha, gamma


def train_ngram(sentences: list[list[int]], vocab_size: int, order: int = 3, start_id: int = 2,
                min_count: int = 2) -> NgramLM:
    """Interpolated Kneser-Ney; the highest order keeps the n-grams seen at least min_count times."""
    if not 1 <= order <= max_order(vocab_size):
        raise ValueError(f"n-gram order {order} is outside 1..{max_order(vocab_size)} for {vocab_size} tokens "
                         "(n-gram keys are stored as int64)")
    counts = count_ngrams(sentences, order, start_id)
    lm = NgramLM(order=order, vocab_size=vocab_size, end_id=start_id)
    for n in range(1, order):
        table = counts[n] if n == order - 1 else continuation_counts(counts[n + 1])
        alpha, gamma = discounted_tables(table, min_count if n == order - 1 else 1, vocab_size)
        lm.alpha.update(alpha)
        lm.gamma.update(gamma)
    unigram_counts = continuation_counts(counts[1]) if order > 1 else counts[0]
    total = sum(unigram_counts.values())
    # 1% uniform: every token keeps a little probability, so unseen characters are not vetoed outright.
    lm.unigram = [0.99 * unigram_counts.get((w,), 0) / total + 0.01 / vocab_size for w in range(vocab_size)]
    return lm


def perplexity(lm: LanguageModel, sentences: Sequence[Sequence[int]]) -> float:
    log_sum, count = 0.0, 0
    for tokens in sentences:
        history = [lm.end_id] * (lm.order - 1)
        for token in list(tokens) + [lm.end_id]:
            log_sum += lm.log_prob(history, token)
            history.append(token)
            count += 1
    return math.exp(-log_sum / max(count, 1))
