"""The recognizer: global CMVN -> streaming encoder -> CTC head (first pass, streaming), locale head (language
identification for `auto`), attention decoder (second pass, rescoring finals).

Shape legend: B batch, T feature frames, S encoder frames, D width, V vocabulary, G locales.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.frontend.features import FeatureExtractor, feature_columns
from model.network.companion import CompanionEncoder, mixed_log_probs
from model.network.decoder import AttentionDecoder, DecoderConfig
from model.network.encoder import EncoderConfig, EncoderState, StreamingEncoder, normalize_columns
from model.network.precision import int8_weight_count


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    locales: tuple[str, ...]
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    # The auxiliary tonal-syllable CTC (model.decoding.syllables): its table (empty: no syllable head) and the encoder
    # layer it reads (1-based). A training aid: decoding never uses it, the streaming step and its export leave it out.
    syllables: tuple[str, ...] = ()
    syllable_layer: int = 0
    # A frozen second encoder beside the main one (model.network.companion); None: none.
    companion: EncoderConfig | None = None
    # The companion keeps its own CTC head too, mixed with the main one per frame by a gate (model.network.companion).
    companion_gate: bool = False

    def __post_init__(self) -> None:
        if self.companion_gate and self.companion is None:
            raise ValueError("companion_gate needs a companion encoder")
        if self.syllables and not 1 <= self.syllable_layer <= self.encoder.n_layers:
            raise ValueError(f"syllable_layer must be an encoder layer, 1..{self.encoder.n_layers}, "
                             f"not {self.syllable_layer}")

    def to_dict(self) -> dict:
        return {
            "vocab_size": self.vocab_size, "locales": list(self.locales),
            "encoder": dict(self.encoder.__dict__), "decoder": dict(self.decoder.__dict__),
            "syllables": list(self.syllables), "syllable_layer": self.syllable_layer,
            **({"companion": dict(self.companion.__dict__)} if self.companion else {}),
            **({"companion_gate": True} if self.companion_gate else {}),
        }

    @staticmethod
    def from_dict(data: dict) -> "ModelConfig":
        unknown = set(data) - {"vocab_size", "locales", "encoder", "decoder", "syllables", "syllable_layer",
                               "companion", "companion_gate"}
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return ModelConfig(
            vocab_size=int(data["vocab_size"]), locales=tuple(data["locales"]),
            encoder=EncoderConfig(**data["encoder"]), decoder=DecoderConfig(**data["decoder"]),
            syllables=tuple(data.get("syllables", ())), syllable_layer=int(data.get("syllable_layer", 0)),
            companion=EncoderConfig(**data["companion"]) if data.get("companion") else None,
            companion_gate=bool(data.get("companion_gate", False)),
        )

    @property
    def second_mel(self) -> str | None:
        """The companion's filterbank, whose MFCC the front end adds to the encoder's (None without a companion)."""
        return self.companion.mel if self.companion else None

    @property
    def feature_columns(self) -> int:
        """Columns of the feature frames this model reads (`feature_extractor`'s)."""
        return feature_columns(self.second_mel)

    def feature_extractor(self) -> FeatureExtractor:
        """The front end this model reads: its encoder's filterbank, and its companion's where it has one."""
        return FeatureExtractor(self.encoder.mel, self.second_mel)


PITCH_PARAMETERS = "encoder.subsampling.pitch."  # name prefix of the pitch input path's weights


class SpeechRecognizer(nn.Module):
    cmvn_mean: torch.Tensor  # buffers (register_buffer), typed
    cmvn_istd: torch.Tensor
    locale_token_mask: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.input_dim = config.encoder.feature_dim + config.encoder.pitch_dim  # leading feature columns it reads
        self.register_buffer("cmvn_mean", torch.zeros(self.input_dim))
        self.register_buffer("cmvn_istd", torch.ones(self.input_dim))
        # (G, V) True where a token belongs to the locale; set from the tokenizer when the model is built.
        self.register_buffer("locale_token_mask", torch.ones(len(config.locales), config.vocab_size, dtype=torch.bool))
        self.encoder = StreamingEncoder(config.encoder)
        self.ctc_head = nn.Linear(config.encoder.d_model, config.vocab_size)
        self.locale_head = nn.Linear(config.encoder.d_model, len(config.locales))
        self.decoder = AttentionDecoder(config.decoder, config.vocab_size)
        # Intermediate layers are not normalised (pre-LN): the head brings its own LayerNorm, as in InterCTC.
        self.syllable_head = (nn.Sequential(nn.LayerNorm(config.encoder.d_model),
                                            nn.Linear(config.encoder.d_model, len(config.syllables)))
                              if config.syllables else None)
        self.companion = (CompanionEncoder(config.companion, config.encoder.d_model,
                                           config.vocab_size if config.companion_gate else None)
                          if config.companion is not None else None)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Front-end frames (..., FEATURE_DIM) -> the columns this model reads, mean/variance normalised. A model
        without pitch reads the MFCC columns only, so checkpoints from before the pitch features still load.
        With a voicing gate, an unvoiced frame's log F0 becomes the voiced mean, i.e. exactly 0 once normalised.
        Per frame, so chunk-invariant like the features themselves."""
        return normalize_columns(features[..., : self.input_dim], self.config.encoder, self.cmvn_mean, self.cmvn_istd)

    def companion_frames(self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None,
                         left_frames: int | None) -> torch.Tensor | None:
        """The companion encoder's frames (B, S, Dc) under the same chunk mask, before the projection (None without
        one)."""
        return None if self.companion is None else self.companion.frames(features, lengths, chunk_frames, left_frames)

    def projected(self, companion: torch.Tensor | None) -> torch.Tensor | None:
        """The companion's frames (B, S, Dc) as the main encoder adds them (B, S, D)."""
        return None if companion is None or self.companion is None else self.companion.project(companion)

    def with_expert_frames(self, encoded: torch.Tensor, companion: torch.Tensor | None) -> torch.Tensor:
        """The encoder output the heads read: with an expert gate, the companion's frames ride along after the main
        ones, (B, S, D + Dc), so that a stream's segment, its batching and its rescoring carry them unchanged."""
        if not self.config.companion_gate or companion is None:
            return encoded
        return torch.cat([encoded, companion.to(encoded.dtype)], dim=-1)

    @property
    def encoded_width(self) -> int:
        """The width of `encode`'s output: D, or D + Dc with an expert gate (`with_expert_frames`)."""
        companion = self.config.companion
        return self.config.encoder.d_model + (companion.d_model if companion and self.config.companion_gate else 0)

    def main_frames(self, encoded: torch.Tensor) -> torch.Tensor:
        """The main encoder's frames (..., D) of an encoder output: what the attention decoder and the locale head
        read."""
        return encoded[..., : self.config.encoder.d_model]

    def encode(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None = None,
        left_frames: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw features (B, T, F) -> encoded (B, S, D), or (B, S, D + Dc) with an expert gate; lengths (B,)."""
        companion = self.companion_frames(features, lengths, chunk_frames, left_frames)
        encoded, encoded_lengths = self.encoder(self.normalize(features), lengths, chunk_frames, left_frames,
                                                self.projected(companion))
        return self.with_expert_frames(encoded, companion), encoded_lengths

    def initial_state(self, batch_size: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> EncoderState:
        """A new stream's encoder state, its companion's included."""
        state = self.encoder.initial_state(batch_size, device, dtype)
        if self.companion is None:
            return state
        return replace(state, companion=self.companion.encoder.initial_state(batch_size, device, dtype))

    def encode_chunk(
        self, features: torch.Tensor, lengths: torch.Tensor, state: EncoderState
    ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        if self.companion is None:
            return self.encoder.forward_chunk(self.normalize(features), lengths, state)
        assert state.companion is not None, "a state from `initial_state`, which holds the companion's"
        companion, companion_state = self.companion.forward_chunk(features, lengths, state.companion)
        encoded, valid, next_state = self.encoder.forward_chunk(self.normalize(features), lengths, state,
                                                                self.projected(companion))
        return self.with_expert_frames(encoded, companion), valid, replace(next_state, companion=companion_state)

    def ctc_log_probs(self, encoded: torch.Tensor, locale_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, D) -> (B, S, V) log posteriors; rows with a locale id >= 0 are restricted to its tokens. With an
        expert gate, the encoder output with the companion's frames (B, S, D + Dc) -> the gate's per-frame mixture of
        the main head's and the companion's (the main frames alone, as in training, read the main head only)."""
        if encoded.shape[-1] == self.config.encoder.d_model:
            return self.restricted_log_probs(self.ctc_head(encoded), locale_ids)
        return mixed_log_probs(*self.expert_log_probs(encoded, locale_ids))

    def expert_log_probs(self, encoded: torch.Tensor, locale_ids: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """With an expert gate, the encoder output with the companion's frames (B, S, D + Dc) -> the main head's and the
        companion's log posteriors (B, S, V) and the gate's logit (B, S, 1): what `ctc_log_probs` mixes."""
        assert self.companion is not None and self.companion.ctc_head is not None
        return (self.restricted_log_probs(self.ctc_head(self.main_frames(encoded)), locale_ids),
                self.restricted_log_probs(self.companion.ctc_head(encoded[..., self.config.encoder.d_model :]),
                                          locale_ids),
                self.gate_logit(encoded).float())

    def gate_logit(self, encoded: torch.Tensor) -> torch.Tensor:
        """The expert gate's logit per frame (..., 1) of an encoder output with the companion's frames (..., D + Dc)."""
        assert self.companion is not None and self.companion.gate is not None
        return self.companion.gate(self.main_frames(encoded), encoded[..., self.config.encoder.d_model :])

    def restricted_log_probs(self, logits: torch.Tensor, locale_ids: torch.Tensor | None) -> torch.Tensor:
        """A CTC head's logits (B, S, V) -> log posteriors, rows with a locale id >= 0 restricted to its tokens."""
        logits = logits.float()
        if locale_ids is not None:
            allowed = self.locale_token_mask[locale_ids.clamp(min=0)]  # (B, V)
            allowed = allowed | (locale_ids < 0)[:, None]
            logits = logits.masked_fill(~allowed[:, None, :], float("-inf"))
        return F.log_softmax(logits, dim=-1)

    def locale_log_probs(self, encoded_sum: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Language identification from mean-pooled encoder output: sums (B, D), frame counts (B,) -> (B, G)."""
        pooled = self.main_frames(encoded_sum) / frames.clamp(min=1)[:, None].to(encoded_sum.dtype)  # float32 sums
        return F.log_softmax(self.locale_head(pooled.to(self.locale_head.weight.dtype)).float(), dim=-1)

    def pooled_sum(self, encoded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(encoded.shape[1], device=encoded.device)[None, :] < lengths[:, None]
        return (encoded * valid[..., None].to(encoded.dtype)).sum(dim=1)  # (B, D)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, chunk_frames: int | None, left_frames: int | None,
        decoder_inputs: torch.Tensor, decoder_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Training forward (one call, so DistributedDataParallel sees it): returns CTC log-probs (B, S, V),
        encoded lengths (B,), decoder logits (B, U, V), locale log-probs (B, G) and, with a syllable head,
        tonal-syllable log-probs (B, S, Y) from its encoder layer (else None). The CTC log-probs are the main head's, an
        expert gate's mixture or not: the layers learn as without one, and the gate on its own."""
        companion = self.companion_frames(features, lengths, chunk_frames, left_frames)
        encoded, encoded_lengths, tapped = self.encoder.forward_with_tap(
            self.normalize(features), lengths, chunk_frames, left_frames,
            self.config.syllable_layer if self.syllable_head else 0, self.projected(companion))
        decoder_logits = self.decoder(decoder_inputs, decoder_lengths, encoded, encoded_lengths)
        locale = self.locale_log_probs(self.pooled_sum(encoded.float(), encoded_lengths), encoded_lengths)
        syllables = F.log_softmax(self.syllable_head(tapped).float(), dim=-1) if self.syllable_head else None
        return self.ctc_log_probs(encoded), encoded_lengths, decoder_logits, locale, syllables

    def parameter_count(self) -> int:
        """Weights and biases, those of int8 layers too (served quantised: model.network.precision)."""
        return sum(p.numel() for p in self.parameters()) + int8_weight_count(self)


def with_pitch_input(model: SpeechRecognizer, encoder: EncoderConfig, pitch_mean: torch.Tensor,
                     pitch_istd: torch.Tensor) -> SpeechRecognizer:
    """A trained model given a new pitch input (`encoder`'s pitch_dim and pitch_voicing_gate; every other field
    stays the model's): every other weight is kept, the new pitch path starts at zero, so the grown model computes
    what the old one did without its pitch path, and training teaches it to use the tonal cue. Its CMVN gets the
    new pitch columns' statistics. Grows an MFCC-only model, or re-reads pitch through a voicing gate."""
    old = model.config.encoder
    new = EncoderConfig(**{**old.__dict__, "pitch_dim": encoder.pitch_dim,
                           "pitch_voicing_gate": encoder.pitch_voicing_gate})
    if not new.pitch_dim or (new.pitch_dim, new.pitch_voicing_gate) == (old.pitch_dim, old.pitch_voicing_gate):
        raise ValueError("the model already reads pitch this way")
    grown = SpeechRecognizer(replace(model.config, encoder=new))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(PITCH_PARAMETERS)}
    state["cmvn_mean"] = torch.cat([model.cmvn_mean[: old.feature_dim], pitch_mean.to(model.cmvn_mean)])
    state["cmvn_istd"] = torch.cat([model.cmvn_istd[: old.feature_dim], pitch_istd.to(model.cmvn_istd)])
    missing, unexpected = grown.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(PITCH_PARAMETERS) for k in missing), (missing, unexpected)
    pitch = grown.encoder.pitch_path
    assert pitch is not None and pitch.bias is not None  # the grown model reads pitch
    nn.init.zeros_(pitch.weight)
    nn.init.zeros_(pitch.bias)
    return grown.to(model.cmvn_mean.device)


def with_relative_pitch_input(model: SpeechRecognizer, prior_frames: float) -> SpeechRecognizer:
    """A trained pitch-reading model given the relative log F0 channel (EncoderConfig.relative_pitch_prior_frames):
    the pitch path's kernel gains one input channel, zero-initialised, so the grown model computes exactly what the
    old one did, and training teaches it to read tones against the speaker's own pitch."""
    if prior_frames <= 0:
        raise ValueError(f"a relative pitch channel needs prior_frames > 0, not {prior_frames}")
    old = model.config.encoder
    new = replace(old, relative_pitch_prior_frames=float(prior_frames))
    grown = SpeechRecognizer(replace(model.config, encoder=new))  # refuses a model without gated pitch
    state = dict(model.state_dict())
    weight = state[PITCH_PARAMETERS + "weight"]  # (D, P, K); already (D, P + 1, K) when only the prior changes
    if weight.shape[1] == old.pitch_dim:
        state[PITCH_PARAMETERS + "weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], 1, weight.shape[2])],
                                                       dim=1)
    grown.load_state_dict(state)
    return grown.to(model.cmvn_mean.device)


def with_syllable_head(model: SpeechRecognizer, syllables: tuple[str, ...], layer: int) -> SpeechRecognizer:
    """A trained model given the auxiliary tonal-syllable CTC head (model.decoding.syllables) on encoder layer `layer`:
    every other weight is kept, so recognition is unchanged until training with the syllable loss moves the encoder. A
    model that has a head on that layer keeps what it learned: its norm, and the output row of every entry both tables
    hold; a new entry starts at zero weights and the old rows' mean bias (English phonemes joining the Chinese
    syllables, model.decoding.syllables)."""
    grown = SpeechRecognizer(replace(model.config, syllables=tuple(syllables), syllable_layer=layer))
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("syllable_head.")}
    missing, unexpected = grown.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("syllable_head.") for k in missing), (missing, unexpected)
    if model.syllable_head is not None and model.config.syllable_layer == layer:
        old_norm, old_linear = syllable_layers(model.syllable_head)
        assert grown.syllable_head is not None
        norm, linear = syllable_layers(grown.syllable_head)
        old_index = {entry: i for i, entry in enumerate(model.config.syllables)}
        with torch.no_grad():
            norm.load_state_dict(old_norm.state_dict())
            linear.weight.zero_()
            linear.bias.fill_(float(old_linear.bias.mean()))
            for i, entry in enumerate(syllables):
                if entry in old_index:
                    linear.weight[i] = old_linear.weight[old_index[entry]]
                    linear.bias[i] = old_linear.bias[old_index[entry]]
    return grown.to(model.cmvn_mean.device)


def syllable_layers(head: nn.Sequential) -> tuple[nn.LayerNorm, nn.Linear]:
    """The syllable head's norm and output layer (`SpeechRecognizer.syllable_head`), typed."""
    norm, linear = head
    return cast(nn.LayerNorm, norm), cast(nn.Linear, linear)


def with_companion_encoder(model: SpeechRecognizer, companion: SpeechRecognizer) -> SpeechRecognizer:
    """`model` given `companion`'s encoder (with its CMVN) as a frozen companion (model.network.companion): every weight
    of `model` is kept and the projection starts at zero, so the new model computes exactly what `model` does until
    training teaches it to read the second stream."""
    if companion.config.companion is not None or companion.config.encoder.backbone:
        raise ValueError("a companion is a convolutional model's encoder, without a companion of its own")
    grown = SpeechRecognizer(replace(model.config, companion=companion.config.encoder))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("companion.") for k in missing), (missing, unexpected)
    assert grown.companion is not None
    grown.companion.encoder.load_state_dict(companion.encoder.state_dict())
    grown.companion.cmvn_mean.copy_(companion.cmvn_mean)
    grown.companion.cmvn_istd.copy_(companion.cmvn_istd)
    nn.init.zeros_(grown.companion.project.weight)
    nn.init.zeros_(grown.companion.project.bias)
    return grown.to(model.cmvn_mean.device)


GATE_OPEN = 20.0  # a new gate's logit: sigmoid(20) = 1 - 2e-9, the main head's posteriors all but unchanged


def with_expert_gate(model: SpeechRecognizer, companion: SpeechRecognizer) -> SpeechRecognizer:
    """`model` (with `companion`'s encoder as its companion) given `companion`'s CTC head too, frozen, and a gate
    between the two heads (model.network.companion) that starts open to the main head, so the new model reads as
    `model` did until the gate is trained (model.training.train_gate). The two must share one token table."""
    if model.companion is None or companion.config.vocab_size != model.config.vocab_size:
        raise ValueError("an expert gate needs a model with a companion encoder and the companion's token table")
    grown = SpeechRecognizer(replace(model.config, companion_gate=True))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("companion.ctc_head.", "companion.gate.")) for k in missing), missing
    assert grown.companion is not None and grown.companion.ctc_head is not None and grown.companion.gate is not None
    grown.companion.ctc_head.load_state_dict(companion.ctc_head.state_dict())
    nn.init.zeros_(grown.companion.gate.score.weight)
    nn.init.constant_(grown.companion.gate.score.bias, GATE_OPEN)
    return grown.to(model.cmvn_mean.device)
