"""Loading the model for serving: device choice (CUDA when available, else CPU), half precision on GPU, int8 linear
layers on CPU where asked (ASR_QUANTIZE), warm-up."""

from __future__ import annotations

import logging

import torch

from model.decoding.adaptation import adapt_checkpoint
from model.frontend.features import SAMPLE_RATE
from model.network.checkpoint import load_checkpoint
from model.network.precision import serving_dtype, serving_quantization
from model.recognition.recognizer import DecodeOptions, Recognizer
from model.recognition.stream_decoder import decode_stream_offline
from service.settings import Settings

log = logging.getLogger("service.loading")


def choose_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("ASR_DEVICE=cuda but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def load_recognizer(settings: Settings) -> Recognizer:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = choose_device(settings.device)
    dtype = serving_dtype(device, settings.half_precision)
    quantization = serving_quantization(device, settings.quantize)
    loaded = load_checkpoint(settings.checkpoint, device="cpu")
    for locale, report in adapt_checkpoint(loaded, settings.domain_text).items():  # ASR_DOMAIN_TEXT
        log.info("adapted the %s language model to %s: %s", locale, report["text"], report)
    recognizer = Recognizer(loaded, device=device, dtype=dtype, quantization=quantization)
    log.info("loaded %s %s on %s (%s, linear layers quantised: %s), %d parameters", loaded.name, loaded.version,
             device, dtype, quantization, loaded.model.parameter_count())
    return recognizer


def warm_up(recognizer: Recognizer, chunk_frames: int) -> None:
    """Run every code path once so the first request does not pay for lazy initialisation."""
    audio = 0.01 * torch.randn(SAMPLE_RATE)
    recognizer.transcribe(audio, DecodeOptions(locale=None, nbest=2))
    decode_stream_offline(recognizer, audio, DecodeOptions(locale=recognizer.locales[0]), chunk_frames)
