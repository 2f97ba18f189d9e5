"""Second pass: attention rescoring of the CTC n-best (WeNet U2's `attention_rescoring`). The decoder scores each
hypothesis given the whole segment's encoder output; the final ranking weighs decoder, CTC, LM fusion score and length
(RescoreWeights, tuned per locale on dev) and adds the hotword bias."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.decoding.search import Hypothesis
from model.network.model import SpeechRecognizer
from model.text.tokenizer import SOS_EOS_ID


@dataclass(frozen=True)
class RescoredHypothesis:
    hypothesis: Hypothesis
    attention_log_prob: float
    score: float


@dataclass(frozen=True)
class RescoreWeights:
    """How a final ranks its n-best: decoder log-probability + ctc * CTC log-probability + lm * the first pass's LM
    fusion score + length * tokens, plus the hotword bias. WeNet ranks by decoder + 0.5 CTC; tuned per locale on dev
    (model.evaluation.evaluate): a heavier LM can pick out of a wider beam the homophone the decoder cannot tell
    apart."""

    ctc: float = 0.5
    lm: float = 1.0
    length: float = 0.0

    def score(self, hypothesis: Hypothesis, attention_log_prob: float) -> float:
        return (attention_log_prob + self.ctc * hypothesis.log_prob + self.lm * hypothesis.lm_score
                + self.length * len(hypothesis.tokens) + hypothesis.bias)


@dataclass(frozen=True)
class PrefixTree:
    """The decoder inputs [start, y1..yn] of an n-best, merged: one node per distinct prefix."""

    tokens: list[int]  # (N,) each node's token
    depths: list[int]  # (N,) its position in its sequences
    parents: list[int]  # (N,) the node before it; -1 for the start token
    paths: list[list[int]]  # per sequence, the node at each position


def prefix_tree(sequences: list[list[int]]) -> PrefixTree:
    tree, index = PrefixTree([], [], [], []), {}
    for sequence in sequences:
        path: list[int] = []
        for depth, token in enumerate(sequence):
            key = (path[-1] if path else -1, token)  # a node is its parent plus one token
            if key not in index:
                index[key] = len(tree.tokens)
                tree.tokens.append(token)
                tree.depths.append(depth)
                tree.parents.append(key[0])
            path.append(index[key])
        tree.paths.append(path)
    return tree


def ancestors_mask(parents: list[int]) -> torch.Tensor:
    """(N, N) bool, True where node j is node i or one of its ancestors (parents come before children)."""
    visible = torch.eye(len(parents), dtype=torch.bool)
    for node, parent in enumerate(parents):
        if parent >= 0:
            visible[node] |= visible[parent]
    return visible


@torch.no_grad()
def attention_log_probs(
    model: SpeechRecognizer, encoded: torch.Tensor, hypotheses: list[Hypothesis], start_id: int,
    allowed: torch.Tensor | None = None,
) -> list[float]:
    """encoded (S, D) of one segment; each hypothesis' decoder log-likelihood including end-of-sentence.
    The n-best mostly differ in their last tokens, so they are scored as one prefix tree (`forward_tree`):
    shared prefixes and the segment's memory are computed once instead of once per hypothesis.

    allowed (V,) bool, the locale's tokens (SpeechRecognizer.locale_token_mask): the decoder's distribution is
    normalised over them (and over the hypotheses' own tokens and end-of-sentence), as the first pass's CTC is;
    the output layer, most of a final's cost, then computes 256 of 4,412 rows for English."""
    targets = [list(h.token_ids) for h in hypotheses]
    tree = prefix_tree([[start_id, *t] for t in targets])
    device = encoded.device
    vocabulary, vocab_size = None, 0
    if allowed is not None:
        allowed = allowed.clone().cpu()
        allowed[[SOS_EOS_ID, *{t for target in targets for t in target}]] = True
        vocabulary, vocab_size = allowed.nonzero()[:, 0], len(allowed)  # (K,) of the V tokens
    logits = model.decoder.forward_tree(
        torch.tensor(tree.tokens, device=device), torch.tensor(tree.depths, device=device),
        ancestors_mask(tree.parents).to(device), model.main_frames(encoded),
        None if vocabulary is None else vocabulary.to(device),
    ).float()
    log_probs = F.log_softmax(logits, dim=-1).cpu()  # (N, V), or (N, K) over `vocabulary`
    column = torch.arange(log_probs.shape[1]) if vocabulary is None else \
        torch.full((vocab_size,), -1, dtype=torch.long).index_put_((vocabulary,), torch.arange(len(vocabulary)))
    scores = []
    for target, path in zip(targets, tree.paths):
        following = column[torch.tensor([*target,
                                         SOS_EOS_ID])]  # what each position predicts, ending with end-of-sentence
        scores.append(float(log_probs[torch.tensor(path), following].sum()))
    return scores


def rescore(
    model: SpeechRecognizer, encoded: torch.Tensor, hypotheses: list[Hypothesis], start_id: int,
    weights: RescoreWeights = RescoreWeights(), allowed: torch.Tensor | None = None,
) -> list[RescoredHypothesis]:
    """Rank the n-best by `weights` (decoder, CTC, LM fusion score, length, hotword bias); best first."""
    longest = max((len(h.tokens) for h in hypotheses), default=0)
    if not hypotheses or encoded.shape[0] == 0 or longest + 1 > model.config.decoder.max_tokens:
        # The decoder's positions end at max_tokens: such a segment keeps its first-pass ranking.
        return [RescoredHypothesis(h, 0.0, h.score) for h in hypotheses]
    attention = attention_log_probs(model, encoded, hypotheses, start_id, allowed)
    rescored = [RescoredHypothesis(h, a, weights.score(h, a)) for h, a in zip(hypotheses, attention)]
    return sorted(rescored, key=lambda r: r.score, reverse=True)
