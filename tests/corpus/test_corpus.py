"""Tests for model.corpus (fast: synthesis is a handful of espeak calls)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.corpus import augment as aug
from model.corpus.build import BuildConfig, build, split_variants
from model.corpus.importers import import_commonvoice, import_kaldi, main as importers_main
from model.corpus.manifest import Utterance, read_manifest, write_manifest
from model.corpus.readable import filter_readable
from model.corpus.synthesize import SAMPLE_RATE, VoiceSpec, parse_wav_bytes, synthesize
from model.text.normalize import is_clean_sentence, normalize_text


@pytest.mark.parametrize("text, locale, expected", [
    ("你好，世界！", "zh-CN", "你好世界"),
    ("我 用 iPhone 手机。", "zh-CN", "我用iphone手机"),
    ("ＡＢＣ１２３ Hello World，再见", "zh-CN", "abc123 hello world再见"),
    ("佢哋今日唔得閒呀。", "yue-HK", "佢哋今日唔得閒呀"),
    ("中文 ,  text", "zh-TW", "中文text"),
    ("Hello, World!  It's   café-time.", "en-US", "hello world it's cafe time"),
    ("'Quoted' words — and \u2019tis", "en-US", "quoted words and tis"),
])
def test_normalize_text(text, locale, expected):
    assert normalize_text(text, locale) == expected


@pytest.mark.parametrize("text, locale, ok", [
    ("迈向充满希望的新世纪", "zh-CN", True),
    ("你好，世界", "zh-CN", True),
    ("你好", "zh-CN", False),  # too short
    ("一九九八年是１９９８", "zh-CN", False),  # digits
    ("我用iPhone手机打电话", "zh-CN", False),  # Latin
    ("好" * 21, "yue-HK", False),
    ("Hello there, friend.", "en-US", True),
    ("Hi", "en-US", False),
    ("Call 911 now please", "en-US", False),
    ("x = y + z; done", "en-US", False),
])
def test_is_clean_sentence(text, locale, ok):
    assert is_clean_sentence(text, locale) is ok


def test_manifest_roundtrip(tmp_path):
    utts = [Utterance("a", "wav/a.wav", "你好", "zh-CN", "s1", 1.5, "clean"),
            Utterance("b", "/abs/b.wav", "hi there", "en-US", "s2", 2.0, "noise")]
    path = tmp_path / "m.jsonl"
    write_manifest(path, utts)
    assert "你好" in path.read_text(encoding="utf-8")  # ensure_ascii=False
    back = read_manifest(path)
    assert back[0].audio == str(tmp_path / "wav/a.wav")
    assert back[1].audio == "/abs/b.wav" and back[1].condition == "noise"


@pytest.mark.parametrize("text, voice, units_per_s", [
    ("迈向充满希望的新世纪", VoiceSpec("cmn-latn-pinyin", "m3", speed=230), (3.0, 8.0)),
    ("你老公有冇平機票啊", VoiceSpec("yue", "f2", speed=230), (3.0, 8.0)),
    ("the sun must repair your eyes", VoiceSpec("en-us", "klatt2", speed=175), (1.5, 5.0)),
])
def test_synthesize(text, voice, units_per_s):
    audio = synthesize(text, voice, np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.size / SAMPLE_RATE
    units = len(text.split()) if " " in text else len(text)
    assert units_per_s[0] <= units / seconds <= units_per_s[1]
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    # 50-150 ms padding kept at both ends.
    assert np.max(np.abs(audio[:800])) == 0.0 and np.max(np.abs(audio[-800:])) == 0.0


@pytest.mark.parametrize("language", ["en-gb", "en-us", "en-gb-x-rp", "yue"])
def test_every_variant_is_spoken_by_its_own_voice(language):
    """espeak-ng resolves "en-gb" (its file is gmw/en) by language and then drops "+variant": its held-out variants
    once spoke as the plain voice that training used. Two variants of each language must sound different."""
    text = "我哋今日去咗街市" if language == "yue" else "the sun must repair your eyes"
    first, second = (synthesize(text, VoiceSpec(language, variant, speed=175)) for variant in ("f5", "m1"))
    assert first.shape != second.shape or not np.array_equal(first, second)


def test_the_en_gb_fix_renames_only_the_jobs_it_renders_anew():
    """A job's id hashes its plan, so a build skips finished WAVs; the jobs whose audio the fix changed (en-gb) get
    new ids and are rendered again, and every other job keeps its id and its audio."""
    from model.corpus.build import make_job

    jobs = {}
    for seed in range(40):
        job = make_job("en-US", "test", seed, "the sun must repair your eyes", ["f5", "m1"], (0, seed))
        jobs.setdefault(job.voice.language == "en-gb", []).append(job)
    assert jobs[True] and jobs[False]
    legacy = lambda job: hashlib.sha1(repr((job.text, job.voice, job.condition, job.seed)).encode()).hexdigest()[:8]  # noqa: E731
    assert all(job.id.endswith(legacy(job)) for job in jobs[False])
    assert not any(job.id.endswith(legacy(job)) for job in jobs[True])


def test_the_library_reports_where_each_word_starts_in_the_same_speech():
    """bench_timestamps' ground truth: libespeak-ng's word events, one per English word and one per Hanzi, in order,
    inside the audio, each word ending where the next begins; the audio is what the command line speaks for that voice
    (up to its trailing pause)."""
    from model.corpus.synthesize import _espeak_raw, to_16k
    from model.corpus.word_times import synthesize_with_word_times

    for text, voice in (("the sun must repair your eyes", VoiceSpec("en-gb", "f5", speed=175)),
                        ("迈向充满希望的新世纪", VoiceSpec("cmn-latn-pinyin", "m3", speed=230))):
        audio, words = synthesize_with_word_times(text, voice, lead_s=0.3, tail_s=0.3)
        assert [w.text for w in words] == (text.split() if " " in text else list(text))
        starts = [w.start_s for w in words]
        speech_end_s = len(audio) / SAMPLE_RATE - 0.3
        assert starts[0] == pytest.approx(0.3, abs=0.02) and starts == sorted(starts) and starts[-1] < speech_end_s
        assert [w.end_s for w in words[:-1]] == starts[1:] and starts[-1] < words[-1].end_s <= speech_end_s
        spoken = audio[int(0.3 * SAMPLE_RATE) : len(audio) - int(0.3 * SAMPLE_RATE)]
        command_line = to_16k(*_espeak_raw(text, voice))[: len(spoken)]
        # Not sample for sample: the engine's noise source (aspiration, fricatives) runs on across calls in a process.
        envelope = lambda x: np.sqrt((x[: len(x) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1))  # noqa: E731
        assert len(command_line) == len(spoken) and np.corrcoef(envelope(spoken), envelope(command_line))[0, 1] > 0.95


def test_parse_wav_bytes_rejects_garbage():
    with pytest.raises(ValueError):
        parse_wav_bytes(b"not a wav at all" * 4)


def _tone(n=16000):
    t = np.arange(n) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("condition", [*sorted(aug.CONDITION_WEIGHTS), "capture"])
def test_augment_shape_dtype_determinism(condition):
    x = _tone()
    a = aug.augment(x, condition, np.random.default_rng(5))
    b = aug.augment(x, condition, np.random.default_rng(5))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert np.max(np.abs(a)) <= 1.0
    if condition == "speed":
        assert min(abs(a.size - x.size / f) for f in (0.9, 1.1)) <= 1
    else:
        assert a.size == x.size


def test_augment_effects():
    x = _tone()
    rng = np.random.default_rng(0)
    noisy = aug.add_noise(x, 10.0, rng, "pink")
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean((noisy - x) ** 2))
    assert 9.0 < snr < 11.0
    tel = aug.telephone(x)
    assert np.sqrt(np.mean(tel ** 2)) > 0.05  # 440 Hz is inside the phone band
    low = aug.telephone((0.3 * np.sin(2 * np.pi * 100 * np.arange(16000) / 16000)).astype(np.float32))
    assert np.sqrt(np.mean(low ** 2)) < 0.05  # 100 Hz is cut
    quiet = aug.apply_gain(x, -20.0)
    assert np.isclose(np.max(np.abs(quiet)), 0.03, rtol=0.01)
    assert np.max(np.abs(aug.apply_gain(x, 12.0))) <= 0.98
    assert abs(aug.speed_perturb(x, 1.1).size - x.size / 1.1) <= 1
    with pytest.raises(ValueError):
        aug.augment(x, "underwater", rng)


def band_energy(audio: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    hz = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    return float(spectrum[(hz >= low_hz) & (hz < high_hz)].sum())


def test_real_capture_colours_clips_and_compresses_as_a_recording_would():
    noise = (0.1 * np.random.default_rng(1).standard_normal(32000)).astype(np.float32)
    rng = np.random.default_rng(0)
    coloured = aug.microphone(noise, rng)  # band limits: below 50 Hz and above 7.8 kHz are always cut
    assert np.isclose(np.sqrt(np.mean(coloured ** 2)), np.sqrt(np.mean(noise ** 2)), rtol=0.02)
    assert band_energy(coloured, 7900, 8000) < 0.05 * band_energy(noise, 7900, 8000)
    assert band_energy(coloured, 0, 40) < 0.1 * band_energy(noise, 0, 40)
    clipped = aug.hard_clip(_tone(), 12.0)
    assert np.max(np.abs(clipped)) <= 0.98 and np.mean(np.abs(clipped) >= 0.98) > 0.5
    for codec in ("opus", "mp3"):
        for level in (0.5, 0.95):
            decoded = aug.lossy_codec(noise, codec, level)
            assert decoded.size == noise.size and not np.array_equal(decoded, noise)
            assert 0.3 < np.sqrt(np.mean(decoded ** 2)) / np.sqrt(np.mean(noise ** 2)) < 1.5
    speech_band = aug.lossy_codec(_tone(), "opus", 0.5)  # a tone survives a codec
    assert np.corrcoef(speech_band[2000:-2000], _tone()[2000:-2000])[0, 1] > 0.9


def test_condition_weights():
    rng = np.random.default_rng(0)
    picks = [aug.choose_condition(rng) for _ in range(4000)]
    assert 0.36 < picks.count("clean") / 4000 < 0.44


def test_readable_filter(tmp_path):
    cache = tmp_path / "rc.json"
    kept, bad = filter_readable(["我哋去飲茶", "鿏鿏好好"], "yue", cache)
    assert kept == ["我哋去飲茶"] and bad == ["鿏"]
    assert json.loads(cache.read_text(encoding="utf-8"))["我"] is True


def test_split_variants_disjoint_and_deterministic():
    train, held = split_variants(0, 0.1)
    assert held and not set(train) & set(held)
    assert split_variants(0, 0.1) == (train, held)


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    cfg = BuildConfig(out=out, hours_per_locale=0.005, jobs=2, seed=0,
                      dev_sentences=3, test_sentences=4, max_sentences=40)
    return out, build(cfg)


def test_build_splits(tiny_build):
    out, stats = tiny_build
    splits = {s: read_manifest(out / f"{s}.jsonl") for s in ("train", "dev", "test")}
    for locale in ("zh-CN", "yue-HK", "en-US"):
        per = {s: [u for u in us if u.locale == locale] for s, us in splits.items()}
        assert len(per["dev"]) == 3 and len(per["test"]) == 4 and per["train"]
        texts = {s: {u.text for u in us} for s, us in per.items()}
        assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
        assert not texts["dev"] & texts["test"]
        assert sum(u.duration for u in per["train"]) > 0.5 * 0.005 * 3600
    train_spk = {u.speaker for u in splits["train"]}
    assert not train_spk & {u.speaker for u in splits["dev"] + splits["test"]}
    for u in [u for us in splits.values() for u in us]:
        info = sf.info(u.audio)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.frames / 16000 - u.duration) < 1e-3
        assert normalize_text(u.text, u.locale) == u.text
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["n_errors"] == 0
    assert stats["by_locale"]["dev"]["zh-CN"]["utterances"] == 3


def test_build_is_resumable(tiny_build):
    out, _ = tiny_build
    first = (out / "train.jsonl").read_text(encoding="utf-8")
    wav = out / read_manifest(out / "train.jsonl")[0].audio
    mtime = wav.stat().st_mtime_ns
    build(BuildConfig(out=out, hours_per_locale=0.005, jobs=1, seed=0,
                      dev_sentences=3, test_sentences=4, max_sentences=40))
    assert (out / "train.jsonl").read_text(encoding="utf-8") == first
    assert wav.stat().st_mtime_ns == mtime  # skipped, not re-synthesised


def _write_wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(seconds * 16000), np.float32), 16000, subtype="PCM_16")


def test_import_kaldi(tmp_path):
    d = tmp_path / "kaldi"
    _write_wav(d / "a.wav", 1.0)
    _write_wav(tmp_path / "b.wav", 0.5)
    (d / "wav.scp").write_text(f"u1 a.wav\nu2 {tmp_path / 'b.wav'}\n", encoding="utf-8")
    (d / "text").write_text("u1 你 好 世界\nu2 Hello, World!\n", encoding="utf-8")
    (d / "utt2spk").write_text("u1 spk1\nu2 spk2\n", encoding="utf-8")
    (d / "utt2locale").write_text("u2 en-US\n", encoding="utf-8")
    utts = import_kaldi(d, "zh-CN")
    assert utts == [
        Utterance("u1", str((d / "a.wav").resolve()), "你好世界", "zh-CN", "spk1", 1.0, "clean"),
        Utterance("u2", str(tmp_path / "b.wav"), "hello world", "en-US", "spk2", 0.5, "clean"),
    ]
    (d / "wav.scp").write_text("u1 sox a.wav -t wav - |\n", encoding="utf-8")
    with pytest.raises(ValueError, match="pipe"):
        import_kaldi(d)


def test_import_commonvoice(tmp_path):
    d = tmp_path / "cv"
    _write_wav(d / "clips" / "c1.wav", 0.75)
    _write_wav(d / "clips" / "c2.wav", 0.25)
    (d / "validated.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tlocale\n"
        "abc\tc1.wav\t佢哋去咗邊度？\t2\tzh-HK\n"
        "def\tc2.wav\t\"Quoted\" English.\t2\ten\n", encoding="utf-8")
    utts = import_commonvoice(d, probe_durations=True)
    assert [(u.id, u.text, u.locale, u.speaker, u.duration) for u in utts] == [
        ("c1", "佢哋去咗邊度", "yue-HK", "abc", 0.75), ("c2", "quoted english", "en-US", "def", 0.25)]
    assert all(Path(u.audio).is_absolute() and Path(u.audio).is_file() for u in utts)
    (d / "clip_durations.tsv").write_text("clip\tduration[ms]\nc1.wav\t750\n", encoding="utf-8")
    lazy = import_commonvoice(d)
    assert [u.duration for u in lazy] == [0.75, 0.0]  # unknown left at 0.0
    importers_main(["commonvoice", str(d), "--out", str(tmp_path / "cv.jsonl")])
    assert len(read_manifest(tmp_path / "cv.jsonl")) == 2


def test_plan_export_matches_build_and_renders_the_same_audio(tiny_build, tmp_path):
    """--plan-only writes exactly the jobs build() renders (ids carry the plan's hash), and the online renderer
    makes the same audio: its MFCC equals the MFCC of the builder's WAV up to the WAV's 16-bit rounding."""
    import torch

    from model.corpus.build import export_plan, read_plan
    from model.frontend.features import FeatureExtractor, num_frames
    from model.training.online_corpus import render_features

    out, _ = tiny_build
    cfg = BuildConfig(out=out, hours_per_locale=0.005, jobs=1, seed=0, dev_sentences=3, test_sentences=4,
                      max_sentences=40)
    plan_path = tmp_path / "plan.jsonl.gz"
    assert export_plan(cfg, plan_path, ("train", "dev", "test")) == sum(
        len(read_manifest(out / f"{s}.jsonl")) for s in ("train", "dev", "test"))
    jobs = read_plan(plan_path)
    built = {u.id: u for s in ("train", "dev", "test") for u in read_manifest(out / f"{s}.jsonl")}
    assert {j.id for j in jobs} == set(built)
    for job in jobs[:3]:
        row, features = render_features(job)
        utt = built[job.id]
        assert (row["text"], row["locale"], row["speaker"], row["condition"]) == (
            utt.text, utt.locale, utt.speaker, utt.condition)
        assert abs(row["duration"] - utt.duration) < 1e-3
        audio, _ = sf.read(utt.audio, dtype="float32")
        expected = FeatureExtractor()(torch.from_numpy(audio)).numpy()
        assert features.shape == expected.shape == (num_frames(audio.size), expected.shape[1])
        speech = np.abs(expected[:, 0] - expected[:, 0].min()) > 5  # frames above the silent padding
        assert np.allclose(features[speech], expected[speech], atol=1.0)
        assert np.abs(features[speech] - expected[speech]).mean() < 0.1


def test_more_hours_grow_the_corpus_without_moving_its_held_out_split(tmp_path):
    """`make corpus` with more hours and the same seed keeps every job it had (audio and features are reused) and
    the same dev/test utterances, and adds train jobs only: no dev/test sentence or held-out voice leaks in."""
    from model.corpus.build import plan

    tmp_path.mkdir(exist_ok=True)  # plan() caches espeak-ng's readable characters there
    small, _ = plan(BuildConfig(out=tmp_path, hours_per_locale=0.01, seed=0, dev_sentences=3, test_sentences=4,
                                max_sentences=60))
    large, info = plan(BuildConfig(out=tmp_path, hours_per_locale=0.03, seed=0, dev_sentences=3,
                                   test_sentences=4, max_sentences=60))
    by_id = {job.id: job for job in large}
    assert all(job.id in by_id and by_id[job.id] == job for job in small)
    held = [j for j in large if j.split != "train"]
    assert sorted(j.id for j in held) == sorted(j.id for j in small if j.split != "train")
    train = [j for j in large if j.split == "train"]
    assert len(train) > len([j for j in small if j.split == "train"])
    assert not {(j.locale, j.text) for j in train} & {(j.locale, j.text) for j in held}
    assert not {j.voice.variant for j in train} & set(info["heldout_variants"])


def test_a_new_train_seed_renders_fresh_training_speech_with_the_same_held_out_split(tmp_path):
    """`--train-seed` re-plans only the training jobs (another order, voices, speeds and conditions), so a model
    that has seen one corpus many times can continue on new speech while dev/test stay the ones it was measured on;
    no held-out voice or sentence leaks into the new training plan."""
    from model.corpus.build import plan

    tmp_path.mkdir(exist_ok=True)
    common = dict(out=tmp_path, hours_per_locale=0.02, seed=0, dev_sentences=3, test_sentences=4, max_sentences=60)
    first, _ = plan(BuildConfig(**common))
    fresh, info = plan(BuildConfig(**common, train_seed=1))
    assert plan(BuildConfig(**common, train_seed=0))[0] == first  # train_seed = seed is the default plan
    held = sorted((j for j in fresh if j.split != "train"), key=lambda j: j.id)
    assert held == sorted((j for j in first if j.split != "train"), key=lambda j: j.id)
    old_train = {j.id for j in first if j.split == "train"}
    new_train = [j for j in fresh if j.split == "train"]
    assert new_train and not old_train & {j.id for j in new_train}
    assert not {(j.locale, j.text) for j in new_train} & {(j.locale, j.text) for j in held}
    assert not {j.voice.variant for j in new_train} & set(info["heldout_variants"])


def test_random_voices_are_new_speakers_for_training_only(tmp_path):
    """`--random-voices N` adds N random espeak-ng variants to the training voices, at `--random-voice-share` of
    the training jobs; dev/test keep their held-out shipped variants; without it the plan is the one before."""
    from model.corpus.build import plan
    from model.corpus.random_voices import HELD_OUT_START, is_random_variant

    tmp_path.mkdir(exist_ok=True)
    common = dict(out=tmp_path, hours_per_locale=0.03, seed=0, dev_sentences=3, test_sentences=4, max_sentences=60)
    before, _ = plan(BuildConfig(**common))
    assert plan(BuildConfig(**common, random_voices=0, random_voice_share=0.9))[0] == before
    mixed, info = plan(BuildConfig(**common, random_voices=50, random_voice_share=0.5))
    held = sorted((j for j in mixed if j.split != "train"), key=lambda j: j.id)
    assert held == sorted((j for j in before if j.split != "train"), key=lambda j: j.id)
    train = [j for j in mixed if j.split == "train"]
    share = np.mean([is_random_variant(j.voice.variant) for j in train])
    assert 0.3 < share < 0.7
    assert not {j.voice.variant for j in train} & set(info["heldout_variants"])
    assert all(is_random_variant(j.voice.variant) for j in plan(BuildConfig(**common, random_voices=50,
                                                                             random_voice_share=1.0))[0]
               if j.split == "train")
    with pytest.raises(ValueError, match="held out"):  # rnd90000 and up stay unheard (model.evaluation.heldout_gap)
        BuildConfig(**common, random_voices=HELD_OUT_START + 1)


def test_a_random_variant_is_a_fixed_voice_that_speaks(tmp_path, monkeypatch):
    """A random variant's file is a function of its name alone (every machine rendering a plan makes the same
    voice); espeak-ng speaks with it (from a folder of its own: espeak-ng lists at most 350 voice files), and two
    random variants sound different."""
    from model.corpus import random_voices

    monkeypatch.setenv("RANDOM_VOICES_DIR", str(tmp_path))
    assert random_voices.variant_text("rnd00007") == random_voices.variant_text("rnd00007")
    assert random_voices.variant_text("rnd00007") != random_voices.variant_text("rnd00008")
    assert random_voices.random_variant_names(2, start=7) == ["rnd00007", "rnd00008"]
    assert not random_voices.is_random_variant("m3") and not random_voices.is_random_variant(None)
    text = "我哋今日去咗街市"
    first, second = (synthesize(text, VoiceSpec("yue", name, speed=230)) for name in ("rnd00007", "rnd00008"))
    for audio in (first, second):
        assert 3.0 <= len(text) / (audio.size / SAMPLE_RATE) <= 8.0 and np.sqrt(np.mean(audio ** 2)) > 0.01
    assert first.shape != second.shape or not np.array_equal(first, second)
    assert (tmp_path / "rnd00007" / "voices" / "!v" / "rnd00007").read_text() == random_voices.variant_text("rnd00007")
