"""The model card's parts written from a checkpoint's metadata (model/evaluation/model_card.py). The card of the
bundled model as a whole: tests/network/test_checkpoint.py."""

from model.evaluation.model_card import (CANTONESE_ESPEAK_ONLY, CANTONESE_KOKORO, auto_lines, backbone_limitations,
                                          companion_words, lineage_table, voices_words)


def test_the_lineage_is_one_table_each_release_continued_from_the_one_before():
    meta = {"earlier_training_data": [
        {"model": "m 0.1.0", "utterances": 1000, "speakers": 80, "hours_per_locale": {"en-US": 1.04, "zh-CN": 2.0}},
        {"model": "m 0.2.0", "utterances": 3000, "speakers": 90,
         "hours_per_locale": {"en-US": 3.0, "zh-CN": 2.5, "yue-HK": 1.5}}],
        "training_data": {"utterances": 4000, "speakers": 120, "hours_per_locale": {"en-US": 4.0, "zh-CN": 3.0,
                                                                                    "yue-HK": 2.0}}}
    lines = lineage_table(meta, "m 0.3.0")
    table = [line for line in lines if line.startswith("|")]
    assert table == [
        "| release | continued from | utterances | voices | en-US (h) | zh-CN (h) | yue-HK (h) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| m 0.1.0 | not recorded | 1000 | 80 | 1.0 | 2.0 | n/a |",
        "| m 0.2.0 | m 0.1.0 | 3000 | 90 | 3.0 | 2.5 | 1.5 |",
        "| m 0.3.0 (this model) | m 0.2.0 | 4000 | 120 | 4.0 | 3.0 | 2.0 |",
    ]
    assert not any(line.startswith("Continued from") for line in lines)
    assert lines[-1] == ""  # a blank line before what follows


def test_a_model_continued_from_nothing_has_no_lineage():
    assert lineage_table({"training_data": {"utterances": 10}}, "m 0.1.0") == []


def test_a_backbone_models_card_names_the_voices_each_locale_was_trained_on():
    training = {"hours_per_condition": {"en-US/piper-en": 1.2, "en-US/synth": 1.0, "yue-HK/kokoro-yue": 0.8,
                                        "yue-HK/synth": 0.5, "zh-CN/kokoro-zh": 2.7, "zh-CN/kokoro-zh-capture": 2.7}}
    assert voices_words(training) == (
        "Mandarin by Kokoro-82M's blended voices; Cantonese by Kokoro-82M's blended voices and espeak-ng; English by "
        "Piper's voice joe and espeak-ng; the natural voices also a second time as a real recording would have them "
        "(room, microphone, noise, gain, clipping, codec: model.corpus.augment.capture)")
    assert CANTONESE_KOKORO in backbone_limitations(training)
    espeak_cantonese = {"hours_per_condition": {"yue-HK/synth": 0.5}}
    assert CANTONESE_ESPEAK_ONLY in backbone_limitations(espeak_cantonese)


def test_a_model_with_a_companion_encoder_says_whose_encoder_it_is_and_what_it_reads(tiny_backbone_model, tiny_model):
    from model.network.checkpoint import LoadedModel
    from model.network.model import with_companion_encoder, with_expert_gate

    fused = with_companion_encoder(tiny_backbone_model, tiny_model)
    meta = {"companion": {"name": "openasr-synth-small", "version": "0.14.0"}}
    (line,) = companion_words(LoadedModel(fused, None, "fused", "0.0.1", meta))  # type: ignore[arg-type]
    assert line.startswith("- Beside the backbone, openasr-synth-small 0.14.0's encoder as a frozen companion stream")
    assert "3 layers, d=64" in line and "(htk) and the pitch features" in line
    assert companion_words(LoadedModel(tiny_backbone_model, None, "plain", "0.0.1", {})) == []  # type: ignore[arg-type]
    assert "gate" not in line
    gated = with_expert_gate(fused, tiny_model)
    meta["expert_gate"] = {"companion_voices": ["synth", "synth2"]}
    (line,) = companion_words(LoadedModel(gated, None, "gated", "0.0.1", meta))  # type: ignore[arg-type]
    assert "frames that sound like synth, synth2 to the companion's head and all others to the main head" in line


def test_real_speech_says_what_auto_made_of_it_where_measured():
    """The real-speech section carries locale detection and streams with `auto`: the head that learned locales from
    synthesisers is weakest on real people, and an operator choosing `auto` should see how weak."""
    real = {"locale_detection_accuracy": {"yue-HK": 0.6667}, "streamed_auto": {
        "chunk_ms": 640, "per_locale": {"yue-HK": {"error_rate": 0.824}}, "final_locale_accuracy": {"yue-HK": 0.1818}}}
    assert auto_lines(real) == ["With `locale=auto`, the locale detected correctly: yue-HK 66.7%; streamed in 640 ms "
                                "chunks: yue-HK 82.4%, its finals decoded as the right locale: yue-HK 18.2%.", ""]
    assert auto_lines({"modes": {}}) == []
