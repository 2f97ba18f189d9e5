"""The `openasr` command, run as a user would (`python -m service.cli` in a subprocess), against the live server
and in-process."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from helpers import ROOT
from service.protocol import TranscriptionResponse

CHUNK_MS = 640
SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)$")
FINAL_LINE = re.compile(r"^\[(\d+\.\d\d)-(\d+\.\d\d)\] (.+)$")


def openasr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True,
                            timeout=timeout, check=False)
    # Decoded here: text=True would turn the '\r' that redraws partials into newlines.
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def api_response(live_server, sample, **fields) -> dict:
    with open(sample["path"], "rb") as handle:
        response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", handle)},
                              data={"locale": sample["locale"], **fields}, timeout=120)
    return response.json()


def srt_seconds(groups: tuple[str, ...]) -> float:
    hours, minutes, seconds, millis = (int(g) for g in groups)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


@pytest.mark.parametrize("command", ["", "serve", "transcribe", "stream", "train", "evaluate", "bench"])
def test_help_shows_examples(command):
    result = openasr(*([command] if command else []), "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout and f"openasr {command}".strip() in result.stdout


def test_transcribe_text_and_srt_against_the_server(live_server, bundled_samples):
    sample = bundled_samples[2]
    expected = api_response(live_server, sample)
    text = openasr("transcribe", "--server", live_server.url, "--locale", sample["locale"], str(sample["path"]))
    assert text.returncode == 0, text.stderr
    assert text.stdout == expected["text"] + "\n"

    srt = openasr("transcribe", "--server", live_server.url, "--locale", sample["locale"], "--format", "srt",
                  str(sample["path"]))
    assert srt.returncode == 0, srt.stderr
    blocks = [b.split("\n") for b in srt.stdout.strip().split("\n\n")]
    assert len(blocks) == len(expected["segments"]) >= 1
    for number, (block, segment) in enumerate(zip(blocks, expected["segments"]), start=1):
        times = SRT_TIME.match(block[1])
        assert block[0] == str(number) and times and block[2] == segment["text"]
        assert srt_seconds(times.groups()[:4]) == pytest.approx(segment["start"], abs=0.001)
        assert srt_seconds(times.groups()[4:]) == pytest.approx(segment["end"], abs=0.001)


def test_transcribe_many_files_as_json_lines_with_a_progress_bar(live_server, bundled_samples):
    chosen = [s for s in bundled_samples if s["locale"] == "yue-HK"][:2]
    result = openasr("transcribe", "--server", live_server.url, "--locale", "yue-HK", "--format", "json",
                     *(str(s["path"]) for s in chosen))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(s["path"]) for s in chosen]
    assert [line["text"] for line in lines] == [api_response(live_server, s)["text"] for s in chosen]
    assert "2/2" in result.stderr  # tqdm's bar, on stderr so stdout stays parseable


def test_transcribe_in_process_decodes_like_the_server(live_server, bundled_samples):
    sample = bundled_samples[7]
    result = openasr("transcribe", "--in-process", "--threads", "1", "--locale", sample["locale"], "--format", "json",
                     "--nbest", "2", str(sample["path"]))
    assert result.returncode == 0, result.stderr
    response = TranscriptionResponse.model_validate_json(result.stdout)
    assert response.locale == sample["locale"]
    assert response.duration_s == pytest.approx(sample["duration"], abs=0.01)
    assert all(1 <= len(s.alternatives) <= 2 for s in response.segments)
    served = api_response(live_server, sample, nbest="2")  # same checkpoint, same decoder: same words
    assert response.text == served["text"]
    assert [(s.start, s.end) for s in response.segments] == [(s["start"], s["end"]) for s in served["segments"]]


def test_stream_prints_partials_in_place_and_finals_on_lines(live_server, bundled_samples):
    sample = bundled_samples[5]
    result = openasr("stream", "--server", live_server.url, "--locale", sample["locale"], "--partials",
                     str(sample["path"]))
    assert result.returncode == 0, result.stderr
    finals = [FINAL_LINE.match(line.split("\r")[-1]) for line in result.stdout.split("\n") if line.strip()]
    assert finals and all(finals)
    assert "".join(f.group(3) for f in finals) == api_response(live_server, sample, chunk_ms=str(CHUNK_MS))["text"]
    assert "\r" in result.stdout  # partials were drawn over each other
    assert "segment(s)" in result.stderr


def test_stream_full_context_finals_print_the_upload_transcript(live_server, bundled_samples):
    sample = bundled_samples[7]  # English: finals join with spaces
    result = openasr("stream", "--server", live_server.url, "--locale", sample["locale"], "--no-partials",
                     "--full-context-finals", str(sample["path"]))
    assert result.returncode == 0, result.stderr
    finals = [FINAL_LINE.match(line) for line in result.stdout.split("\n") if line.strip()]
    assert finals and all(finals)
    assert " ".join(f.group(3) for f in finals) == api_response(live_server, sample)["text"]


def test_stream_reports_server_errors(live_server, bundled_samples):
    result = openasr("stream", "--server", live_server.url, "--locale", "xx-YY", str(bundled_samples[0]["path"]))
    assert result.returncode == 1
    assert "unsupported_locale" in result.stderr and "1003" in result.stderr


@pytest.mark.parametrize("args,delegate_says", [
    (["train"], "the following arguments are required: --config"),
    (["evaluate", "--split", "test"], "the following arguments are required: --manifest"),
    (["bench", "encoder", "--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_train_evaluate_and_bench_pass_their_arguments_through(args, delegate_says):
    result = openasr(*args, timeout=120)
    assert result.returncode == 2 and delegate_says in result.stderr  # the delegate's own parser answered


def test_unknown_options_of_other_commands_are_refused():
    result = openasr("transcribe", "--no-such-option", "a.wav", timeout=60)
    assert result.returncode == 2 and "unrecognized arguments: --no-such-option" in result.stderr


def test_transcribe_a_call_by_channel_masked_and_written(live_server, tmp_path):
    """A stereo call: each party on its own line under its name, the phone number masked, as the API does."""
    import numpy as np
    import soundfile as sf

    from helpers import read_mono16k
    from model.corpus.synthesize import VoiceSpec, synthesize

    agent = synthesize("我的电话号码是一三八零零一三八零零零", VoiceSpec("cmn-latn-pinyin", None))
    customer = read_mono16k(ROOT / "model" / "samples" / "en-US_1.wav")
    audio = np.zeros((max(len(agent), len(customer)) + 8000, 2), dtype=np.float32)
    audio[: len(agent), 0], audio[: len(customer), 1] = agent, customer
    path = tmp_path / "call.wav"
    sf.write(path, audio, 16000)
    args = ("--server", live_server.url, "--channels", "separate", "--channel-names", "agent,customer",
            "--redact", "pii", "--text-format", "written")
    result = openasr("transcribe", *args, str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["agent", "customer"]
    assert "13800138000" not in result.stdout and "一三八" not in lines[0]
    with open(path, "rb") as handle:
        served = httpx.post(f"{live_server.url}/transcribe", files={"file": ("call.wav", handle)}, timeout=120,
                            data={"channels": "separate", "channel_names": "agent,customer", "redact": "pii",
                                  "format": "written"}).json()
    assert lines == [f"{c['name']}: {c['text']}" for c in served["channels"]]
    assert served["redactions"]


def test_in_process_refuses_a_call_by_channel_with_a_reason(tmp_path):
    result = openasr("transcribe", "--in-process", "--channels", "separate", str(ROOT / "model/samples/en-US_1.wav"))
    assert result.returncode == 2 and "needs a server" in result.stderr
