"""model.evaluation.heldout_gap renders cells of {training, dev} sentences x {training, held-out, random} voices with
the same sentences in every voice set, and scores the bundled model on each."""

import json

from model.evaluation.heldout_gap import plan_cells, measure, table


def write_corpus(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    for split, texts in rows.items():
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for i, text in enumerate(texts):
                handle.write(json.dumps({"id": f"{split}-{i}", "audio": f"wav/{split}-{i}.wav", "text": text,
                                         "locale": "yue-HK", "speaker": "x", "duration": 1.0},
                                         ensure_ascii=False) + "\n")


def test_cells_share_their_sentences_across_voice_sets_and_voices_stay_apart(tmp_path):
    from model.corpus.build import split_variants
    from model.corpus.random_voices import HELD_OUT_START, is_random_variant

    write_corpus(tmp_path,
                 {"train": ["我哋今日去咗街市", "你食咗飯未呀", "佢聽日返工"], "dev": ["而家幾點呀", "唔該晒"]})
    cells = plan_cells(tmp_path, 2, ("yue-HK",))
    _, heldout = split_variants(0, 0.1)
    by_cell: dict = {}
    for (locale, sentences, voices), job in cells:
        by_cell.setdefault((sentences, voices), []).append(job)
    assert len(by_cell) == 6 and all(len(jobs) == 2 for jobs in by_cell.values())
    for sentences in ("train", "dev"):
        texts = {voices: [j.text for j in by_cell[(sentences, voices)]] for voices in ("train", "heldout", "random")}
        assert texts["train"] == texts["heldout"] == texts["random"]
    assert all(j.voice.variant not in heldout and not is_random_variant(j.voice.variant)
               for j in by_cell[("dev", "train")])
    assert all(j.voice.variant in heldout for j in by_cell[("dev", "heldout")])
    assert all(is_random_variant(j.voice.variant) and int(j.voice.variant[3:]) >= HELD_OUT_START
               for j in by_cell[("train", "random")])  # random voices no training plan uses
    assert plan_cells(tmp_path, 2, ("yue-HK",)) == cells  # deterministic: the next model hears the same cells


def test_the_bundled_model_is_scored_on_every_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDOM_VOICES_DIR", str(tmp_path / "voices"))
    write_corpus(tmp_path / "corpus", {"train": ["我哋今日去咗街市", "你食咗飯未呀"], "dev": ["而家幾點呀"]})
    results = measure("model/checkpoints/default.pt", tmp_path / "corpus", tmp_path / "render", 1, ("yue-HK",), jobs=1)
    assert len(results["cells"]) == 6
    assert all(0.0 <= rates["greedy"] <= 1.5 and 0.0 <= rates["served"] <= 1.5 for rates in results["cells"].values())
    assert "| yue-HK dev sentences, random voices |" in table(results)


def test_a_corpus_plan_gives_the_cells_of_its_rendered_manifests(tmp_path):
    """A plan (model.corpus.build --plan-only) holds the manifests' rows before rendering: the same cells, without
    rendering the corpus's hours to learn its sentences."""
    from model.corpus.build import make_job, write_plan

    texts = {"train": ["我哋今日去咗街市", "你食咗飯未呀", "佢聽日返工"], "dev": ["而家幾點呀", "唔該晒"]}
    write_corpus(tmp_path / "corpus", texts)
    jobs = [make_job("yue-HK", split, i, text, ["yue"], (0, i)) for split, rows in texts.items()
            for i, text in enumerate(rows)]
    write_plan(tmp_path / "plan.jsonl.gz", jobs[::-1])  # a plan is shuffled; ids give the manifests' order
    assert plan_cells(tmp_path / "plan.jsonl.gz", 2, ("yue-HK",)) == plan_cells(tmp_path / "corpus", 2, ("yue-HK",))
