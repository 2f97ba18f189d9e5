"""The compiled first-pass search (_ctc_search.cpp) as search.py calls it: its scorers built once from the Python LM,
lexicon and token pieces, and one call per chunk.

Why compiled: profiled on bench_search's workload, the Python search spent more than half its time on bookkeeping
(a candidate object per extension, dict and tuple churn, logaddexp in Python) and most of the rest on LM and lexicon
lookups, not on tensors; the compiled one does the same arithmetic in the same order, so its beams, scores and
timings are the reference's bit for bit (tests/decoding/test_compiled_search.py).

`AVAILABLE` is False where the install could not compile it (setup.py: no C++ compiler); search.py then runs its
Python search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model.decoding.hotwords import HotwordTrie
from model.decoding.lexicon import Lexicon, LexiconPenalty
from model.decoding.lm import LanguageModel, NgramLM

try:
    from model.decoding import _ctc_search  # type: ignore[attr-defined]
except ImportError:  # not built: search.py falls back to Python
    _ctc_search = None

AVAILABLE = _ctc_search is not None


class _Built:
    """Python object -> its compiled form, keyed by id, holding the object so that the id is not reused while
    cached; emptied when full. Search threads share it: a race builds twice, never wrong."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: dict[int, tuple[object, Any]] = {}

    def __call__(self, source: object, build: Callable[[Any], Any]) -> Any:
        entry = self.entries.get(id(source))
        if entry is not None and entry[0] is source:
            return entry[1]
        if len(self.entries) >= self.limit:
            self.entries.clear()
        compiled = build(source)
        self.entries[id(source)] = (source, compiled)
        return compiled


# A locale's LM, lexicon and token pieces: built once per process (the Mandarin LM's tables take about half a second),
# apart from what a request brings, so that many requests' hotwords never push them out.
_built = _Built(limit=64)
_built_for_request = _Built(limit=1024)  # hotword tries and the words of their phrases: small, one per set


def _table(table: dict[int, float]) -> Any:
    keys = np.fromiter(table.keys(), dtype=np.int64, count=len(table))
    values = np.fromiter(table.values(), dtype=np.float64, count=len(table))
    return _ctc_search.KeyTable(keys, values)


def _ngram(lm: NgramLM) -> Any:
    return _ctc_search.NgramLm(lm.order, lm.vocab_size, lm.end_id, _table(lm.alpha), _table(lm.gamma),
                               [float(p) for p in lm.unigram])


def _compiles(lm: LanguageModel) -> bool:
    """An NgramLM whose keys fit in int64 is looked up natively; any other LM (InterpolatedLM, a subclass) is asked
    through its own `log_prob_after`, from the compiled search."""
    return type(lm) is NgramLM and (lm.vocab_size + 1) ** lm.order < 2**63


def _words(lexicon: Lexicon) -> Any:
    return _ctc_search.WordList(list(lexicon.words))


def _pieces(pieces: Sequence[str]) -> Any:
    return _ctc_search.Pieces(list(pieces), [piece.strip() for piece in pieces])


def _lexicon_penalty(penalty: LexiconPenalty) -> Any:
    request = _built_for_request(penalty.request_words, _words) if penalty.request_words is not None else None
    return _ctc_search.LexiconPenalty(_built(penalty.lexicon, _words), request, _built(penalty.pieces, _pieces),
                                      penalty.penalty)


def _trie(trie: HotwordTrie) -> Any:
    return _ctc_search.Trie(trie.boost, trie.children, trie.depth, trie.terminal)


def fusion(lm: LanguageModel, weight: float, bonus: float, lexicon: LexiconPenalty | None) -> Any:
    """LmFusion's token score, compiled."""
    native = _built(lm, _ngram) if _compiles(lm) else None
    return _ctc_search.Fusion(weight, bonus, lm.order, lm.end_id, native, lm.log_prob_after,
                              _lexicon_penalty(lexicon) if lexicon is not None else None)


BeamRow = tuple[tuple[int, ...], float, float, tuple, int, float, float]  # prefix, _Beam's fields in order


def search(beams: list[BeamRow], top_log_probs: list[list[float]], top_ids: list[list[int]],
           blank_log_probs: list[float], first_frame: int, *, beam_size: int, token_candidates: int, blank_id: int,
           min_token_log_prob: float, blank_skip_prob: float, gain: float, bound: float, trie: HotwordTrie | None,
           fusion: Any, timing_type: type) -> list[BeamRow]:
    """search.py's frame loop over these frames: the next beams, best first. `fusion` from `fusion()` or None."""
    options = _ctc_search.Options(beam_size, token_candidates, blank_id, min_token_log_prob,
                                  math.log(blank_skip_prob), gain, bound)
    native_trie = _built_for_request(trie, _trie) if trie is not None else None
    return _ctc_search.search(beams, top_log_probs, top_ids, blank_log_probs, first_frame, options, native_trie,
                              fusion, timing_type)
