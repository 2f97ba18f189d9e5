"""Attention decoder used as the second pass: it rescores the CTC n-best with full left context of the tokens and
full (offline) context of the audio, as in WeNet's attention rescoring (U2, arXiv:2012.05481).

Shape legend: B batch, U tokens, S encoder frames, D width, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.text.tokenizer import SOS_EOS_ID


@dataclass(frozen=True)
class DecoderConfig:
    d_model: int = 192
    n_heads: int = 4
    n_layers: int = 2
    ffn_dim: int = 768
    dropout: float = 0.1
    max_tokens: int = 512


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)
    return table


class AttentionDecoder(nn.Module):
    positions: torch.Tensor  # a buffer (register_buffer), typed
    def __init__(self, config: DecoderConfig, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.d_model)
        self.register_buffer("positions", sinusoid_table(config.max_tokens, config.d_model), persistent=False)
        layer = nn.TransformerDecoderLayer(
            config.d_model, config.n_heads, config.ffn_dim, config.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, config.n_layers, norm=nn.LayerNorm(config.d_model))
        self.output = nn.Linear(config.d_model, vocab_size)
        self.scale = math.sqrt(config.d_model)

    def forward(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor, memory: torch.Tensor, memory_lengths: torch.Tensor
    ) -> torch.Tensor:
        """inputs (B, U) token ids starting with the locale start token -> logits (B, U, V)."""
        frames = torch.arange(memory.shape[1], device=memory.device)
        tokens = torch.arange(inputs.shape[1], device=inputs.device)
        x = self.embed(inputs) * self.scale + self.positions[: inputs.shape[1]]
        causal = torch.triu(torch.ones(len(tokens), len(tokens), dtype=torch.bool, device=x.device), diagonal=1)
        # tgt_is_causal says what the mask is: left as None, torch compares the mask with a causal one on every call,
        # a host-device synchronisation per training step on a GPU.
        y = self.layers(
            x, memory, tgt_mask=causal, tgt_is_causal=True,
            tgt_key_padding_mask=tokens[None, :] >= input_lengths[:, None],
            memory_key_padding_mask=frames[None, :] >= memory_lengths[:, None],
        )
        return self.output(y)

    def forward_tree(
        self, tokens: torch.Tensor, depths: torch.Tensor, visible: torch.Tensor, memory: torch.Tensor,
        vocabulary: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Many token sequences that share prefixes, as one prefix tree in one row (tree attention, as in
        SpecInfer, arXiv:2305.09781): a shared prefix is computed once, and the memory is projected once.

        tokens (N,) and depths (N,) of the tree's nodes; visible (N, N) True where node i attends to node j (its
        ancestors and itself); memory (S, D). Returns logits (N, V): what follows each node's prefix. Equal to
        `forward` on each sequence, since a causal decoder's state at a position depends only on its prefix.
        `vocabulary` (K,) token ids: only their logits, (N, K) (the output layer is most of the cost)."""
        x = self.embed(tokens) * self.scale + self.positions[depths]  # (N, D)
        y = self.layers(x[None], memory[None], tgt_mask=~visible,
                        tgt_is_causal=False)[0]  # (N, D); a tree mask is not causal
        if vocabulary is None:
            return self.output(y)
        return F.linear(y, self.output.weight[vocabulary], self.output.bias[vocabulary])


def decoder_io(targets: list[list[int]], start_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing tensors: inputs [start, y1..yn] and outputs [y1..yn, eos], padded with -1 in outputs.
    Returns inputs (B, U+1), outputs (B, U+1), lengths (B,)."""
    longest = max(len(t) for t in targets) + 1
    inputs = torch.full((len(targets), longest), SOS_EOS_ID, dtype=torch.long)
    outputs = torch.full((len(targets), longest), -1, dtype=torch.long)
    for row, (target, start) in enumerate(zip(targets, start_ids)):
        inputs[row, : len(target) + 1] = torch.tensor([start, *target], dtype=torch.long)
        outputs[row, : len(target) + 1] = torch.tensor([*target, SOS_EOS_ID], dtype=torch.long)
    lengths = torch.tensor([len(t) + 1 for t in targets], dtype=torch.long)
    return inputs, outputs, lengths
