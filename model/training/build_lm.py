"""Building the token n-gram LMs (model.decoding.lm) and lexicons (model.decoding.lexicon) a checkpoint carries,
one per locale, from the corpus text sources minus the dev/test sentences.

The tables are estimated by model.decoding.kneser_ney (interpolated Kneser-Ney), which a deployment's own sentences
also go through when it adapts a model (model.decoding.adaptation).

    python -m model.training.build_lm --checkpoint model/checkpoints/default.pt --exclude data/synth/dev.jsonl ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.corpus.manifest import read_manifest
from model.corpus.text_sources import load_sentences
from model.decoding.kneser_ney import perplexity, train_ngram
from model.decoding.lexicon import Lexicon, word_list_entries
from model.decoding.lm import max_order
from model.network.checkpoint import load_checkpoint, update_checkpoint


def parse_per_locale(items: list[str], default: int) -> dict[str | None, int]:
    """["3", "en-US=4"] -> {None: 3, "en-US": 4}; None is the value for the other locales (default if not given)."""
    values: dict[str | None, int] = {None: default}
    for item in items:
        locale, _, value = item.rpartition("=")
        values[locale or None] = int(value)
    return values


def main(argv: list[str] | None = None) -> None:
    """Train one LM per locale on the corpus text sources (minus dev/test sentences) and store them in a checkpoint:
    python -m model.training.build_lm --checkpoint model/checkpoints/default.pt --exclude data/synth/dev.jsonl ..."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--exclude", nargs="*", default=[], help="manifests whose sentences the LM must not see")
    parser.add_argument("--order", nargs="+", default=["3"], metavar="N | LOCALE=N",
                        help="n-gram order, for all locales and/or per locale (e.g. 3 en-US=4: English word pieces "
                             "need a longer history than characters)")
    parser.add_argument("--min-count", nargs="+", default=["2"], metavar="N | LOCALE=N",
                        help="prune n-grams of the highest order seen fewer than N times (default 2: singletons), "
                             "for all locales and/or per locale: what lets a Mandarin 4-gram fit the checkpoint")
    parser.add_argument("--lexicon", nargs="*", default=[], metavar="LOCALE",
                        help="locales written with spaces whose words become a lexicon (model.decoding.lexicon), "
                             "e.g. en-US")
    parser.add_argument("--word-list", nargs="*", default=[], metavar="LOCALE=PATH",
                        help="a spelling dictionary (one word per line) whose words join that locale's lexicon, e.g. "
                             "en-US=/usr/share/dict/american-english (Debian wamerican)")
    args = parser.parse_args(argv)
    word_lists = [tuple(item.split("=", 1)) for item in args.word_list]
    if any(len(pair) != 2 or pair[0] not in args.lexicon for pair in word_lists):
        parser.error("--word-list takes LOCALE=PATH for a locale also named in --lexicon")
    orders, min_counts = parse_per_locale(args.order, 3), parse_per_locale(args.min_count, 2)
    loaded = load_checkpoint(args.checkpoint)
    if max(orders.values()) > max_order(loaded.tokenizer.vocab_size) or min(orders.values()) < 1:
        parser.error(f"--order must be within 1..{max_order(loaded.tokenizer.vocab_size)} for this checkpoint's "
                     f"{loaded.tokenizer.vocab_size} tokens")
    held_out = {(u.locale, u.text) for path in args.exclude for u in read_manifest(path)}
    payloads, report = {}, {}
    for locale in loaded.tokenizer.locales:
        texts = [t for t in load_sentences(locale) if (locale, t) not in held_out]
        sentences = [loaded.tokenizer.encode(t) for t in texts]
        order = orders.get(locale, orders[None])
        min_count = min_counts.get(locale, min_counts[None])
        lm = train_ngram(sentences, loaded.tokenizer.vocab_size, order, min_count=min_count)
        # Sorted: a set's order changes between runs, and so would the perplexity of its first 300 sentences.
        check = [loaded.tokenizer.encode(t) for (loc, t) in sorted(held_out) if loc == locale][:300]
        report[locale] = {"sentences": len(texts), "tokens": sum(map(len, sentences)), "order": order, "min_count": min_count,
                          "entries": len(lm.alpha) + len(lm.gamma),
                          "held_out_perplexity": round(perplexity(lm, check), 1) if check else None}
        payloads[locale] = lm.to_payload()
        if locale in args.lexicon:  # words as the tokenizer normalises them, so they match decoded pieces
            lexicon = Lexicon.from_sentences(loaded.tokenizer.decode(ids) for ids in sentences)
            added, tokenizer = {}, loaded.tokenizer
            for path in (path for loc, path in word_lists if loc == locale):
                with open(path, encoding="utf-8", errors="replace") as f:
                    # Only words the tokenizer spells (the search could never write the others), as its pieces
                    # decode, like the text's words.
                    entries = {tokenizer.decode(tokenizer.encode(w)) for w in word_list_entries(f, locale)
                               if tokenizer.can_spell(w)}
                added[Path(path).name] = len(entries - lexicon.words)
                lexicon = lexicon.with_words(entries)
            payloads[locale]["lexicon"] = lexicon.to_payload()
            report[locale]["lexicon_words"] = len(lexicon.words)
            if added:
                report[locale]["lexicon_word_lists"] = added  # words each list added beyond the text (and lists before it)
        print(locale, report[locale], flush=True)
    loaded.metadata["language_models"] = report
    loaded.language_models = payloads
    update_checkpoint(args.checkpoint, loaded)


if __name__ == "__main__":
    main()
