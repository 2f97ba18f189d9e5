"""A deployment's own words, served: `openasr lm adapt` writes an adapted checkpoint (run as a user would), and
ASR_DOMAIN_TEXT adapts another locale as the real server starts; /v1/models states both, and held-out sentences of the
domain (bench/domain/, synthesised here) decode better than with the model as built."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import ROOT, encode, start_server
from model.accuracy.scoring import ErrorCount, count_errors
from model.corpus.synthesize import VoiceSpec, synthesize
from model.decoding.adaptation import MIN_LINES, WEIGHTS
from model.decoding.kneser_ney import perplexity
from model.decoding.lm import InterpolatedLM, NgramLM, language_model
from model.network.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.text.normalize import normalize_text

DOMAIN = ROOT / "bench" / "domain"
VOICES = {"yue-HK": VoiceSpec("yue", "m1", 200), "en-US": VoiceSpec("en-us", "m1", 170)}  # held-out voices


def openasr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def held_out_sentences(locale: str) -> list[str]:
    return [line for line in (DOMAIN / f"{locale}_test.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("adapted") / "calls.pt"
    return out, openasr("lm", "adapt", "--locale", "yue", "--text", str(DOMAIN / "yue-HK.txt"), "--out", str(out))


@pytest.fixture(scope="module")
def adapted_server(adapted, tmp_path_factory):
    """The adapted checkpoint (yue-HK), with en-US adapted as it starts."""
    server = start_server(
        tmp_path_factory.mktemp("adapted_server"),
        env={"ASR_CHECKPOINT": str(adapted[0]), "ASR_DOMAIN_TEXT": json.dumps({"en": str(DOMAIN / "en-US.txt")})},
    )
    yield server
    server.stop()


def test_lm_adapt_writes_the_domain_into_that_locale_only(adapted):
    out, result = adapted
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["adapted"]["yue-HK"]
    assert report["text"] == "yue-HK.txt" and report["lines"] == 100 and report["held_out_lines"] == 10
    assert report["weight"] in WEIGHTS
    assert report["held_out_perplexity"]["adapted"] < report["held_out_perplexity"]["general"] / 2
    loaded, built = load_checkpoint(out), load_checkpoint(DEFAULT_CHECKPOINT)
    assert loaded.metadata["language_model_adaptation"] == {"yue-HK": report}
    assert (loaded.name, loaded.version) == (built.name, built.version)
    assert all("domain" not in loaded.language_models[locale] for locale in ("zh-CN", "en-US"))
    # the LM served scores the domain's held-out sentences far higher than the one built
    served, general = (
        language_model(loaded.language_models["yue-HK"]),
        NgramLM.from_payload(built.language_models["yue-HK"]),
    )
    sentences = [loaded.tokenizer.encode(normalize_text(s, "yue-HK")) for s in held_out_sentences("yue-HK")]
    assert isinstance(served, InterpolatedLM) and perplexity(served, sentences) < perplexity(general, sentences) / 4


def test_lm_adapt_refuses_what_it_cannot_do(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("唔該晒\n" * 3, encoding="utf-8")
    cases = {
        ("--locale", "yue", "--locale", "en", "--text", str(short)): "one --locale for each --text",
        ("--locale", "yue", "--text", str(short), "--out", str(DEFAULT_CHECKPOINT)): "other than the bundled model",
        ("--locale", "yue", "--text", str(short)): f"at least {MIN_LINES}",
        ("--locale", "fr", "--text", str(short)): "unsupported locale 'fr'",
        ("--locale", "yue", "--text", str(tmp_path / "absent.txt")): "cannot read the domain text",
    }
    for args, message in cases.items():
        out = () if "--out" in args else ("--out", str(tmp_path / "out.pt"))
        result = openasr("lm", "adapt", *args, *out)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "out.pt").exists()


def test_models_state_each_locale_s_adaptation(adapted_server):
    decoding = httpx.get(f"{adapted_server.url}/v1/models", timeout=30).json()["data"][0]["decoding"]
    yue, en = (decoding[locale]["lm_fusion"]["domain_adaptation"] for locale in ("yue-HK", "en-US"))
    assert yue["text"] == "yue-HK.txt" and yue["lines"] == 100 and yue["weight"] in WEIGHTS  # from the checkpoint
    assert en["text"] == "en-US.txt" and en["lines"] == 100 and en["weight"] in WEIGHTS  # from ASR_DOMAIN_TEXT
    assert en["lexicon_words_added"] >= 0 and len(en["sha256"]) == 64
    assert decoding["zh-CN"]["lm_fusion"]["domain_adaptation"] is None


@pytest.mark.parametrize("locale", ["yue-HK", "en-US"])
def test_held_out_domain_sentences_decode_better_adapted(adapted_server, live_server, locale):
    uploads = [(s, encode(synthesize(s, VOICES[locale]), "WAV")) for s in held_out_sentences(locale)]
    errors = {}
    for name, server in (("built", live_server), ("adapted", adapted_server)):
        with httpx.Client(base_url=server.url, timeout=120) as client:
            texts = [
                client.post("/transcribe", files={"file": ("a.wav", wav)}, data={"locale": locale}).json()["text"]
                for _, wav in uploads
            ]
        errors[name] = sum(
            (count_errors(normalize_text(s, locale), t, locale) for (s, _), t in zip(uploads, texts)), ErrorCount(0, 0)
        )
    assert errors["adapted"].errors < errors["built"].errors, errors


def test_a_domain_text_the_server_cannot_read_stops_it_with_the_reason(tmp_path):
    with pytest.raises(RuntimeError, match="cannot read the domain text"):
        start_server(tmp_path, env={"ASR_DOMAIN_TEXT": json.dumps({"yue": str(tmp_path / "absent.txt")})})
