"""Prometheus metrics per locale, live accuracy from feedback, and bounded label cardinality; scraped by a real
Prometheus server (Debian's package) that the test starts on 127.0.0.1."""

import asyncio
import json
import random
import shutil
import string
import subprocess
import sys
import time

import httpx
import pytest

from helpers import ROOT, free_port, pcm16, read_mono16k, scrape, stream_audio


def upload(live_server, sample, **params) -> dict:
    response = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", sample["path"].read_bytes())},
                          data={"locale": sample["locale"], **params}, timeout=60)
    response.raise_for_status()
    return response.json()


def test_metrics_expose_request_and_server_series(live_server, bundled_samples):
    upload(live_server, bundled_samples[0])
    samples = scrape(live_server)
    names = {key.split("{")[0] for key in samples}
    for expected in ("asr_request_duration_seconds_bucket", "asr_audio_seconds_total", "asr_real_time_factor_bucket",
                     "asr_active_streams", "asr_queue_wait_seconds_bucket", "asr_batch_size_bucket",
                     "asr_device_step_seconds_bucket", "process_resident_memory_bytes", "asr_model_info",
                     "asr_token_confidence_mean_bucket", "asr_segments_finalized_total"):
        assert expected in names, expected
    assert samples['asr_audio_seconds_total{locale="zh-CN",mode="rest"}'] >= bundled_samples[0]["duration"] - 0.01


def test_auto_streams_are_counted_under_the_locale_they_were_decoded_as(live_server, bundled_samples):
    """The WebSocket default is `auto`: once the stream settles on a locale, its series carry that locale, not
    "unknown", so per-locale latency and accuracy dashboards see these streams too."""
    sample = next(s for s in bundled_samples if s["locale"] == "yue-HK")
    key = 'asr_audio_seconds_total{locale="yue-HK",mode="stream"}'
    finals_key = 'asr_final_latency_seconds_count{cause="stop",locale="yue-HK"}'
    before = scrape(live_server)
    asyncio.run(stream_audio(live_server.ws_url, pcm16(read_mono16k(sample["path"])), {"locale": "auto"}))
    deadline = time.monotonic() + 10  # the stream's totals are recorded as its connection is released, after the close
    while (after := scrape(live_server)).get(key, 0.0) == before.get(key, 0.0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after[key] - before.get(key, 0.0) == pytest.approx(sample["duration"], abs=0.05)
    assert after[finals_key] - before.get(finals_key, 0.0) == 1


def test_feedback_scores_the_returned_hypothesis(live_server, bundled_samples):
    sample = bundled_samples[6]
    body = upload(live_server, sample)
    scored = httpx.post(f"{live_server.url}/v1/feedback",
                        json={"request_id": body["request_id"], "reference": sample["text"]}).json()
    assert scored["locale"] == "en-US" and scored["metric"] == "wer" and scored["hypothesis"] == body["raw_text"]
    assert scored["reference_units"] == len(sample["text"].split())
    unknown = httpx.post(f"{live_server.url}/v1/feedback", json={"request_id": "nope", "reference": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_id"
    fairness = httpx.get(f"{live_server.url}/v1/fairness").json()
    assert fairness["live"]["all_time"]["en-US"]["reference_units"] >= scored["reference_units"]
    low, high = fairness["live"]["window_ci95"]["per_locale"]["en-US"]
    assert low <= fairness["live"]["window"]["en-US"]["error_rate"] <= high


def test_the_live_window_interval_is_wide_on_a_few_sentences_and_narrows_with_feedback():
    """What an operator reads next to a live rate: 10 sentences (zh-CN at 12%) leave an interval over ten points wide,
    1,000 leave a few; one locale alone has no disparity interval."""
    from model.accuracy.scoring import ErrorCount
    from service.fairness import window_intervals

    widths = []
    for sentences in (10, 1000):
        items = [("zh-CN", ErrorCount(2 * (i % 2 == 0) + (i % 5 == 0), 10)) for i in range(sentences)]
        items += [("en-US", ErrorCount(1 + (i % 3 == 0), 8)) for i in range(sentences)]
        result = window_intervals(items)
        low, high = result["per_locale"]["zh-CN"]
        widths.append(high - low)
        assert low <= 0.12 <= high and result["disparity"][0] <= (4 / 3 / 8) / 0.12 <= result["disparity"][1]
    assert widths[0] > 0.1 and widths[1] < 0.03
    assert window_intervals([("zh-CN", ErrorCount(1, 10))])["disparity"] is None
    assert window_intervals([]) == {"per_locale": {}, "disparity": None}


def test_random_locale_strings_never_create_series(live_server, bundled_samples):
    data = bundled_samples[0]["path"].read_bytes()
    httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", data)}, data={"locale": "xx"})
    before = set(scrape(live_server))
    rng = random.Random(0)
    for _ in range(40):
        locale = "".join(rng.choices(string.ascii_letters + "-_", k=rng.randint(1, 12)))
        httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", data)}, data={"locale": locale})
    after = set(scrape(live_server))
    assert after == before


def test_live_eval_command_matches_metrics(live_server, tmp_path):
    before = scrape(live_server)
    result = subprocess.run([sys.executable, "-m", "service.live_eval", "--server", live_server.url, "--json",
                             "--manifest", str(ROOT / "model" / "samples" / "samples.jsonl")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    printed = json.loads(result.stdout)
    after = scrape(live_server)
    for locale, counts in printed.items():
        key = f'{{locale="{locale}"}}'
        for series, counted in (("asr_feedback_errors_total", "errors"),
                                ("asr_feedback_reference_units_total", "reference_units")):
            assert after[f"{series}{key}"] - before[f"{series}{key}"] == counts[counted]


@pytest.fixture(scope="module")
def prometheus(live_server, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is installed by `make test` (Makefile SYSTEM_PACKAGES)"
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: asr\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{live_server.port}']\n")
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=open(folder / "log.txt", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/-/ready").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(30)


def query(prometheus_url: str, expression: str) -> dict[str, float]:
    result = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expression}).json()["data"]["result"]
    return {item["metric"].get("locale", ""): float(item["value"][1]) for item in result}


def wait_for_scrape(prometheus_url: str, expression: str, expected: dict[str, float], timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        found = query(prometheus_url, expression)
        if all(found.get(k) == pytest.approx(v) for k, v in expected.items()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_real_prometheus_scrapes_per_locale_series(live_server, prometheus, bundled_samples):
    start = scrape(live_server)
    zh, en = bundled_samples[1], bundled_samples[7]
    expected_errors = {"zh-CN": start['asr_feedback_errors_total{locale="zh-CN"}'],
                       "en-US": start['asr_feedback_errors_total{locale="en-US"}']}
    for sample in (zh, en):  # one upload and one stream per locale, each with feedback
        body = upload(live_server, sample)
        scored = httpx.post(f"{live_server.url}/v1/feedback",
                            json={"request_id": body["request_id"], "reference": sample["text"]}).json()
        expected_errors[sample["locale"]] += scored["errors"]
        messages = asyncio.run(stream_audio(live_server.ws_url, pcm16(read_mono16k(sample["path"])),
                                            {"locale": sample["locale"]}))
        session = messages[0]["session_id"]
        for final in (m for m in messages if m["type"] == "final"):
            scored = httpx.post(f"{live_server.url}/v1/feedback",
                                json={"session_id": session, "segment": final["segment"],
                                                                      "reference": sample["text"]}).json()
            expected_errors[sample["locale"]] += scored["errors"]
    found = wait_for_scrape(prometheus, "asr_feedback_errors_total", expected_errors)
    assert found["zh-CN"] == pytest.approx(expected_errors["zh-CN"])
    assert found["en-US"] == pytest.approx(expected_errors["en-US"])
    streamed = query(prometheus, 'asr_audio_seconds_total{mode="stream"}')
    assert streamed.get("zh-CN", 0) > 0 and streamed.get("en-US", 0) > 0
    first_partials = query(prometheus, 'sum by (locale) (asr_stream_first_partial_latency_seconds_count)')
    assert first_partials.keys() >= {"zh-CN", "en-US"}


def test_alert_rules_and_config_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool
    for command in (["check", "rules", "deploy/prometheus/alerts.yml"],
                    ["check", "config", "deploy/prometheus/prometheus.yml"]):
        result = subprocess.run([promtool, *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
