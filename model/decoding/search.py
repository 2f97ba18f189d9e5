"""First-pass CTC search, incremental across chunks: greedy and prefix beam search with hotword biasing.

Both take a row of log posteriors for the new frames (S, V) and a search state, and return the next state; the
same functions serve streaming (one chunk at a time) and offline decoding (all frames at once), so streamed
and offline results agree by construction. Times are in encoder frames (40 ms); the caller converts.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from model.decoding import compiled_search
from model.decoding.hotwords import HotwordTrie, NO_MATCH
from model.decoding.lexicon import LexiconPenalty
from model.decoding.lm import LanguageModel
from model.text.tokenizer import BLANK_ID


class TokenTiming(NamedTuple):  # immutable like a frozen dataclass, and ~5x cheaper to build in the search loop
    token_id: int
    start_frame: int  # first frame where the token fired
    end_frame: int  # last frame of its run (inclusive)
    confidence: float  # highest posterior over its frames


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[TokenTiming, ...]
    log_prob: float  # CTC log-probability of the label sequence (summed over alignments)
    bias: float = 0.0  # hotword boost included in the ranking score
    lm_score: float = 0.0  # weighted language-model log-probability plus length bonus (shallow fusion)

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(t.token_id for t in self.tokens)

    @property
    def score(self) -> float:
        return self.log_prob + self.bias + self.lm_score


@dataclass(frozen=True)
class LmFusion:
    """Shallow fusion: each new token adds weight * log P_LM(token | history) + bonus to a hypothesis' score
    (the bonus offsets the LM's bias towards short outputs)."""

    lm: LanguageModel
    weight: float = 0.3
    bonus: float = 0.5
    lexicon: LexiconPenalty | None = None  # word-piece locales: a penalty per word outside the LM's vocabulary

    def token_score(self, prefix: tuple[int, ...], token: int) -> float:
        score = self.weight * self.lm.log_prob_after(self.lm.context_of(prefix), token) + self.bonus
        return score - self.lexicon.token_penalty(prefix, token) if self.lexicon else score

    @property
    def max_token_score(self) -> float:
        """No token scores more: log P <= 0 and the lexicon only subtracts (the 0.01 covers float16 LM tables,
        whose probabilities can sum a hair over 1). The bound that lets the search score only what can rank."""
        return self.bonus + 0.01 * self.weight

    def end_score(self, prefix: tuple[int, ...]) -> float:
        score = self.weight * self.lm.log_prob_after(self.lm.context_of(prefix), self.lm.end_id)
        return score - self.lexicon.end_penalty(prefix) if self.lexicon else score


# ---------------------------------------------------------------------------------------------- greedy search


@dataclass(frozen=True)
class GreedyState:
    tokens: tuple[TokenTiming, ...] = ()
    last_id: int = BLANK_ID
    frames: int = 0  # frames consumed so far
    log_prob: float = 0.0  # sum of best-path frame log-probs (a Viterbi score, used as a confidence)


def greedy_search(log_probs: torch.Tensor, state: GreedyState = GreedyState()) -> GreedyState:
    """log_probs (S, V) for the next S frames -> next state. Collapses repeats, drops blanks."""
    best, best_ids = log_probs.max(dim=-1)
    tokens, last_id = list(state.tokens), state.last_id
    for offset, (token_id, score) in enumerate(zip(best_ids.tolist(), best.tolist())):
        frame = state.frames + offset
        if token_id != BLANK_ID and token_id == last_id and tokens:
            previous = tokens[-1]
            tokens[-1] = previous._replace(end_frame=frame, confidence=max(previous.confidence, math.exp(score)))
        elif token_id != BLANK_ID:
            tokens.append(TokenTiming(token_id, frame, frame, math.exp(score)))
        last_id = token_id
    return GreedyState(tuple(tokens), last_id, state.frames + len(best_ids), state.log_prob + float(best.sum()))


def greedy_hypothesis(state: GreedyState) -> Hypothesis:
    return Hypothesis(state.tokens, state.log_prob)


# ---------------------------------------------------------------------------------------- prefix beam search


# Prefixes kept per frame when a checkpoint has no tuned beam: English word pieces need room (many spellings of a
# sound compete), and 8 measured better than 4 in every locale for little more time (docs/model_releases.md); each
# locale's tuned beam is stored in the checkpoint (model.evaluation.evaluate --tune-lm-on).
DEFAULT_BEAM_SIZE = 8


@dataclass(frozen=True)
class BeamOptions:
    beam_size: int = DEFAULT_BEAM_SIZE
    token_candidates: int = 6  # per frame, the most likely non-blank tokens considered
    min_token_log_prob: float = math.log(1e-4)  # ...and only those above this
    blank_skip_prob: float = 0.999  # a frame this sure of blank only extends blanks (CTC peaky behaviour)
    # Build and LM-score only the candidates that can still rank. False builds and scores them all: the same beams,
    # slower; the reference the search is tested and benchmarked against (tests/decoding/test_search.py,
    # bench_search.py).
    skip_unrankable: bool = True


@dataclass
class _Beam:
    blank: float  # log P(prefix, last frame blank)
    non_blank: float  # log P(prefix, last frame = its last token)
    timings: tuple[TokenTiming, ...]
    node: int = NO_MATCH  # hotword trie position
    bias: float = 0.0
    lm_score: float = 0.0

    @property
    def total(self) -> float:
        return _logaddexp(self.blank, self.non_blank)


Prefix = tuple[int, ...]  # a hypothesis' token ids so far
Beams = dict[Prefix, _Beam]  # the prefixes kept after a frame, each with its path probabilities


@dataclass(frozen=True)
class BeamState:
    beams: Beams = field(default_factory=lambda: {(): _Beam(0.0, -math.inf, ())})
    frames: int = 0


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


@dataclass
class _Candidate:
    """A prefix reached in the current frame. Its probability is summed over every path first; its token timings
    are built only if it survives the pruning (`to_beam`), since most candidates are dropped at once."""

    blank: float
    non_blank: float
    parent: _Beam  # the beam whose path created this entry (later paths only add probability)
    token: int | None  # the token that path added; None if it kept the parent's prefix
    log_prob: float  # that token's (or the repeated last token's) log posterior in this frame
    repeated: bool  # kept the prefix by repeating its last token, which extends that token's time span
    node: int
    bias: float
    lm_score: float

    @property
    def score(self) -> float:
        return _logaddexp(self.blank, self.non_blank) + self.bias + self.lm_score

    def to_beam(self, frame: int) -> _Beam:
        timings = self.parent.timings
        if self.token is not None:
            timings = timings + (TokenTiming(self.token, frame, frame, math.exp(self.log_prob)),)
        elif self.repeated:
            last = timings[-1]
            timings = timings[:-1] + (last._replace(end_frame=frame,
                                                    confidence=max(last.confidence, math.exp(self.log_prob))),)
        return _Beam(self.blank, self.non_blank, timings, self.node, self.bias, self.lm_score)


def _extend(following: dict[Prefix, _Candidate], prefix: Prefix, parent: _Beam, token: int, log_prob: float,
            path: float, trie: HotwordTrie | None) -> None:
    """Add the path `parent` -> `prefix + (token,)` with probability `path` (log) to the next frame's candidates.
    Its LM score is added later, and only if it can still rank (`_rank_fused`)."""
    new_prefix = prefix + (token,)
    entry = following.get(new_prefix)
    if entry is None:
        node, delta = trie.advance(parent.node, token) if trie else (NO_MATCH, 0.0)
        following[new_prefix] = _Candidate(-math.inf, path, parent, token, log_prob, False, node, parent.bias + delta,
                                           parent.lm_score)
    else:
        entry.non_blank = _logaddexp(entry.non_blank, path)


def _stay(following: dict[Prefix, _Candidate], prefix: Prefix, parent: _Beam, blank_path: float, repeat_path: float,
          log_prob: float) -> None:
    """The prefix survives the frame: by a blank, or by repeating its last token (which extends its time span)."""
    entry = following.get(prefix)
    if entry is None:
        repeated = repeat_path > -math.inf and bool(parent.timings)
        following[prefix] = _Candidate(blank_path, repeat_path, parent, None, log_prob, repeated, parent.node,
                                       parent.bias, parent.lm_score)
    else:
        entry.blank = _logaddexp(entry.blank, blank_path)
        entry.non_blank = _logaddexp(entry.non_blank, repeat_path)


def _advance_frame(beams: Beams, frame: int, blank_lp: float, candidates: list[tuple[int, float]],
                   options: BeamOptions, trie: HotwordTrie | None, fusion: LmFusion | None) -> Beams:
    following: dict[Prefix, _Candidate] = {}
    token_lps = dict(candidates)
    kept = []  # (prefix, beam, its last token, its total, that token's log posterior in this frame)
    for prefix, beam in beams.items():
        last = prefix[-1] if prefix else None
        kept.append((prefix, beam, last, beam.total, -math.inf if last is None else token_lps.get(last, -math.inf)))
    # Every kept prefix survives the frame with at least its own blank and repeat paths, so the beam_size-th best of
    # those scores is a floor the next beam cannot fall below. An extension whose one path, with the largest LM step
    # and hotword bonus any token can get, stays under that floor cannot rank, and is never built: the same beams
    # from a third fewer candidates in English at beam 16 (few in Mandarin, whose frames are mostly skipped as
    # blank). Paths into a prefix that is itself kept merge there, so they are never skipped.
    floor = -math.inf
    if len(kept) >= options.beam_size:
        floor = heapq.nlargest(options.beam_size, (
            _logaddexp(total + blank_lp, beam.non_blank + repeat_lp) + beam.bias + beam.lm_score
            for _, beam, _, total, repeat_lp in kept))[-1]
    merging: dict[Prefix, set[int]] = {}
    for prefix in beams:
        if prefix:
            merging.setdefault(prefix[:-1], set()).add(prefix[-1])
    gain = _max_gain(options, trie, fusion)
    for prefix, beam, last, total, repeat_lp in kept:
        _stay(following, prefix, beam, total + blank_lp, beam.non_blank + repeat_lp, repeat_lp)
        reach = floor - gain - beam.bias - beam.lm_score
        into_kept = merging.get(prefix, ())
        for token, lp in candidates:
            # A repeated token only starts a new label after a blank.
            path = beam.blank + lp if token == last else total + lp
            if path > -math.inf and (path >= reach or token in into_kept):
                _extend(following, prefix, beam, token, lp, path, trie)
    if fusion is None:
        # nlargest is documented as sorted(..., reverse=True)[:n], ties included, so the ranking is unchanged.
        ranked = heapq.nlargest(options.beam_size, following.items(), key=lambda item: item[1].score)
    else:
        ranked = _rank_fused(following, options.beam_size, fusion, options.skip_unrankable)
    return {prefix: candidate.to_beam(frame) for prefix, candidate in ranked}


def _max_gain(options: BeamOptions, trie: HotwordTrie | None, fusion: LmFusion | None) -> float:
    """The most one token can add to a score besides its path: the largest LM step and hotword bonus (inf: no
    pruning, the reference the pruning is tested against)."""
    if not options.skip_unrankable:
        return math.inf
    return (fusion.max_token_score if fusion else 0.0) + (trie.max_gain if trie else 0.0)


def _rank_fused(following: dict[Prefix, _Candidate], beam_size: int, fusion: LmFusion, skip_unrankable: bool = True
                ) -> list[tuple[Prefix, _Candidate]]:
    """The `beam_size` best candidates with the LM step added to each new prefix: the same ranking as scoring every
    candidate, but a candidate is scored only while its score plus the largest possible LM step could still beat the
    k-th best so far (best-first, admissible bound). The LM and lexicon were three quarters of an English beam-16
    search, and most of a frame's candidates trail the k-th best by more than any LM step can make up."""
    bound = fusion.max_token_score if skip_unrankable else math.inf
    pending = sorted(((c.score + (bound if c.token is not None else 0.0), -seq, prefix, c)
                      for seq, (prefix, c) in enumerate(following.items())), reverse=True)
    top: list = []  # min-heap of (score, -insertion order, ...): among equal scores the earlier candidate ranks first
    for optimistic, order, prefix, candidate in pending:
        if len(top) == beam_size and optimistic < top[0][0]:
            break  # this one, and every one after it, cannot rank
        if candidate.token is not None:  # a new prefix: its last token's LM step
            candidate.lm_score += fusion.token_score(prefix[:-1], candidate.token)
        entry = (candidate.score, order, prefix, candidate)
        if len(top) < beam_size:
            heapq.heappush(top, entry)
        elif entry > top[0]:
            heapq.heapreplace(top, entry)
    return [(prefix, candidate) for _, _, prefix, candidate in sorted(top, reverse=True)]


@dataclass(frozen=True)
class FramePosteriors:
    """What the search reads of S frames of CTC log-posteriors, as Python lists. A streaming step computes these
    for its whole batch in a few tensor ops (`frame_posteriors`) instead of a few small ops per stream."""

    top_log_probs: list[list[float]]  # (S, K) the K most likely labels per frame, most likely first
    top_ids: list[list[int]]  # (S, K)
    blank_log_probs: list[float]  # (S,)
    best_ids: list[int]  # (S,) argmax label per frame
    candidates: int  # K - 1: the token_candidates these were computed for (K = all labels if fewer)

    @property
    def frames(self) -> int:
        return len(self.blank_log_probs)


def frame_posteriors(log_probs: torch.Tensor, valid: list[int], candidates: int = BeamOptions.token_candidates
                     ) -> list[FramePosteriors]:
    """log_probs (B, S, V), valid frames per row -> one FramePosteriors per row (its first `valid` frames)."""
    top_lp, top_ids = log_probs.topk(min(candidates + 1, log_probs.shape[-1]), dim=-1)  # (B, S, K)
    rows = zip(top_lp.tolist(), top_ids.tolist(), log_probs[..., BLANK_ID].tolist(), log_probs.argmax(-1).tolist())
    return [FramePosteriors(lps[:n], ids[:n], blanks[:n], best[:n], candidates)
            for (lps, ids, blanks, best), n in zip(rows, valid)]


def prefix_beam_search(
    log_probs: torch.Tensor | FramePosteriors, state: BeamState | None = None, options: BeamOptions = BeamOptions(),
    trie: HotwordTrie | None = None, fusion: LmFusion | None = None,
) -> BeamState:
    """CTC prefix beam search (Graves 2006; Hannun et al. 2014) over the next frames (S, V) -> next state: the served
    search, compiled (compiled_search.py) where the install built it, else `reference_prefix_beam_search`. Both give
    the same beams, scores and timings (tests/decoding/test_compiled_search.py)."""
    if not compiled_search.AVAILABLE:
        return reference_prefix_beam_search(log_probs, state, options, trie, fusion)
    state, posteriors, trie = _search_inputs(log_probs, state, options, trie)
    rows = [(prefix, b.blank, b.non_blank, b.timings, b.node, b.bias, b.lm_score) for prefix, b in state.beams.items()]
    compiled_fusion = None if fusion is None else compiled_search.fusion(fusion.lm, fusion.weight, fusion.bonus,
                                                                         fusion.lexicon)
    bound = fusion.max_token_score if fusion is not None and options.skip_unrankable else math.inf
    beams = compiled_search.search(
        rows, posteriors.top_log_probs, posteriors.top_ids, posteriors.blank_log_probs, state.frames,
        beam_size=options.beam_size, token_candidates=options.token_candidates, blank_id=BLANK_ID,
        min_token_log_prob=options.min_token_log_prob, blank_skip_prob=options.blank_skip_prob,
        gain=_max_gain(options, trie, fusion), bound=bound, trie=trie, fusion=compiled_fusion, timing_type=TokenTiming)
    return BeamState({row[0]: _Beam(*row[1:]) for row in beams}, state.frames + posteriors.frames)


def reference_prefix_beam_search(
    log_probs: torch.Tensor | FramePosteriors, state: BeamState | None = None, options: BeamOptions = BeamOptions(),
    trie: HotwordTrie | None = None, fusion: LmFusion | None = None,
) -> BeamState:
    """The search in Python: what the compiled one is tested against, and what serves where it was not built."""
    state, posteriors, trie = _search_inputs(log_probs, state, options, trie)
    skip = math.log(options.blank_skip_prob)
    beams = {prefix: _Beam(b.blank, b.non_blank, b.timings, b.node, b.bias, b.lm_score)
             for prefix, b in state.beams.items()}
    frames = zip(posteriors.top_log_probs, posteriors.top_ids, posteriors.blank_log_probs)
    for offset, (lps, ids, blank_lp) in enumerate(frames):
        frame = state.frames + offset
        if blank_lp > skip:
            for beam in beams.values():
                beam.blank, beam.non_blank = beam.total + blank_lp, -math.inf
            continue
        candidates = [(t, lp) for t, lp in zip(ids, lps) if t != BLANK_ID and lp > options.min_token_log_prob]
        beams = _advance_frame(beams, frame, blank_lp, candidates[: options.token_candidates], options, trie, fusion)
    return BeamState(beams, state.frames + posteriors.frames)


def _search_inputs(log_probs: torch.Tensor | FramePosteriors, state: BeamState | None, options: BeamOptions,
                   trie: HotwordTrie | None) -> tuple[BeamState, FramePosteriors, HotwordTrie | None]:
    """What both searches start from: the state (a fresh one for None), the frames' posteriors, the trie (None if
    empty)."""
    if isinstance(log_probs, torch.Tensor):
        [log_probs] = frame_posteriors(log_probs[None], [log_probs.shape[0]], options.token_candidates)
    if log_probs.candidates < options.token_candidates:
        raise ValueError("the posteriors hold fewer labels per frame than the search considers")
    return state or BeamState(), log_probs, None if trie is not None and trie.empty else trie


def beam_hypotheses(state: BeamState, trie: HotwordTrie | None = None, final: bool = False,
                    fusion: LmFusion | None = None) -> list[Hypothesis]:
    """The n-best, best first. For a final result, bonus for an unfinished hotword is taken back and the LM
    scores the end of the sentence."""
    hypotheses = []
    for prefix, beam in state.beams.items():
        bias, lm_score = beam.bias, beam.lm_score
        if final and trie is not None:
            bias -= trie.boost * trie.depth[beam.node]
        if final and fusion is not None:
            lm_score += fusion.end_score(prefix)
        hypotheses.append(Hypothesis(beam.timings, beam.total, bias, lm_score))
    return sorted(hypotheses, key=lambda h: h.score, reverse=True)
