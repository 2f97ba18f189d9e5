"""model.evaluation.nbest_oracle: the best hypothesis of each final's n-best beside the one served."""

import json
from pathlib import Path

from model.accuracy.scoring import count_errors
from model.evaluation.nbest_oracle import measure, oracle_counts, table


def test_the_oracle_is_the_alternative_with_fewest_errors():
    served, oracle = oracle_counts("我们今天去", "我们今天去了", ["我们今天去了", "我们今天去", "我门今天"], "zh-CN")
    assert (served.errors, oracle.errors, oracle.reference_units) == (1, 0, 5)
    served, oracle = oracle_counts("a cat sat", "a cat sat", [], "en-US")  # no alternatives: the served text
    assert served == oracle == count_errors("a cat sat", "a cat sat", "en-US")


def test_the_bundled_model_serves_no_better_than_its_oracle(tmp_path):
    """On the bundled samples, per locale: the served rate is what `transcribe` returns with default options (asking
    for the whole n-best does not change the search), and the oracle is never above it."""
    from model.corpus.manifest import read_manifest
    from model.frontend.audio import load_audio_file
    from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from model.recognition.recognizer import DecodeOptions, Recognizer

    samples = Path("model/samples")
    rows = [json.loads(line) for line in (samples / "samples.jsonl").read_text().splitlines()]
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text("".join(json.dumps({**row, "id": f"sample-{i}",
                                            "audio": str((samples / row["audio"]).resolve())},
                                           ensure_ascii=False) + "\n" for i, row in enumerate(rows)), encoding="utf-8")
    results = measure(DEFAULT_CHECKPOINT, str(manifest), None)
    recognizer = Recognizer(load_checkpoint(DEFAULT_CHECKPOINT))
    for locale, row in results["per_locale"].items():
        rows = [u for u in read_manifest(manifest) if u.locale == locale]
        served = sum(count_errors(u.text,
                                  recognizer.transcribe(load_audio_file(u.audio), DecodeOptions(locale=locale)).text,
                                  locale).errors for u in rows)
        assert row["served_errors"] == served and row["utterances"] == len(rows)
        assert row["oracle_errors"] <= row["served_errors"] and row["beam"] >= 8
    assert "| zh-CN |" in table(results)
