"""Adapting a locale's language model to a deployment's own words: a call centre's product names, order phrases and
scripts, given as a text file of its sentences.

The sentences become an n-gram of their own (model.decoding.kneser_ney, same order and tokens as the general one),
mixed into the general LM (model.decoding.lm.InterpolatedLM) in proportion to how much the words just heard read like
the domain's, up to a weight: the one of WEIGHTS that gives the lowest perplexity on held-out lines of the same text
(every HELD_OUT_EVERY-th line; the domain n-gram is estimated on the other lines for this). The served domain n-gram
is then estimated on every line. Where the locale has a spelling lexicon (English), the text's words join it, so its
names are not charged as misspellings. The general LM and its fusion weight and bonus (tuned on dev) stay as they are.

Both ways in end here: `openasr lm adapt` writes an adapted checkpoint, and `ASR_DOMAIN_TEXT` adapts the served
model as the server starts (docs/adaptation.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.decoding.kneser_ney import perplexity, train_ngram
from model.decoding.lexicon import Lexicon
from model.decoding.lm import DOMAIN_PRIOR, InterpolatedLM, NgramLM
from model.network.checkpoint import LoadedModel
from model.text.locales import resolve_locale
from model.text.normalize import is_chinese_locale, normalize_text
from model.text.tokenizer import UNK_ID, Tokenizer

HELD_OUT_EVERY = 10  # every 10th line of the text tunes the weight (10%)
MIN_LINES = 20  # so that at least two lines are held out
WEIGHTS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # the weights tried; 1 would leave a domain word no general alternative
# Chinese text is split into clauses at punctuation (as the general LM's text was), English into sentences.
_CHINESE_CLAUSE = re.compile(r"[^\w]+|_+")
_ENGLISH_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class DomainTextError(ValueError):
    """A domain text that cannot adapt a model: missing, empty, or too short to tune on."""


@dataclass(frozen=True)
class DomainText:
    name: str  # the file's name, as /v1/models states it
    sha256: str  # of the file's bytes: which version of the text a deployment serves
    lines: tuple[tuple[tuple[int, ...], ...], ...]  # per usable line, its sentences as token ids
    skipped_lines: int  # lines with no sentence the model's tokens can spell

    @property
    def sentences(self) -> list[tuple[int, ...]]:
        return [sentence for line in self.lines for sentence in line]


def line_sentences(line: str, locale: str) -> list[str]:
    """One line of the text as normalised sentences (Chinese: clauses between punctuation)."""
    pieces = _CHINESE_CLAUSE.split(line) if is_chinese_locale(locale) else _ENGLISH_SENTENCE.split(line)
    return [text for text in (normalize_text(piece, locale) for piece in pieces) if text]


def read_domain_text(path: str | Path, locale: str, tokenizer: Tokenizer) -> DomainText:
    """The text's lines as token ids; a sentence with a character outside the model's tokens is left out (an
    n-gram that learns <unk> would only favour <unk>)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DomainTextError(f"cannot read the domain text {path}: {error.strerror or error}") from error
    lines, skipped = [], 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        encoded = (tokenizer.encode(text) for text in line_sentences(line, locale))
        sentences = tuple(tuple(ids) for ids in encoded if ids and UNK_ID not in ids)
        if sentences:
            lines.append(sentences)
        else:
            skipped += 1
    if len(lines) < MIN_LINES:
        raise DomainTextError(
            f"the domain text {path} has {len(lines)} usable lines for {locale}; at least "
            f"{MIN_LINES} are needed (one in {HELD_OUT_EVERY} is held out to tune the weight)"
        )
    return DomainText(path.name, hashlib.sha256(data).hexdigest(), tuple(lines), skipped)


def split_held_out(text: DomainText) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(sentences to estimate on, sentences to tune the weight on): whole lines, every HELD_OUT_EVERY-th held out."""
    fit: list[tuple[int, ...]] = []
    held_out: list[tuple[int, ...]] = []
    for index, line in enumerate(text.lines):
        (held_out if index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else fit).extend(line)
    return fit, held_out


def tune_weight(general: NgramLM, domain: NgramLM, held_out: Sequence[Sequence[int]]) -> float:
    """The weight of WEIGHTS under which the mixture is least perplexed by the held-out sentences."""
    return min(WEIGHTS, key=lambda weight: perplexity(InterpolatedLM(general, domain, weight), held_out))


def adapt_language_model(payload: dict, text: DomainText, tokenizer: Tokenizer) -> tuple[dict, dict]:
    """A locale's LM payload with the domain n-gram and its weight added (an earlier adaptation is replaced), and the
    report of what was done."""
    general = NgramLM.from_payload(payload)
    fit, held_out = split_held_out(text)
    tuning = train_ngram([list(s) for s in fit], general.vocab_size, general.order, general.end_id, min_count=1)
    weight = tune_weight(general, tuning, held_out)
    report = {
        "text": text.name,
        "sha256": text.sha256,
        "lines": len(text.lines),
        "sentences": len(text.sentences),
        "skipped_lines": text.skipped_lines,
        "held_out_lines": len(text.lines) // HELD_OUT_EVERY,
        "held_out_perplexity": {
            "general": round(perplexity(general, held_out), 1),
            "adapted": round(perplexity(InterpolatedLM(general, tuning, weight), held_out), 1),
        },
    }
    served = train_ngram(
        [list(s) for s in text.sentences], general.vocab_size, general.order, general.end_id, min_count=1
    )
    adapted = {
        **payload,
        "domain": {"lm": served.to_payload(), "weight": weight, "prior": DOMAIN_PRIOR, "source": report},
    }
    if payload.get("lexicon") is not None:
        lexicon = Lexicon.from_payload(payload["lexicon"])
        words = Lexicon.from_sentences(tokenizer.decode(s) for s in text.sentences).words
        adapted["lexicon"] = lexicon.with_words(words).to_payload()
        report["lexicon_words_added"] = len(words - lexicon.words)
    return adapted, {**report, "weight": weight}


def adapt_checkpoint(loaded: LoadedModel, texts: Mapping[str, str | Path]) -> dict[str, dict]:
    """Adapt each named locale's LM (an alias such as `yue` names yue-HK) to its text, in place; the reports are kept
    in the metadata under `language_model_adaptation` and returned."""
    reports = {}
    for requested, path in texts.items():
        locale = resolve_locale(requested, loaded.tokenizer.locales)
        if locale is None or locale not in loaded.language_models:
            raise DomainTextError(
                f"{requested!r} names no locale with a language model to adapt "
                f"(this model has {', '.join(sorted(loaded.language_models))})"
            )
        text = read_domain_text(path, locale, loaded.tokenizer)
        loaded.language_models[locale], reports[locale] = adapt_language_model(
            loaded.language_models[locale], text, loaded.tokenizer
        )
    if reports:
        loaded.metadata["language_model_adaptation"] = {
            **loaded.metadata.get("language_model_adaptation", {}),
            **reports,
        }
    return reports
