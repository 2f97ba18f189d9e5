"""Token n-gram language models, one per locale, fused into CTC prefix beam search (shallow fusion): the query
side, what decoding reads. model.training.build_lm builds them.

espeak-ng speaks homophones identically, so only context separates 是/事/市; the audio corpus covers ~40k
sentences while the text sources hold ~230k, so an n-gram over the model's own token ids, trained on all text
except the dev/test sentences, adds context the acoustic model never heard.

Interpolated Kneser-Ney (Chen & Goodman 1998):
    P(w | h) = alpha(h, w) + gamma(h) * P(w | h[1:]),   P(w | ()) from continuation counts, mixed with uniform.
alpha and gamma are precomputed, so a lookup is at most `order` dictionary probes; a context that is not stored
backs off with weight exactly 1.
Tables travel inside the checkpoint as int64 keys + float16 values (half the size of float32; a relative error of
5e-4 in a probability moves a fused score by 5e-4 nats), loadable with weights_only=True.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


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
