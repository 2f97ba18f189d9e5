"""What the neural-voice renderers (model.corpus.kokoro, model.corpus.piper) share: their command line. Each speaks
the distinct sentences of a manifest in order, one clip per sentence, resumable (a clip on disk is kept), split over
worker processes by index, and writes the manifest of the clips on disk."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def renderer_parser(description: str, locales: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="its distinct sentences of the locale are spoken, in order")
    p.add_argument("--locale", nargs="+", default=[locales[0]], choices=locales, help="one or more, each in turn")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--count", type=int, default=1000, help="distinct sentences per locale")
    p.add_argument("--skip", type=int, default=0,
                   help="pass over the first N distinct sentences of each locale (another corpus's); clips are "
                        "numbered from the first spoken, so a different --skip needs its own --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (one process per core is fastest)")
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--deadline-minutes", type=float, default=None,
                   help="stop rendering after this long; clips on disk are still listed (0: only list them)")
    return p


def sentences_to_speak(texts: list[str], args: argparse.Namespace) -> list[str]:
    """The distinct sentences in order, past --skip, at most --count."""
    return list(dict.fromkeys(texts))[args.skip : args.skip + args.count]


def deadline_of(args: argparse.Namespace) -> float | None:
    """The monotonic time rendering stops at, or None."""
    return None if args.deadline_minutes is None else time.monotonic() + 60 * args.deadline_minutes


def renders(index: int, path: Path, args: argparse.Namespace, deadline: float | None) -> bool:
    """Whether this worker renders clip `index` now: it is this worker's, not on disk yet, and time remains."""
    in_time = deadline is None or time.monotonic() < deadline
    return index % args.workers == args.worker and in_time and not path.exists()
