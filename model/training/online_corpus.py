"""Synthesis while training: worker processes render a corpus plan (model.corpus.build --plan-only) with espeak-ng,
augment it and compute MFCC, and the trainer draws batches from everything rendered so far.

On a GPU machine the accelerator trains far faster than disk-bound data preparation can feed it, while its many CPU
cores sit idle; rendering the corpus on those cores during training turns them into fresh data (every job a new
sentence, voice or acoustic condition) instead of more passes over a small fixed corpus. No audio touches the disk.

The corpus has the FeatureCorpus interface that training and evaluation read (`rows`, `utterance_features`,
`length_batches`), with one row per rendered utterance in the same format as a feature cache's index.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from model.corpus.augment import augment
from model.corpus.build import Job, read_plan
from model.corpus.synthesize import SAMPLE_RATE, synthesize
from model.frontend.features import FeatureExtractor
from model.training.dataset import row_batches

_EXTRACTOR: FeatureExtractor | None = None


def _worker_init() -> None:
    global _EXTRACTOR
    for number in (signal.SIGTERM, signal.SIGINT):  # the trainer's stop handler is inherited through fork; a worker
        signal.signal(number, signal.SIG_DFL)      # must die when the pool terminates it, or close() hangs
    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    _EXTRACTOR = FeatureExtractor()


def render_features(job: Job) -> tuple[dict, np.ndarray] | None:
    """One planned job -> (index row, float16 MFCC); None when espeak-ng fails on the text."""
    try:
        rng = np.random.default_rng(job.seed)
        audio = augment(synthesize(job.text, job.voice, rng), job.condition, rng)
    except Exception:  # one unspeakable sentence must not stop a training run
        return None
    extractor = _EXTRACTOR or FeatureExtractor()
    features = extractor(torch.from_numpy(audio)).numpy().astype(np.float16)
    row = {"id": job.id, "frames": len(features), "text": job.text, "locale": job.locale,
           "speaker": job.voice.speaker, "duration": round(audio.size / SAMPLE_RATE, 4), "condition": job.condition}
    return row, features


@dataclass
class OnlineCorpus:
    """Rendered utterances held in memory (float16 MFCC: about 58 MB per hour of audio); append-only, so readers
    can take `len(rows)` as a consistent snapshot while the feeding thread appends."""

    rows: list[dict] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, row: dict, features: np.ndarray) -> None:
        with self.lock:
            self.arrays.append(features)
            self.rows.append(row)

    @property
    def hours(self) -> float:
        return sum(r["duration"] for r in self.rows) / 3600

    def utterance_features(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.arrays[index].astype(np.float32))

    def length_batches(self, max_batch_frames: int, rng: np.random.Generator, min_frames: int = 8,
                       locale_weights: dict[str, float] | None = None) -> list[list[int]]:
        with self.lock:
            rows = list(self.rows)
        return row_batches(rows, max_batch_frames, rng, min_frames, locale_weights)


class SynthesisFeed:
    """A process pool rendering jobs into an OnlineCorpus from a background thread, in plan order."""

    def __init__(self, jobs: Iterable[Job], workers: int, keep: Callable[[Job], bool] = lambda job: True) -> None:
        self.corpus = OnlineCorpus()
        self.failed = 0
        self._stop = threading.Event()
        self._pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init)
        self._jobs = (job for job in jobs if keep(job))
        self._thread = threading.Thread(target=self._feed, name="synthesis-feed", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        for result in self._pool.imap_unordered(render_features, self._jobs, chunksize=4):
            if self._stop.is_set():
                break
            if result is None:
                self.failed += 1
            else:
                self.corpus.add(*result)

    def wait_for_hours(self, hours: float, timeout_s: float) -> float:
        """Block until `hours` of audio are rendered (or the plan ran out / timeout); returns the hours rendered."""
        deadline = time.monotonic() + timeout_s
        while self.corpus.hours < hours and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        return self.corpus.hours

    def close(self) -> None:
        self._stop.set()
        self._pool.terminate()
        self._pool.join()


def render_all(jobs: list[Job], workers: int) -> OnlineCorpus:
    """Render a small fixed set (the dev split) completely, in plan order."""
    corpus = OnlineCorpus()
    with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
        for result in pool.imap(render_features, jobs, chunksize=4):
            if result is not None:
                corpus.add(*result)
    return corpus


def plan_splits(path: str) -> tuple[list[Job], Iterator[Job]]:
    """(dev jobs, train jobs) of a plan file."""
    jobs = read_plan(path)
    return [j for j in jobs if j.split == "dev"], (j for j in jobs if j.split == "train")
