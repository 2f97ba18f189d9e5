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


class LanguageModel:
    """What the search asks of a language model over token ids (`order`, `end_id`, `prob` and a `cache` dict are
    the subclass's): log P(token | context), cached, for the contexts `context_of` cuts from a prefix."""

    order: int
    end_id: int
    # (context, token) -> log P. Beams that differ only in older tokens ask the same questions, and a stream asks them
    # again frame after frame: about 2.5 lookups in 3 repeat in a Mandarin beam-16 search. Shared by every stream of
    # the locale (dict reads and writes are atomic under the GIL; a value never changes) and cleared when full: at
    # most about 18 MB per locale.
    cache: dict
    cache_limit: int

    def prob(self, history: Sequence[int], token: int) -> float:
        raise NotImplementedError

    @property
    def adaptation(self) -> dict | None:
        """How the model was adapted to a deployment's own text (InterpolatedLM); None: as the checkpoint built it."""
        return None

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

    def log_prob(self, history: Sequence[int], token: int) -> float:
        return math.log(max(self.prob(history, token), 1e-12))

    def clear_cache(self) -> None:
        self.cache.clear()


@dataclass
class NgramLM(LanguageModel):
    order: int
    vocab_size: int
    alpha: dict[int, float] = field(default_factory=dict)  # key(h + (w,)) -> discounted probability
    gamma: dict[int, float] = field(default_factory=dict)  # key(h) -> back-off weight
    unigram: list[float] = field(default_factory=list)  # P(w | ())
    end_id: int = 2  # <sos/eos>
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # LanguageModel.log_prob_after
    cache_limit: int = 50_000

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


# Before any word is heard, a segment is presumed to be the domain's scripts with this probability. The held-out lines
# of a domain text are all the domain's, so they cannot tell it; it was chosen on the dev split, as the largest prior
# tried under which other speech keeps its error rates (docs/adaptation.md): a few tokens that read like the domain
# still give it the lead, a single common one does not.
DOMAIN_PRIOR = 0.001


@dataclass
class InterpolatedLM(LanguageModel):
    """A deployment's own n-gram mixed into the general one, in proportion to how much the words just heard read
    like the domain's:
        P(w | h) = (1 - d(h)) * P_general(w | h) + d(h) * P_domain(w | h),   d(h) = weight * posterior(h),
        posterior(h) = prior * P_domain(h) / (prior * P_domain(h) + (1 - prior) * P_general(h)),
    where P(h) is each model's probability of the last order-1 tokens (the n-grams' own window). The posterior is
    Bayes' rule over that window, as in the sentence-level mixtures of Iyer & Ostendorf (1999) and the dynamic
    mixture weights of Kneser & Steinbiss (1993); `weight`, how far to trust the domain model once the words read
    like it, is tuned on held-out lines (model.decoding.adaptation). Speech outside the domain text keeps nearly all
    of the general model's probability, where a fixed linear mixture would tax each of its tokens by up to
    log(1 - weight). d depends on the history only, so each P(. | h) is a proper distribution."""

    general: NgramLM
    domain: NgramLM
    weight: float
    prior: float = DOMAIN_PRIOR
    source: dict = field(default_factory=dict)  # the domain text: name, lines, tuning (what /v1/models states)
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    cache_limit: int = 50_000
    weights: dict = field(default_factory=dict, repr=False, compare=False)  # context -> d(h), cleared with `cache`

    def __post_init__(self) -> None:
        if (self.general.vocab_size, self.general.end_id, self.general.order) != (
                self.domain.vocab_size, self.domain.end_id, self.domain.order):
            raise ValueError("a domain LM must be built over the general LM's tokens, at its order")
        if not (0 < self.weight <= 1 and 0 < self.prior < 1):
            raise ValueError(f"the domain weight must be within (0, 1] and its prior within (0, 1), not "
                             f"{self.weight} and {self.prior}")
        self.order, self.end_id = self.general.order, self.general.end_id

    @property
    def adaptation(self) -> dict:
        return {**self.source, "weight": self.weight, "prior": self.prior, "order": self.domain.order}

    def domain_share(self, context: tuple[int, ...]) -> float:
        """d(h) for a context from `context_of` (its leading <sos> padding is given, not predicted)."""
        share = self.weights.get(context)
        if share is None:
            if len(self.weights) >= self.cache_limit:
                self.weights.clear()
            start = next((i for i, token in enumerate(context) if token != self.end_id), len(context))
            log_odds = math.log(self.prior / (1 - self.prior))
            for i in range(start, len(context)):  # log P_domain(h) - log P_general(h), token by token
                word = context[i]
                log_odds += self.domain.log_prob(context[:i], word) - self.general.log_prob(context[:i], word)
            share = self.weights[context] = self.weight / (1 + math.exp(-min(max(log_odds, -50.0), 50.0)))
        return share

    def clear_cache(self) -> None:
        self.cache.clear()
        self.weights.clear()

    def prob(self, history: Sequence[int], token: int) -> float:
        share = self.domain_share(self.context_of(history))
        return (1 - share) * self.general.prob(history, token) + share * self.domain.prob(history, token)


def language_model(payload: dict) -> LanguageModel:
    """A checkpoint's LM payload as the search queries it: the general n-gram, mixed with the deployment's own when
    the checkpoint was adapted (payload["domain"], written by model.decoding.adaptation)."""
    general = NgramLM.from_payload(payload)
    domain = payload.get("domain")
    if domain is None:
        return general
    return InterpolatedLM(general, NgramLM.from_payload(domain["lm"]), float(domain["weight"]), float(domain["prior"]),
                          dict(domain["source"]))
