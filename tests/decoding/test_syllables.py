"""The auxiliary tonal-syllable CTC (model.decoding.syllables, SpeechRecognizer.syllable_head): its targets, its table,
the grown head that leaves recognition unchanged, and a loss that trains it."""

import pytest
import torch

from model.decoding.syllables import SYLLABLE_UNKNOWN, SyllableEncoder, build_syllable_table, tonal_syllables
from model.network.model import with_syllable_head
from model.training.train import syllable_ctc


def test_tonal_syllables_are_pinyin_or_jyutping_with_tones_without_punctuation_and_none_for_english():
    assert tonal_syllables("你好，世界。", "zh-CN") == ["zh-CN ni3", "zh-CN hao3", "zh-CN shi4", "zh-CN jie4"]
    assert tonal_syllables("你好", "yue-HK") == ["yue-HK nei5", "yue-HK hou2"]
    assert tonal_syllables("hello world", "en-US") is None


def test_the_table_keeps_blank_and_unknown_first_then_each_syllable_once_per_locale():
    table = build_syllable_table({"zh-CN": ["妈", "马", "妈"], "yue-HK": ["媽"], "en-US": ["mama"]})
    assert table[:2] == ("<blank>", "<unk>")
    assert table[2:] == ("yue-HK maa1", "zh-CN ma1", "zh-CN ma3")
    encode = SyllableEncoder(table)
    assert encode("马", "zh-CN") == [table.index("zh-CN ma3")]
    assert encode("骂", "zh-CN") == [SYLLABLE_UNKNOWN]  # ma4 was not in the training texts
    assert encode("mama", "en-US") is None


def test_a_grown_syllable_head_leaves_every_recognition_output_unchanged(tiny_model):
    table = build_syllable_table({"zh-CN": ["今天天气很好"]})
    grown = with_syllable_head(tiny_model, table, layer=2).eval()
    features, lengths = torch.randn(2, 90, 82), torch.tensor([90, 61])
    inputs, input_lengths = torch.tensor([[1, 5, 6], [1, 7, 0]]), torch.tensor([3, 2])
    with torch.no_grad():
        before = tiny_model(features, lengths, None, None, inputs, input_lengths)
        after = grown(features, lengths, None, None, inputs, input_lengths)
    for old, new in zip(before[:4], after[:4]):
        assert torch.equal(old, new)
    assert before[4] is None and after[4].shape == (2, after[0].shape[1], len(table))
    assert grown.config.syllables == table and grown.config.syllable_layer == 2
    with pytest.raises(ValueError, match="syllable_layer"):
        with_syllable_head(tiny_model, table, layer=tiny_model.config.encoder.n_layers + 1)


def test_the_syllable_loss_reads_only_the_tonal_rows_and_trains_the_head(tiny_model):
    table = build_syllable_table({"zh-CN": ["今天天气很好"], "yue-HK": ["你好嗎"]})
    model = with_syllable_head(tiny_model, table, layer=2).train()
    encode = SyllableEncoder(table)
    syllables = [encode("今天天气很好", "zh-CN"), encode("hello", "en-US"), encode("你好嗎", "yue-HK")]
    torch.manual_seed(1)
    features, lengths = torch.randn(3, 120, 82), torch.tensor([120, 120, 100])
    inputs, input_lengths = torch.ones(3, 1, dtype=torch.long), torch.ones(3, dtype=torch.long)

    def loss() -> torch.Tensor:
        outputs = model(features, lengths, None, None, inputs, input_lengths)
        return syllable_ctc(outputs[4], outputs[1], syllables)

    with torch.no_grad():
        outputs = model(features, lengths, None, None, inputs, input_lengths)
        english_row_changed = outputs[4].clone()
        english_row_changed[1] = 0.0  # the English row's posteriors do not enter the loss
        changed = syllable_ctc(english_row_changed, outputs[1], syllables)
        assert changed == syllable_ctc(outputs[4], outputs[1], syllables)
        no_targets = syllable_ctc(outputs[4], outputs[1], [None, None, None])
        assert no_targets.item() == 0.0
    optimizer = torch.optim.Adam(model.syllable_head.parameters(), lr=1e-2)
    first = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.5 * first


def test_english_phonemes_join_the_table_only_when_asked_and_give_english_rows_targets():
    texts = {"zh-CN": ["妈"], "en-US": ["good night", "the knight"]}
    assert build_syllable_table(texts) == ("<blank>", "<unk>", "zh-CN ma1")  # the tonal-only table is unchanged
    table = build_syllable_table(texts, english_phonemes=True)
    assert {"en-US n", "en-US aI", "en-US t", "zh-CN ma1"} <= set(table) and table[:2] == ("<blank>", "<unk>")
    encode = SyllableEncoder(table)
    encode.prime(texts["en-US"])
    night = [table.index(f"en-US {p}") for p in ("n", "aI", "t")]
    assert encode("night", "en-US") == encode("knight", "en-US") == night  # homophones: one target
    assert encode("nite", "en-US") == night  # a word first met in training is pronounced then
    assert encode("妈", "zh-CN") == [table.index("zh-CN ma1")]


def test_a_head_grown_with_english_phonemes_keeps_what_it_learned_of_the_syllables(tiny_model):
    chinese = build_syllable_table({"zh-CN": ["今天天气很好"], "yue-HK": ["你好嗎"]})
    model = with_syllable_head(tiny_model, chinese, layer=2).eval()
    with torch.no_grad():
        for parameter in model.syllable_head.parameters():
            parameter.normal_()  # as if trained
    both = build_syllable_table({"zh-CN": ["今天天气很好"], "yue-HK": ["你好嗎"], "en-US": ["good night"]},
                                english_phonemes=True)
    grown = with_syllable_head(model, both, layer=2).eval()
    features, lengths = torch.randn(1, 90, 82), torch.tensor([90])
    inputs, input_lengths = torch.ones(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long)
    with torch.no_grad():
        old_tap = model.encoder.forward_with_tap(model.normalize(features), lengths, None, None, 2)[2]
        new_tap = grown.encoder.forward_with_tap(grown.normalize(features), lengths, None, None, 2)[2]
        old_logits, new_logits = model.syllable_head(old_tap), grown.syllable_head(new_tap)
        before = model(features, lengths, None, None, inputs, input_lengths)
        after = grown(features, lengths, None, None, inputs, input_lengths)
    kept = [both.index(entry) for entry in chinese]
    assert torch.allclose(new_logits[..., kept], old_logits, atol=1e-5)  # every syllable's output as before
    new = [i for i, entry in enumerate(both) if entry.startswith("en-US ")]
    assert new and torch.count_nonzero(grown.syllable_head[1].weight[new]) == 0
    for old, new_output in zip(before[:4], after[:4]):
        assert torch.equal(old, new_output)  # recognition unchanged
