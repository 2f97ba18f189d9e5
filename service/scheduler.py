"""The batching scheduler. Streaming chunks from every connection, the segments of full-context finals and offline
decoding units are queued, formed into batches by size or deadline, run on worker threads (off the event loop),
and their results are delivered to each waiter's future.

A stream batch is a two-stage pipeline: the device thread runs the batched front end and encoder, then hands the
batch to a search thread (per-stream CTC prefix beam search, endpointing, rescoring of finals) and goes on with the
next batch. The search needs only the encoder output, and the encoder needs only the encoder state, so the
two overlap; torch kernels release the GIL, so the encoder keeps its cores busy while Python searches.

Who uses the device (docs/scaling.md, "Who uses the device"): the device thread runs every batched model step (a
stream batch's front end, encoder and CTC head; the encoder passes of full-context finals; whole offline units,
their search and rescoring included). It is not the only one: the search threads launch small per-stream kernels
there (the attention decoder that rescores a final's n-best, the locale head of `auto` streams, the CTC head when
a segment is searched again or a full-context final is decoded), and the event loop allocates each new stream's
zeroed encoder caches there (`new_stream`). Torch queues all of them on the device's one default stream; this
module orders only the batched steps.

- Waiting is real: the batching task sleeps on an asyncio.Event until work arrives, then on the same event with
  a deadline while the batch fills (no polling loop).
- Streams are never starved by uploads: when both kinds wait, stream batches and offline batches alternate, and
  an offline batch is bounded in audio seconds, so a stream chunk waits at most one bounded offline batch.
- Full-context finals (`DecodeOptions.full_context_finals`) encode each ending segment again, and that is device
  work too. The stream waits, its state pending (`model.recognition.stream_decoder`), while the other streams of its
  batch get their results at once; the device thread encodes the segments of all finals waiting then in one batch (they
  go before stream chunks: a final is what its client waits for, and it holds its stream's next chunk back), and each is
  decoded and rescored as a search task of its own, so finals that end together use both search threads. Measured on 2
  vCPU against encoding in place on the search thread (docs/scaling.md): finals as fast, and the other streams' chunk
  steps no longer stall behind a 20 s segment's pass.
- Overload is refused at once (`Overloaded`), never queued without bound; admitted work continues.
- A failing batch fails only its own waiters; the scheduler keeps running.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from model.decoding.results import Transcript
from model.frontend.features import SAMPLE_RATE
from model.recognition.recognizer import ChunkOutput, DecodeOptions, Recognizer
from model.recognition.stream_decoder import (StreamEvent, StreamState, apply_chunk, finish_pending_final,
                                              pending_segment_audio, request_finish, search_locale)
from model.recognition.streaming import AudioChunk
from service.settings import Settings
from service.stats import BatchStats, StatsSink, StepKind

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The server is at capacity; the client should retry after `retry_after_s`."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SchedulerLimits:
    """The scheduler's limits, from the settings (`from_settings`: their one home, service/settings.py)."""

    max_stream_batch: int
    max_batch_wait_s: float
    max_offline_batch_audio_s: float
    max_queued_offline_audio_s: float
    retry_after_s: int
    fault_injection_every_n_batches: int  # testing aid: every Nth device batch raises RuntimeError; 0 = off
    search_threads: int = 2  # threads for per-stream search and rescoring (Python; torch kernels release the GIL)

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerLimits:
        return cls(max_stream_batch=settings.max_stream_batch, max_batch_wait_s=settings.batch_window_s,
                   max_offline_batch_audio_s=settings.max_offline_batch_audio_s,
                   max_queued_offline_audio_s=settings.max_queued_offline_audio_s,
                   retry_after_s=settings.retry_after_s,
                   fault_injection_every_n_batches=settings.fault_injection_every_n_batches)


StreamStep = tuple[StreamState, list[StreamEvent]]  # a stream's next state and what its step produced


@dataclass
class StreamWork:
    state: StreamState
    chunk: AudioChunk
    future: asyncio.Future[StreamStep]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class FinalWork:
    """A stream whose segment's final waits for the segment's encoder pass at full context."""
    state: StreamState
    events: list[StreamEvent]  # what the stream's step produced before the segment ended
    future: asyncio.Future[StreamStep]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class OfflineWork:
    spans: list[torch.Tensor]  # spans of recordings, cut by the caller: each decoded whole
    options: list[DecodeOptions]
    future: asyncio.Future[list[Transcript]]
    queued_at: float = field(default_factory=time.perf_counter)

    @property
    def audio_s(self) -> float:
        return sum(len(r) for r in self.spans) / SAMPLE_RATE


Work = StreamWork | FinalWork | OfflineWork


class BatchScheduler:
    def __init__(self, recognizer: Recognizer, limits: SchedulerLimits, stats: StatsSink | None = None) -> None:
        self.recognizer = recognizer
        self.limits = limits
        self.stats = stats or StatsSink()
        self._streams: deque[StreamWork] = deque()
        self._offline: deque[OfflineWork] = deque()
        self._finals: deque[FinalWork] = deque()
        self._offline_queued_s = 0.0
        self._work_arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-device")
        # Two search threads: a burst of finals (many streams stopping at once) rescores on both cores while the
        # encoder is idle. Each stream has at most one chunk or final in flight, so its own steps stay in order.
        self._search_executor = ThreadPoolExecutor(max_workers=limits.search_threads, thread_name_prefix="asr-search")
        self._searches: set[asyncio.Task] = set()  # stream batches between the encoder and their results
        self._task: asyncio.Task | None = None
        self._offline_turn = False
        self._device_batches = 0

    # ------------------------------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="asr-batch-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*self._searches, return_exceptions=True)
        pending: list[Work] = [*self._streams, *self._finals, *self._offline]
        for work in pending:
            if not work.future.done():
                work.future.set_exception(Overloaded("server shutting down", self.limits.retry_after_s))
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._search_executor.shutdown(wait=True, cancel_futures=True)

    # ----------------------------------------------------------------------------------------------- submit

    async def decode_stream_chunk(self, state: StreamState, chunk: AudioChunk) -> StreamStep:
        """Queue one chunk of one stream; resolves to the stream's next state and its events."""
        future = asyncio.get_running_loop().create_future()
        self._streams.append(StreamWork(state, chunk, future))
        self.stats.queue_depth(len(self._streams), len(self._offline))
        self._work_arrived.set()
        return await future

    async def finish_stream(self, state: StreamState) -> StreamStep:
        """The last final of a stream, on a search thread (a full-context final's encoder pass on the device
        thread): after the stream's last chunk, which the caller awaited."""
        loop = asyncio.get_running_loop()
        state, events = await loop.run_in_executor(self._search_executor, request_finish, self.recognizer, state)
        if state.pending_final is None:
            return state, events
        future = loop.create_future()
        self._submit_final(FinalWork(state, events, future))
        return await future

    async def transcribe(self, spans: list[torch.Tensor], options: list[DecodeOptions]) -> list[Transcript]:
        """Queue an offline unit (a bounded amount of audio: spans the caller has cut, each decoded whole,
        `Recognizer.transcribe_spans`); refuses at once when the queue is full."""
        work = OfflineWork(spans, options, asyncio.get_running_loop().create_future())
        if self._offline_queued_s + work.audio_s > self.limits.max_queued_offline_audio_s:
            raise Overloaded("offline queue is full", self.limits.retry_after_s)
        self._offline_queued_s += work.audio_s
        self._offline.append(work)
        self.stats.queue_depth(len(self._streams), len(self._offline))
        self._work_arrived.set()
        return await work.future

    def check_offline_capacity(self, audio_s: float) -> None:
        queued_s = self._offline_queued_s + min(audio_s, self.limits.max_offline_batch_audio_s)
        if queued_s > self.limits.max_queued_offline_audio_s:
            raise Overloaded("offline queue is full", self.limits.retry_after_s)

    # ------------------------------------------------------------------------------------------------ loop

    def _submit_final(self, work: FinalWork) -> None:
        """A segment's full-context final: queued for the device thread's next batch of finals."""
        self._finals.append(work)
        self._work_arrived.set()

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a search-stage coroutine as a task that `stop` waits for."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._searches.add(task)
        task.add_done_callback(self._searches.discard)

    async def _run(self) -> None:
        while True:
            if not self._streams and not self._offline and not self._finals:
                self._work_arrived.clear()
                await self._work_arrived.wait()
            if self._finals:
                await self._run_final_batch()
                continue
            run_offline = self._offline and (not self._streams or self._offline_turn)
            if run_offline:
                await self._run_offline_batch()
            else:
                await self._fill_stream_batch()
                await self._run_stream_batch()
            self._offline_turn = not run_offline

    async def _fill_stream_batch(self) -> None:
        """Wait until the batch is full or the oldest chunk has waited max_batch_wait_s."""
        if not self._streams:
            return
        deadline = self._streams[0].queued_at + self.limits.max_batch_wait_s
        while len(self._streams) < self.limits.max_stream_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._work_arrived.clear()
            try:
                await asyncio.wait_for(self._work_arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _run_stream_batch(self) -> None:
        # A stream has at most one chunk in flight (its next chunk needs this one's state), so rows are distinct.
        batch: list[StreamWork] = []
        while self._streams and len(batch) < self.limits.max_stream_batch:
            work = self._streams.popleft()
            if not work.future.done():  # its connection went away while queued
                batch.append(work)
        if not batch:
            return
        started = time.perf_counter()
        outputs = await self._run_step(self._executor, "stream", batch, self._encode_step, batch)
        if outputs is None:
            return
        self._track(self._search_stream_batch(batch, outputs, started, time.perf_counter() - started))

    async def _search_stream_batch(self, batch: list[StreamWork], outputs: list[ChunkOutput], queued_until: float,
                                   encode_s: float) -> None:
        started = time.perf_counter()
        results = await self._run_step(self._search_executor, "stream", batch, self._search_step, batch, outputs)
        if results is None:
            return
        # The step time is the batch's whole compute, encoder and search, without the wait between the stages.
        compute_s = encode_s + time.perf_counter() - started
        self.stats.batch(BatchStats("stream", len(batch), compute_s, [queued_until - w.queued_at for w in batch]))
        for work, (state, events) in zip(batch, results):
            if state.pending_final is not None:  # its final waits for the segment's full-context pass
                self._submit_final(FinalWork(state, events, work.future))
            elif not work.future.done():
                work.future.set_result((state, events))

    async def _run_final_batch(self) -> None:
        """Every full-context final waiting for the device thread: one device step encodes their segments (batched
        by length), then each is decoded as a search task of its own while the device goes on."""
        batch = [work for work in self._finals if not work.future.done()]
        self._finals.clear()
        if not batch:
            return
        outputs = await self._device_step("final", batch, len(batch), self._encode_finals_step, batch)
        for work, encoded in zip(batch, outputs or []):
            self._track(self._decode_final(work, encoded))

    async def _decode_final(self, work: FinalWork, encoded: torch.Tensor) -> None:
        result = await self._run_step(self._search_executor, "final", [work], self._finish_final_step, work, encoded)
        if result is not None and not work.future.done():
            work.future.set_result(result)

    async def _device_step(self, kind: StepKind, batch: Sequence[Work], rows: int, step: Callable[..., list[T]],
                           *args: Any) -> list[T] | None:
        """Run `step(*args)` on the device thread and record its stats; None if it failed (see `_run_step`)."""
        started = time.perf_counter()
        results = await self._run_step(self._executor, kind, batch, step, *args)
        if results is not None:
            self.stats.batch(BatchStats(kind, rows, time.perf_counter() - started,
                                        [started - w.queued_at for w in batch]))
        return results

    async def _run_step(self, executor: ThreadPoolExecutor, kind: StepKind, batch: Sequence[Work],
                        step: Callable[..., R], *args: Any) -> R | None:
        """Run `step(*args)` on a worker thread. A step that raises fails the futures of its own batch only (and
        returns None); the scheduler carries on."""
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, step, *args)
        except Exception as error:  # noqa: BLE001 - a failed step fails its own batch only
            self.stats.batch_failed(kind)
            for work in batch:
                if not work.future.done():
                    work.future.set_exception(error)
            return None

    def _encode_step(self, batch: list[StreamWork]) -> list[ChunkOutput]:
        self._count_device_batch()
        return self.recognizer.encode_chunks(
            [w.chunk for w in batch], [w.state.encoder for w in batch], [search_locale(w.state) for w in batch]
        )

    def _search_step(self, batch: list[StreamWork], outputs: list[ChunkOutput]) -> list[StreamStep]:
        return [apply_chunk(self.recognizer, w.state, *output) for w, output in zip(batch, outputs)]

    def _encode_finals_step(self, batch: list[FinalWork]) -> list[torch.Tensor]:
        self._count_device_batch()
        return self.recognizer.encode_segments([pending_segment_audio(w.state) for w in batch], None)

    def _finish_final_step(self, work: FinalWork, encoded: torch.Tensor) -> StreamStep:
        state, events = finish_pending_final(self.recognizer, work.state, encoded)
        return state, work.events + events

    async def _run_offline_batch(self) -> None:
        batch: list[OfflineWork] = []
        audio_s = 0.0
        while self._offline and (not batch or audio_s + self._offline[0].audio_s
                                 <= self.limits.max_offline_batch_audio_s):
            work = self._offline.popleft()
            audio_s += work.audio_s
            self._offline_queued_s -= work.audio_s
            if not work.future.done():
                batch.append(work)
        if not batch:
            return
        spans = [r for w in batch for r in w.spans]
        options = [o for w in batch for o in w.options]
        transcripts = await self._device_step("offline", batch, len(spans), self._offline_step, spans, options)
        if transcripts is None:
            return
        position = 0
        for work in batch:
            mine = transcripts[position : position + len(work.spans)]
            position += len(work.spans)
            if not work.future.done():
                work.future.set_result(mine)

    def _offline_step(self, spans: list[torch.Tensor], options: list[DecodeOptions]) -> list[Transcript]:
        self._count_device_batch()
        return self.recognizer.transcribe_spans(spans, options)

    def _count_device_batch(self) -> None:
        """On the device thread, first thing in every batch: the fault-injection testing aid raises here, inside
        the step, exactly where a real model failure would."""
        self._device_batches += 1
        every = self.limits.fault_injection_every_n_batches
        if every and self._device_batches % every == 0:
            raise RuntimeError(f"injected fault in device batch {self._device_batches}")
