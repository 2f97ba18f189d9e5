"""Second pass: attention rescoring of the CTC n-best (WeNet U2's `attention_rescoring`). The decoder scores each
hypothesis given the whole segment's encoder output; the final ranking is decoder + ctc_weight * CTC + bias."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.decoder import decoder_io
from model.network import SpeechRecognizer
from model.search import Hypothesis


@dataclass(frozen=True)
class RescoredHypothesis:
    hypothesis: Hypothesis
    attention_log_prob: float
    score: float


@torch.no_grad()
def attention_log_probs(
    model: SpeechRecognizer, encoded: torch.Tensor, hypotheses: list[Hypothesis], start_id: int
) -> list[float]:
    """encoded (S, D) of one segment; each hypothesis' decoder log-likelihood including end-of-sentence."""
    targets = [list(h.token_ids) for h in hypotheses]
    inputs, outputs, lengths = decoder_io(targets, [start_id] * len(targets))
    device = encoded.device
    memory = encoded[None].expand(len(targets), -1, -1)
    memory_lengths = torch.full((len(targets),), encoded.shape[0], device=device)
    logits = model.decoder(inputs.to(device), lengths.to(device), memory, memory_lengths).float()
    log_probs = F.log_softmax(logits, dim=-1)  # (N, U+1, V)
    picked = log_probs.gather(-1, outputs.clamp(min=0).to(device)[..., None])[..., 0]
    picked = picked.masked_fill(outputs.to(device) < 0, 0.0)
    return picked.sum(dim=-1).tolist()


def rescore(
    model: SpeechRecognizer, encoded: torch.Tensor, hypotheses: list[Hypothesis], start_id: int,
    ctc_weight: float = 0.5,
) -> list[RescoredHypothesis]:
    """Rank the n-best by decoder + ctc_weight * CTC + hotword bias + LM fusion score; best first."""
    longest = max((len(h.tokens) for h in hypotheses), default=0)
    if not hypotheses or encoded.shape[0] == 0 or longest + 1 > model.config.decoder.max_tokens:
        # The decoder's positions end at max_tokens: such a segment keeps its first-pass ranking.
        return [RescoredHypothesis(h, 0.0, h.score) for h in hypotheses]
    attention = attention_log_probs(model, encoded, hypotheses, start_id)
    rescored = [
        RescoredHypothesis(h, a, a + ctc_weight * h.log_prob + h.bias + h.lm_score) for h, a in zip(hypotheses, attention)
    ]
    return sorted(rescored, key=lambda r: r.score, reverse=True)
