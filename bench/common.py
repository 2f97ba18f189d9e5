"""Shared pieces of the benchmarks: interleaved timing, summaries, tables, machine description, JSON results,
and the model under test (a checkpoint, or a random model of the bundled model's size when none is given)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_CONFIG = ROOT / "model" / "configs" / "synth_small.toml"
# Size of the bundled model's vocabulary (subwords + CJK characters + locale tokens), for random stand-ins.
DEFAULT_VOCAB_SIZE = 4300
DEFAULT_LOCALES = ("zh-CN", "yue-HK", "en-US")


@dataclass(frozen=True)
class Summary:
    """Timing of one case over its repeats, in milliseconds."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    repeats: int


def summarize(seconds: Sequence[float]) -> Summary:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return Summary(
        median_ms=float(np.median(ms)), p95_ms=float(np.percentile(ms, 95)), mean_ms=float(ms.mean()),
        min_ms=float(ms.min()), repeats=len(ms),
    )


def time_once(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved_timings(
    cases: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each case, measured round-robin: every round runs each case once, in an order that
    rotates between rounds. On a shared machine, load that comes and goes then hits all cases alike instead of
    whichever case happened to run during the spike, so the cases stay comparable with one another."""
    names = list(cases)
    for _ in range(warmup):  # first calls pay for lazy allocation and kernel selection
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_once(cases[name]))
    return samples


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table, right-aligned numbers; floats with 2 decimals unless already formatted."""
    cells = [[f"{value:.2f}" if isinstance(value, float) else str(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(value.rjust(w) for value, w in zip(row, widths)) for row in cells]
    return "\n".join([line, rule, *body])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n{title}\n{format_table(headers, rows)}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict:
    """What the numbers depend on. The load average is recorded because a busy machine skews everything."""
    return {
        "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "torch_threads": threads,
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "platform": platform.platform(), "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def git_commit() -> str:
    """The commit measured (a run from a tree with uncommitted changes says so only in its own notes)."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def print_measured_on(report: dict) -> None:
    """One line: the model and the machine a report measured."""
    machine = report["machine"]
    print(f"model: {report['model']}; {machine['cpu_model']}, {machine['torch_threads']} threads, "
          f"load {machine['load_average_1m_at_start']}")


def add_served_checkpoint_option(parser: argparse.ArgumentParser) -> None:
    """--checkpoint for a benchmark that starts its own server: the model it serves (ASR_CHECKPOINT)."""
    parser.add_argument("--checkpoint", help="the started server's model (ASR_CHECKPOINT: a path or a bundled model's "
                                             "name, e.g. synthetic-voices); default: the bundled model")


def served_checkpoint_env(checkpoint: str | None) -> dict[str, str]:
    return {"ASR_CHECKPOINT": checkpoint} if checkpoint else {}


def results_name(name: str, checkpoint: str | None) -> str:
    """A benchmark's results name, with the served model's name (a checkpoint's stem) where it is not the default."""
    return name + (f"_{Path(checkpoint).stem}" if checkpoint else "")


def write_results(name: str, payload: dict, directory: Path = RESULTS_DIR) -> Path:
    """bench/results/<name>.json, overwritten by each run (the last run is the one to read)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(to_jsonable(payload), indent=2, ensure_ascii=False) + "\n")
    return path


def to_jsonable(value: object) -> object:
    if isinstance(value, Summary):
        return asdict(value)
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value


def benchmark_recognizer(checkpoint: str | None):
    """(checkpoint path, loaded model, Recognizer) of a trained checkpoint, the bundled one by default: for the
    benchmarks whose result depends on what the model says (search, finals, timestamps), not only on its compute."""
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from model.recognition.recognizer import Recognizer

    path = checkpoint or str(DEFAULT_CHECKPOINT)
    loaded = load_checkpoint(path)
    return path, loaded, Recognizer(loaded)


def benchmark_model(checkpoint: str | None):
    """(model in eval mode, description). Without a checkpoint: random weights with the espeak-ng-only recipe's
    config (the synthetic-voices model's network), which costs the same compute as that trained model (timing does
    not depend on weight values)."""
    from model.network.checkpoint import load_checkpoint
    from model.network.model import ModelConfig, SpeechRecognizer
    from model.training.train_config import TrainConfig

    if checkpoint:
        loaded = load_checkpoint(checkpoint)
        return loaded.model, f"checkpoint {checkpoint} ({loaded.name} {loaded.version})"
    train = TrainConfig.from_toml(DEFAULT_CONFIG)
    config = ModelConfig(
        vocab_size=DEFAULT_VOCAB_SIZE, locales=DEFAULT_LOCALES, encoder=train.encoder, decoder=train.decoder
    )
    torch.manual_seed(0)
    return SpeechRecognizer(config).eval(), f"random weights, config {DEFAULT_CONFIG.relative_to(ROOT)}"
