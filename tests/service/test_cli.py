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
