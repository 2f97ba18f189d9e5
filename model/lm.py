"""Token n-gram language models, one per locale, fused into CTC prefix beam search (shallow fusion).

espeak-ng speaks homophones identically, so only context separates 是/事/市; the audio corpus covers ~40k
sentences while the text sources hold ~230k, so an n-gram over the model's own token ids, trained on all text
except the dev/test sentences, adds context the acoustic model never heard.

Interpolated Kneser-Ney (Chen & Goodman 1998) with one discount per order:
    P(w | h) = alpha(h, w) + gamma(h) * P(w | h[1:]),   P(w | ()) from continuation counts, mixed with uniform.
alpha and gamma are precomputed, so a lookup is at most `order` dictionary probes. N-grams of the highest order
seen fewer than `min_count` times (default 2: singletons) are pruned, their mass staying with the lower orders,
which keeps the model a few MB. A context none of whose n-grams survived backs off with weight exactly 1, which is
what an unseen context does, so it is not stored either.
Tables travel inside the checkpoint as int64 keys + float16 values (half the size of float32; a relative error of
5e-4 in a probability moves a fused score by 5e-4 nats), loadable with weights_only=True.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.lexicon import Lexicon, word_list_entries

DISCOUNT = 0.75


def ngram_key(tokens: Sequence[int], vocab_size: int) -> int:
    """A tuple of token ids as one int64 (base-(V+1) digits; 0 is reserved for 'no token')."""
    key = 0
    for token in tokens:
        key = key * (vocab_size + 1) + token + 1
    return key


def max_order(vocab_size: int) -> int:
    """The longest n-gram whose key fits in int64 (how keys are stored in a checkpoint)."""
    order = 1
    while (vocab_size + 1) ** (order + 1) < 2**63:
        order += 1
    return order


@dataclass
class NgramLM:
    order: int
    vocab_size: int
    alpha: dict[int, float] = field(default_factory=dict)  # key(h + (w,)) -> discounted probability
    gamma: dict[int, float] = field(default_factory=dict)  # key(h) -> back-off weight
    unigram: list[float] = field(default_factory=list)  # P(w | ())
    end_id: int = 2  # <sos/eos>
    # (context, token) -> log P. Beams that differ only in older tokens ask the same questions, and a stream asks them
    # again frame after frame: about 2.5 lookups in 3 repeat in a Mandarin beam-16 search. Shared by every stream of
    # the locale (dict reads and writes are atomic under the GIL; a value never changes) and cleared when full: at
    # most about 18 MB per locale.
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    cache_limit: int = 50_000

    def context_of(self, history: Sequence[int]) -> tuple[int, ...]:
        """The last order-1 tokens of a history that starts with the sentence (shorter ones: <sos>-padded)."""
        n = self.order - 1
        if n <= 0:
            return ()
        tail = tuple(history[-n:])
        return tail if len(tail) == n else (self.end_id,) * (n - len(tail)) + tail

    def log_prob_after(self, context: tuple[int, ...], token: int) -> float:
        """log P(token | context) for a context from `context_of`, cached."""
        key = (context, token)
        value = self.cache.get(key)
        if value is None:
            if len(self.cache) >= self.cache_limit:
                self.cache.clear()
            value = self.cache[key] = self.log_prob(context, token)  # context is order-1 long: used whole
        return value

    def prob(self, history: Sequence[int], token: int) -> float:
        """P(token | the last order-1 tokens of history)."""
        context = tuple(history[-(self.order - 1):]) if self.order > 1 else ()
        return self._prob(context, token)

    def _prob(self, context: tuple[int, ...], token: int) -> float:
        if not context:
            return self.unigram[token]
        lower = self._prob(context[1:], token)
        key = ngram_key(context, self.vocab_size)
        gamma = self.gamma.get(key)
        if gamma is None:  # context never seen: all mass comes from the shorter context
            return lower
        return self.alpha.get(ngram_key(context + (token,), self.vocab_size), 0.0) + gamma * lower

    def log_prob(self, history: Sequence[int], token: int) -> float:
        return math.log(max(self.prob(history, token), 1e-12))

    # ------------------------------------------------------------------------------------------ storage

    def to_payload(self) -> dict:
        return {
            "order": self.order, "vocab_size": self.vocab_size, "end_id": self.end_id,
            "alpha_keys": torch.tensor(list(self.alpha), dtype=torch.int64),
            "alpha_values": torch.tensor(list(self.alpha.values()), dtype=torch.float16),
            "gamma_keys": torch.tensor(list(self.gamma), dtype=torch.int64),
            "gamma_values": torch.tensor(list(self.gamma.values()), dtype=torch.float16),
            "unigram": torch.tensor(self.unigram, dtype=torch.float32),
        }

    @staticmethod
    def from_payload(payload: dict) -> "NgramLM":
        return NgramLM(
            order=int(payload["order"]), vocab_size=int(payload["vocab_size"]), end_id=int(payload["end_id"]),
            alpha=dict(zip(payload["alpha_keys"].tolist(), payload["alpha_values"].float().tolist())),
            gamma=dict(zip(payload["gamma_keys"].tolist(), payload["gamma_values"].float().tolist())),
            unigram=payload["unigram"].tolist(),
        )


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
    """Train one LM per locale on the corpus text sources (minus dev/test sentences) and store them in a
    checkpoint: python -m model.lm --checkpoint model/checkpoints/default.pt --exclude data/synth/dev.jsonl ..."""
    from model.checkpoint import load_checkpoint, update_checkpoint
    from model.corpus.manifest import read_manifest
    from model.corpus.text_sources import load_sentences

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
                        help="locales written with spaces whose words become a lexicon (model.lexicon), e.g. en-US")
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
