"""Self-describing checkpoints: config, token table, SentencePiece model, CMVN and locale masks (as buffers),
training-data summary, evaluation results, name and version, all as plain tensors/containers so that loading
uses `torch.load(..., weights_only=True)`: a checkpoint can never run code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.network.model import ModelConfig, SpeechRecognizer
from model.network.whisper_backbone import whisper_base_backbone_state
from model.text.tokenizer import Tokenizer

BACKBONE_PREFIX = "encoder.backbone."  # frozen weights that come from their package, not the checkpoint

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).parent.parent / "checkpoints" / "default.pt"
# The model trained on espeak-ng's voices alone: it reads them best and real people hardly at all. The default carries
# its encoder and CTC head as a frozen companion expert (model.network.companion), and training a new default starts
# from it (docs/training.md); served by name for comparison
SYNTHETIC_CHECKPOINT = DEFAULT_CHECKPOINT.parent / "synthetic" / "synthetic_voices.pt"
# The models the package ships, by name: wherever a checkpoint path is taken, one of these names is too
BUNDLED_CHECKPOINTS = {"default": DEFAULT_CHECKPOINT, "synthetic-voices": SYNTHETIC_CHECKPOINT}


@dataclass
class LoadedModel:
    model: SpeechRecognizer
    tokenizer: Tokenizer
    name: str
    version: str
    metadata: dict = field(default_factory=dict)  # training data summary, evaluation, anything descriptive
    # locale -> NgramLM payload (model.decoding.lm), for shallow fusion
    language_models: dict = field(default_factory=dict)


def checkpoint_payload(
    model: SpeechRecognizer, tokenizer: Tokenizer, name: str, version: str, metadata: dict,
    language_models: dict | None = None, half: bool = False,
) -> dict:
    """half: store float weights as float16 (halves the file; they are widened to float32 on load)."""
    state = {key: value.detach().cpu() for key, value in stored_weights(model).items()}
    if half:
        state = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    metadata = {**metadata, "stored_float16": half}
    return {
        "format_version": FORMAT_VERSION, "name": name, "version": version,
        "config": model.config.to_dict(), "tokenizer": tokenizer.to_payload(),
        "state_dict": state, "metadata": metadata, "language_models": language_models or {},
    }


def stored_weights(model: SpeechRecognizer) -> dict[str, torch.Tensor]:
    """The weights a checkpoint stores, which are the ones training changes: all but the frozen backbone's, which come
    from Whisper's package; its tuned top blocks (EncoderConfig.backbone_tuned_blocks) are stored."""
    backbone = model.encoder.backbone
    tuned = () if backbone is None else tuple(
        BACKBONE_PREFIX + prefix for prefix in backbone.tuned_prefixes(model.config.encoder.backbone_tuned_blocks))
    return {key: value for key, value in model.state_dict().items()
            if not key.startswith(BACKBONE_PREFIX) or key.startswith(tuned)}


def atomic_save(payload: dict, path: str | os.PathLike) -> None:
    """Write next to the target and rename, so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def save_checkpoint(
    path: str | os.PathLike, model: SpeechRecognizer, tokenizer: Tokenizer, name: str, version: str, metadata: dict,
    language_models: dict | None = None, half: bool = False,
) -> None:
    atomic_save(checkpoint_payload(model, tokenizer, name, version, metadata, language_models, half), path)


def update_checkpoint(path: str | os.PathLike, loaded: LoadedModel) -> None:
    """Write a loaded checkpoint back (after changing its metadata or language models), same precision."""
    save_checkpoint(checkpoint_path(path), loaded.model, loaded.tokenizer, loaded.name, loaded.version,
                    loaded.metadata, loaded.language_models, half=bool(loaded.metadata.get("stored_float16")))


def checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint's path, or a bundled model's name (BUNDLED_CHECKPOINTS) as its path."""
    return Path(BUNDLED_CHECKPOINTS.get(str(path), path))


def validate_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint's path (or a bundled model's name), resolved and checked."""
    resolved = checkpoint_path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"checkpoint {resolved} does not exist")
    if resolved.suffix not in {".pt", ".pth"}:
        raise ValueError(f"checkpoint {resolved} must be a .pt file")
    return resolved


def load_checkpoint(path: str | os.PathLike = DEFAULT_CHECKPOINT, device: str | torch.device = "cpu") -> LoadedModel:
    payload = torch.load(validate_checkpoint_path(path), map_location="cpu", weights_only=True)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported checkpoint format {payload.get('format_version')}")
    model = SpeechRecognizer(ModelConfig.from_dict(payload["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    if model.encoder.backbone is not None:  # Whisper's weights, except the tuned ones the checkpoint holds
        backbone = whisper_base_backbone_state(model.config.encoder.backbone_layers)
        state = {**{BACKBONE_PREFIX + k: v for k, v in backbone.items()}, **state}
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(
        model=model, tokenizer=Tokenizer.from_payload(payload["tokenizer"]),
        name=payload["name"], version=payload["version"], metadata=payload.get("metadata", {}),
        language_models=payload.get("language_models", {}),
    )
