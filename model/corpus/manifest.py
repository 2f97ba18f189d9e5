"""The JSONL manifest shared by the builder, the importers and training."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # relative to the manifest folder, or absolute (imported corpora)
    text: str  # normalised with normalize.normalize_text
    locale: str
    speaker: str
    duration: float  # seconds; 0.0 means unknown (see importers)
    condition: str = "clean"


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Write one JSON object per line, atomically (tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for utt in utterances:
            f.write(json.dumps(asdict(utt), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _resolve(utt: Utterance, root: Path) -> Utterance:
    if os.path.isabs(utt.audio):
        return utt
    return replace(utt, audio=str(root / utt.audio))


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest; relative audio paths become paths usable from cwd."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(_resolve(Utterance(**json.loads(line)), path.parent))
    return out
