"""Building the token n-gram LMs (model.decoding.lm) and lexicons (model.decoding.lexicon) a checkpoint carries,
one per locale, from the corpus text sources minus the dev/test sentences.

Interpolated Kneser-Ney (Chen & Goodman 1998) with one discount per order. N-grams of the highest order seen fewer
than `min_count` times (default 2: singletons) are pruned, their mass staying with the lower orders, which keeps
the model a few MB. A context none of whose n-grams survived backs off with weight exactly 1, which is what an
unseen context does, so it is not stored either.

    python -m model.training.build_lm --checkpoint model/checkpoints/default.pt --exclude data/synth/dev.jsonl ...
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from model.corpus.manifest import read_manifest
from model.corpus.text_sources import load_sentences
from model.decoding.lexicon import Lexicon, word_list_entries
from model.decoding.lm import NgramLM, max_order, ngram_key
from model.network.checkpoint import load_checkpoint, update_checkpoint

DISCOUNT = 0.75


def count_ngrams(sentences: Iterable[list[int]], order: int, start_id: int) -> list[Counter]:
    """counts[n][tuple of n+1 tokens]; each sentence is padded with order-1 start tokens and one end token."""
    counts = [Counter() for _ in range(order)]
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


def perplexity(lm: NgramLM, sentences: list[list[int]]) -> float:
    log_sum, count = 0.0, 0
    for tokens in sentences:
        history = [lm.end_id] * (lm.order - 1)
        for token in list(tokens) + [lm.end_id]:
            log_sum += lm.log_prob(history, token)
            history.append(token)
            count += 1
    return math.exp(-log_sum / max(count, 1))


def parse_per_locale(items: list[str], default: int) -> dict[str | None, int]:
    """["3", "en-US=4"] -> {None: 3, "en-US": 4}; None is the value for the other locales (default if not given)."""
    values: dict[str | None, int] = {None: default}
    for item in items:
        locale, _, value = item.rpartition("=")
        values[locale or None] = int(value)
    return values


def main(argv: list[str] | None = None) -> None:
    """Train one LM per locale on the corpus text sources (minus dev/test sentences) and store them in a checkpoint:
    python -m model.training.build_lm --checkpoint model/checkpoints/default.pt --exclude data/synth/dev.jsonl ..."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--exclude", nargs="*", default=[], help="manifests whose sentences the LM must not see")
    parser.add_argument("--order", nargs="+", default=["3"], metavar="N | LOCALE=N",
                        help="n-gram order, for all locales and/or per locale (e.g. 3 en-US=4: English word pieces "
                             "need a longer history than characters)")
    parser.add_argument("--min-count", nargs="+", default=["2"], metavar="N | LOCALE=N",
                        help="prune n-grams of the highest order seen fewer than N times (default 2: singletons), "
                             "for all locales and/or per locale: what lets a Mandarin 4-gram fit the checkpoint")
    parser.add_argument("--lexicon", nargs="*", default=[], metavar="LOCALE",
                        help="locales written with spaces whose words become a lexicon (model.decoding.lexicon), "
                             "e.g. en-US")
    parser.add_argument("--word-list", nargs="*", default=[], metavar="LOCALE=PATH",
                        help="a spelling dictionary (one word per line) whose words join that locale's lexicon, e.g. "
                             "en-US=/usr/share/dict/american-english (Debian wamerican)")
    args = parser.parse_args(argv)
    word_lists = [tuple(item.split("=", 1)) for item in args.word_list]
    if any(len(pair) != 2 or pair[0] not in args.lexicon for pair in word_lists):
        parser.error("--word-list takes LOCALE=PATH for a locale also named in --lexicon")
    orders, min_counts = parse_per_locale(args.order, 3), parse_per_locale(args.min_count, 2)
    loaded = load_checkpoint(args.checkpoint)
    if max(orders.values()) > max_order(loaded.tokenizer.vocab_size) or min(orders.values()) < 1:
        parser.error(f"--order must be within 1..{max_order(loaded.tokenizer.vocab_size)} for this checkpoint's "
                     f"{loaded.tokenizer.vocab_size} tokens")
    held_out = {(u.locale, u.text) for path in args.exclude for u in read_manifest(path)}
    payloads, report = {}, {}
    for locale in loaded.tokenizer.locales:
        texts = [t for t in load_sentences(locale) if (locale, t) not in held_out]
        sentences = [loaded.tokenizer.encode(t) for t in texts]
        order = orders.get(locale, orders[None])
        min_count = min_counts.get(locale, min_counts[None])
        lm = train_ngram(sentences, loaded.tokenizer.vocab_size, order, min_count=min_count)
        # Sorted: a set's order changes between runs, and so would the perplexity of its first 300 sentences.
        check = [loaded.tokenizer.encode(t) for (loc, t) in sorted(held_out) if loc == locale][:300]
        report[locale] = {"sentences": len(texts), "tokens": sum(map(len, sentences)), "order": order, "min_count": min_count,
                          "entries": len(lm.alpha) + len(lm.gamma),
                          "held_out_perplexity": round(perplexity(lm, check), 1) if check else None}
        payloads[locale] = lm.to_payload()
        if locale in args.lexicon:  # words as the tokenizer normalises them, so they match decoded pieces
            lexicon = Lexicon.from_sentences(loaded.tokenizer.decode(ids) for ids in sentences)
            added, tokenizer = {}, loaded.tokenizer
            for path in (path for loc, path in word_lists if loc == locale):
                with open(path, encoding="utf-8", errors="replace") as f:
                    # Only words the tokenizer spells (the search could never write the others), as its pieces
                    # decode, like the text's words.
                    entries = {tokenizer.decode(tokenizer.encode(w)) for w in word_list_entries(f, locale)
                               if tokenizer.can_spell(w)}
                added[Path(path).name] = len(entries - lexicon.words)
                lexicon = lexicon.with_words(entries)
            payloads[locale]["lexicon"] = lexicon.to_payload()
            report[locale]["lexicon_words"] = len(lexicon.words)
            if added:
                report[locale]["lexicon_word_lists"] = added  # words each list added beyond the text (and lists before it)
        print(locale, report[locale], flush=True)
    loaded.metadata["language_models"] = report
    loaded.language_models = payloads
    update_checkpoint(args.checkpoint, loaded)


if __name__ == "__main__":
    main()
