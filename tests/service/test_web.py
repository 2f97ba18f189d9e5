"""The web page at `/` in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against the
live server: a fake microphone plays a bundled sample, and the page must show what the server says."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from websockets.sync.client import connect

from helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT_DIR = ROOT / "tests" / "output"
LEAD_S, TAIL_S = 0.5, 1.5  # silence around the sample in the fake microphone file
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

# Records every frame the page sends on a WebSocket, so the test can replay exactly that audio to the server.
RECORD_SENT_FRAMES = """
window.__sentAudio = [];
window.__sentBytes = 0;
window.__sentText = [];
const originalSend = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  if (typeof data === "string") window.__sentText.push(JSON.parse(data));
  if (data instanceof ArrayBuffer) {
    window.__sentAudio.push(new Uint8Array(data.slice(0)));
    window.__sentBytes += data.byteLength;
  }
  return originalSend.call(this, data);
};
"""
SENT_AUDIO_BASE64 = """() => {
  const all = new Uint8Array(window.__sentBytes);
  let offset = 0;
  for (const piece of window.__sentAudio) { all.set(piece, offset); offset += piece.length; }
  let binary = "";
  for (let i = 0; i < all.length; i += 0x8000) binary += String.fromCharCode(...all.subarray(i, i + 0x8000));
  return btoa(binary);
}"""
# Every state the status line and message banner pass through, since some last only a moment.
RECORD_HISTORY = """
window.__history = [];
new MutationObserver(() => {
  const status = document.getElementById("status"), message = document.getElementById("message");
  if (!status || !message) return;
  const entry = {
    state: status.dataset.state, status: status.textContent, message: message.hidden ? "" : message.textContent,
  };
  const last = window.__history[window.__history.length - 1];
  if (!last || JSON.stringify(last) !== JSON.stringify(entry)) window.__history.push(entry);
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium: `make system-deps` installs it")
    with sync_api.sync_playwright() as p:
        yield p


def launch(playwright, fake_audio: Path):
    # %noloop: Chromium plays the file once instead of looping it (the trailing silence covers the rest).
    args = CHROMIUM_ARGS + [f"--use-file-for-fake-audio-capture={fake_audio}%noloop"]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)


def fake_microphone_file(sample_path: Path, directory: Path) -> tuple[Path, np.ndarray]:
    """The sample with silence before (the capture starts before the page listens) and after (so the server
    sees an endpoint and Stop is pressed before the file ends)."""
    audio, rate = soundfile.read(sample_path, dtype="float32")
    padded = np.concatenate([np.zeros(int(rate * LEAD_S), np.float32), audio, np.zeros(int(rate * TAIL_S), np.float32)])
    path = directory / f"mic-{sample_path.stem}.wav"
    soundfile.write(path, padded, rate, subtype="PCM_16")
    return path, audio


def save_screenshot(page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    OUTPUT_DIR.mkdir(exist_ok=True)
    shutil.copy(shot, OUTPUT_DIR / name)


def replay(ws_url: str, pcm: bytes, locale: str, piece_bytes: int = 3200,
           full_context_finals: bool = False) -> list[str]:
    """Stream `pcm` ourselves, as the page did (16 kHz s16le, 100 ms frames); return the non-empty finals' texts.
    (Blocking client: Playwright's sync API already runs an event loop in this thread.)"""
    texts = []
    with connect(ws_url, max_size=None) as ws:
        ws.send(json.dumps({"type": "start", "locale": locale, "sample_rate": 16000, "encoding": "pcm_s16le",
                            "full_context_finals": full_context_finals}))
        assert json.loads(ws.recv())["type"] == "ready"
        for offset in range(0, len(pcm), piece_bytes):
            ws.send(pcm[offset : offset + piece_bytes])
        ws.send(json.dumps({"type": "stop"}))
        for message in ws:
            event = json.loads(message)
            if event["type"] == "final" and event["text"]:
                texts.append(event["text"])
    return texts


def aligned_correlation(sent: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation of `reference` with the stretch of `sent` where it matches best."""
    size = 1 << int(np.ceil(np.log2(len(sent) + len(reference))))
    cross = np.fft.irfft(np.fft.rfft(sent, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(cross[: len(sent)]))
    window = sent[lag : lag + len(reference)]
    if len(window) < len(reference):
        return 0.0
    return float(np.corrcoef(window, reference)[0, 1])


def piece_correlations(sent: np.ndarray, reference: np.ndarray, piece_s: float = 0.5) -> list[float]:
    """`aligned_correlation` of each voiced half second of `reference`, each aligned on its own: a fake capture
    device starved of CPU can drop or repeat a few milliseconds, which shifts everything after it, so one global
    alignment would blame the resampling for the capture's timing."""
    size = int(piece_s * 16000)
    pieces = [reference[i : i + size] for i in range(0, len(reference) - size + 1, size)]
    return [aligned_correlation(sent, p) for p in pieces if np.sqrt(np.mean(p**2)) > 0.01]


def open_page(browser, live_server, locale: str, query: str = ""):
    page = browser.new_page()
    page.add_init_script(RECORD_SENT_FRAMES)
    page.add_init_script(RECORD_HISTORY)
    page.goto(f"{live_server.url}/{query}")
    page.wait_for_selector(f'#locale option[value="{locale}"]', state="attached")
    page.select_option("#locale", locale)
    return page


def test_the_page_starts_in_the_browsers_language_where_the_model_has_it(playwright, live_server):
    """Named, the locale reads real speakers far better than detected; the page offers the browser's own (Cantonese
    for the Chinese of Hong Kong), `auto` where the model has no such locale, and keeps a choice the user made."""
    with launch(playwright, Path("/dev/null")) as browser:
        for browser_locale, chosen in (("zh-CN", "zh-CN"), ("zh-TW", "zh-CN"), ("zh-HK", "yue-HK"),
                                       ("en-GB", "en-US"), ("fr-FR", "auto")):
            page = browser.new_page(locale=browser_locale)
            page.goto(live_server.url)
            page.wait_for_selector('#locale option[value="en-US"]', state="attached")
            assert page.locator("#locale").input_value() == chosen, browser_locale
            page.close()
        page = browser.new_page(locale="zh-CN")
        page.goto(live_server.url)
        page.wait_for_selector('#locale option[value="en-US"]', state="attached")
        page.select_option("#locale", "auto")
        page.fill("#api-key", "k-any")
        with page.expect_response("**/v1/models"):
            page.dispatch_event("#api-key", "change")  # the languages load again
        page.wait_for_timeout(200)  # the page reads the answer and fills the list
        assert page.locator("#locale").input_value() == "auto"


def spoken_wav(path: Path, text: str, voice: str) -> Path:
    """`text` spoken by espeak-ng, as a 16 kHz WAV file."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    soundfile.write(path, synthesize(text, VoiceSpec(voice)), 16000, subtype="PCM_16")
    return path


def record_uploads(page) -> list[bytes]:
    """The body of every POST /transcribe the page sends from now on (each still goes to the server)."""
    uploads: list[bytes] = []

    def record(route):
        uploads.append(route.request.post_data_buffer)
        route.continue_()

    page.route("**/transcribe", record)
    return uploads


def record_from_microphone(page, seconds_of_audio: float) -> None:
    page.click("#mic-start")
    page.wait_for_function(f"window.__sentBytes >= {int(seconds_of_audio * 32000)}", timeout=60_000)
    page.click("#mic-stop")
    page.wait_for_function("document.getElementById('status').dataset.state === 'idle'", timeout=60_000)


def test_the_page_and_its_modules_are_served(live_server):
    page = httpx.get(f"{live_server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache" and 'src="/static/app.js"' in page.text
    for name in ("app.js", "accuracy.js", "live.js", "upload.js", "ui.js", "audio-worklet.js"):
        script = httpx.get(f"{live_server.url}/static/{name}")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]  # modules need a JS type
    assert httpx.get(f"{live_server.url}/static/style.css").headers["cache-control"] == "no-cache"


def test_page_says_how_well_the_model_hears_real_speech(playwright, live_server):
    """The page shows the model card's error on real speech and on the synthetic test, per locale, and says in words
    when real speech is mostly wrong."""
    model = httpx.get(f"{live_server.url}/v1/models").json()["data"][0]
    real = model["real_speech_evaluation"]["modes"]["full_context"]["per_locale"]
    synthetic = model["evaluation"]["modes"]["full_context"]["per_locale"]
    with launch(playwright, Path("/dev/null")) as browser:
        page = browser.new_page()
        page.goto(live_server.url)
        page.wait_for_selector("#accuracy:not([hidden])", timeout=30_000)
        shown = {row.get_attribute("data-locale"): (row.inner_text().split("\t"))
                 for row in page.query_selector_all("#accuracy-rows tr")}
        summary = page.inner_text("#accuracy-summary")
        usable = page.get_attribute("#accuracy", "data-usable")
    assert set(shown) == set(real) | set(synthetic)
    for locale, cells in shown.items():  # one decimal, as JavaScript rounds it
        assert abs(float(cells[1].rstrip("%")) - 100 * real[locale]["error_rate"]) <= 0.05 + 1e-9
        assert abs(float(cells[2].rstrip("%")) - 100 * synthetic[locale]["error_rate"]) <= 0.05 + 1e-9
    mostly_wrong = [locale for locale, cell in real.items() if cell["error_rate"] > 0.5]
    assert usable == ("no" if mostly_wrong else "yes")
    assert ("most" in summary and "real people" in summary) == bool(mostly_wrong)


@pytest.mark.parametrize("resampling", ["browser", "worklet"])
def test_live_microphone_shows_the_servers_transcript(playwright, live_server, bundled_samples, tmp_path, resampling):
    """(The worklet run also ticks "Full-context finals": the page asks for them, and shows what they say.)"""
    sample = bundled_samples[1]
    mic_file, speech = fake_microphone_file(sample["path"], tmp_path)
    full_context_finals = resampling == "worklet"
    browser = launch(playwright, mic_file)
    try:
        page = open_page(browser, live_server, sample["locale"], "?resample=worklet" if resampling == "worklet" else "")
        assert not page.is_checked("#full-context-finals")  # the server's default (ASR_FULL_CONTEXT_FINALS) is off
        if full_context_finals:
            page.check("#full-context-finals")
        # Stop once the speech and most of the trailing silence went out: before the file ends, after the endpoint.
        record_from_microphone(page, LEAD_S + len(speech) / 16000 + TAIL_S - 0.3)
        shown = page.eval_on_selector_all(".segment.final .seg-text", "rows => rows.map(r => r.textContent)")
        assert page.locator(".segment.partial").count() == 0  # every partial was replaced by its final
        meta = page.locator(".segment.final .seg-meta").first.text_content()
        save_screenshot(page, tmp_path, f"web-live-{resampling}.png")
        sent = base64.b64decode(page.evaluate(SENT_AUDIO_BASE64))
        [start] = [m for m in page.evaluate("window.__sentText") if m["type"] == "start"]
    finally:
        browser.close()

    assert start["full_context_finals"] is full_context_finals
    assert shown and all(shown), "the page shows at least one non-empty final"
    assert sample["locale"] in meta and " ms" in meta  # detected locale and latency are shown
    # The browser resamples the fake capture (file rate -> device rate -> AudioContext rate -> 16 kHz), so
    # its audio is close to the file but not bit-equal, and a model's transcript of it
    # may differ from the file's. Exact check: the page shows exactly what the server returns for the very
    # audio the page sent. Signal check: that audio is the sample, faithfully resampled.
    assert shown == replay(live_server.ws_url, sent, sample["locale"], full_context_finals=full_context_finals)
    sent_audio = np.frombuffer(sent, dtype="<i2").astype(np.float32) / 32768
    pieces = piece_correlations(sent_audio, speech)  # whole-file alignment measured 0.986 (browser), 0.999 (worklet)
    assert len(pieces) >= 3 and np.median(pieces) > 0.95 and np.mean(np.array(pieces) > 0.95) >= 0.75, pieces


def shown_tokens(text: str, tokens: list[dict]) -> int:
    """How many tokens the page finds in order in a segment's text (renderTokens in service/static/ui.js)."""
    cursor, found = 0, 0
    for token in tokens:
        at = text.find(token["text"], cursor) if token["text"] else -1
        if at >= 0:
            found, cursor = found + 1, at + len(token["text"])
    return found


def test_uploaded_file_shows_the_transcribe_result(playwright, live_server, bundled_samples, tmp_path):
    sample = bundled_samples[6]
    browser = launch(playwright, fake_microphone_file(sample["path"], tmp_path)[0])
    try:
        page = open_page(browser, live_server, sample["locale"])
        page.set_input_files("#file", str(sample["path"]))
        page.click("#upload-button")
        page.wait_for_selector('#upload-result[data-state="done"]', timeout=60_000)
        shown = page.locator("#upload-text").text_content()
        shown_segments = page.eval_on_selector_all("#upload-segments .seg-text", "rows => rows.map(r => r.textContent)")
        token_titles = page.eval_on_selector_all("#upload-segments .token", "tokens => tokens.map(t => t.title)")
        save_screenshot(page, tmp_path, "web-upload.png")
    finally:
        browser.close()

    with open(sample["path"], "rb") as handle:
        body = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", handle)},
                          data={"locale": sample["locale"]}, timeout=60).json()
    assert shown == body["text"] and shown
    assert shown_segments == [s["text"] for s in body["segments"]]
    # a token is shaded where its text is shown: a number written as digits (四十 -> 40) shows its tokens unshaded
    assert len(token_titles) == sum(shown_tokens(s["text"], s["tokens"]) for s in body["segments"])
    assert all(" s · confidence " in title for title in token_titles)


def test_refused_microphone_and_busy_upload_are_explained(playwright, live_server, bundled_samples, tmp_path):
    sample = bundled_samples[6]
    browser = launch(playwright, fake_microphone_file(sample["path"], tmp_path)[0])
    try:
        page = browser.new_page()
        page.add_init_script("navigator.mediaDevices.getUserMedia = () => "
                             "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));")
        busy_answers = []

        def busy_twice(route):
            if len(busy_answers) < 2:
                busy_answers.append(1)
                route.fulfill(status=503, headers={"Retry-After": "0"}, content_type="application/json",
                              body='{"error": "busy", "message": "offline queue is full"}')
            else:
                route.continue_()

        page.route("**/transcribe", busy_twice)
        page.goto(live_server.url)
        page.click("#mic-start")
        page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
        assert "refused" in page.locator("#message").text_content()
        assert page.locator("#mic-start").is_enabled()

        page.add_init_script(RECORD_HISTORY)
        page.reload()
        page.set_input_files("#file", str(sample["path"]))
        page.click("#upload-button")
        page.wait_for_selector('#upload-result[data-state="done"]', timeout=60_000)
        messages = [h["message"] for h in page.evaluate("window.__history")]
    finally:
        browser.close()
    assert len(busy_answers) == 2
    assert any("server is busy" in m.lower() for m in messages)


def test_busy_and_dropped_streams_reconnect_with_visible_status(playwright, live_server, bundled_samples, tmp_path):
    sample = bundled_samples[6]
    mic_file, speech = fake_microphone_file(sample["path"], tmp_path)
    connections = []

    def flaky_server(ws):
        """1st connection: busy (close 1013). 2nd: drops. 3rd: the real server."""
        connections.append(ws)
        if len(connections) == 1:
            ws.on_message(lambda _: (ws.send('{"type": "error", "code": "busy", "message": "stream limit reached"}'),
                                     ws.close(code=1013, reason="busy")))
        elif len(connections) == 2:  # dropped before `ready`, so no audio went to it: all of it must reach the 3rd
            ws.on_message(lambda _: ws.close(code=1001, reason="going away"))
        else:
            ws.connect_to_server()

    browser = launch(playwright, mic_file)
    try:
        page = open_page(browser, live_server, sample["locale"])
        page.route_web_socket("**/v1/stream", flaky_server)
        record_from_microphone(page, LEAD_S + len(speech) / 16000 + TAIL_S - 0.3)
        history = page.evaluate("window.__history")
        shown = page.eval_on_selector_all(".segment.final .seg-text", "rows => rows.map(r => r.textContent)")
        save_screenshot(page, tmp_path, "web-reconnect.png")
        sent = base64.b64decode(page.evaluate(SENT_AUDIO_BASE64))
    finally:
        browser.close()

    states = [h["state"] for h in history]
    assert "busy" in states and "reconnecting" in states and "listening" in states
    assert any("server is busy" in h["message"] for h in history)
    assert any("connection to the server was lost" in h["message"] for h in history)
    assert any("Reconnected" in h["message"] for h in history)
    assert len(connections) == 3 and shown and all(shown)
    # The audio captured while the page waited and reconnected was kept and reached the server in full.
    assert shown == replay(live_server.ws_url, sent, sample["locale"])


def test_an_api_key_is_sent_with_every_request(playwright, live_server, bundled_samples, tmp_path):
    """Against a server that wants a key (simulated for /v1/models: the live server has none configured)."""
    sample = bundled_samples[6]
    browser = launch(playwright, fake_microphone_file(sample["path"], tmp_path)[0])
    seen: dict[str, list] = {"models": [], "transcribe": []}

    def models_need_a_key(route):
        seen["models"].append(route.request.headers.get("authorization"))
        if route.request.headers.get("authorization") != "Bearer k-test":
            route.fulfill(status=401, content_type="application/json",
                          body='{"error": "unauthorized", "message": "an API key is required"}')
        else:
            route.continue_()

    def record_transcribe(route):
        seen["transcribe"].append(route.request.headers.get("authorization"))
        route.continue_()

    try:
        page = browser.new_page()
        page.add_init_script("""window.__wsProtocols = [];
            const NativeWebSocket = window.WebSocket;
            window.WebSocket = class extends NativeWebSocket {
              constructor(url, protocols) { super(url, protocols); window.__wsProtocols.push(protocols); }
            };""")
        page.route("**/v1/models", models_need_a_key)
        page.route("**/transcribe", record_transcribe)
        page.goto(live_server.url)
        page.wait_for_function("document.getElementById('message').textContent.includes('API key')")
        page.fill("#api-key", "k-test")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector(f'#locale option[value="{sample["locale"]}"]', state="attached")
        assert page.locator("#message").is_hidden()
        page.select_option("#locale", sample["locale"])
        page.set_input_files("#file", str(sample["path"]))
        page.click("#upload-button")
        page.wait_for_selector('#upload-result[data-state="done"]', timeout=60_000)
        page.click("#mic-start")
        page.wait_for_function("document.getElementById('status').dataset.state === 'listening'", timeout=60_000)
        page.click("#mic-stop")
        page.wait_for_function("document.getElementById('status').dataset.state === 'idle'", timeout=60_000)
        protocols = page.evaluate("window.__wsProtocols")
    finally:
        browser.close()
    assert seen["models"][0] is None and set(seen["models"][1:]) == {"Bearer k-test"}
    assert seen["transcribe"] == ["Bearer k-test"]
    assert protocols == [["asr", "apikey.k-test"]]  # browsers cannot set headers on a WebSocket


def test_hotwords_typed_on_the_page_go_with_the_upload_and_the_stream(playwright, live_server, tmp_path):
    """A product name typed in the Hotwords box as it is written ("Kubernetes") is sent with the upload and in the
    stream's start message, and the upload shows the server's transcript, which then writes the name (without the
    hotword the model hears "cuban eats": tests/service/test_service_rest.py)."""
    wav = spoken_wav(tmp_path / "kubernetes.wav", "my kubernetes account is locked", "en-us")
    browser = launch(playwright, fake_microphone_file(wav, tmp_path)[0])
    try:
        page = open_page(browser, live_server, "en-US")
        uploads = record_uploads(page)
        page.fill("#hotwords", "Kubernetes, PayPal")
        page.set_input_files("#file", str(wav))
        page.click("#upload-button")
        page.wait_for_selector('#upload-result[data-state="done"]', timeout=60_000)
        shown = page.locator("#upload-text").text_content()
        record_from_microphone(page, 1.0)
        starts = page.evaluate("window.__sentText.filter((m) => m.type === 'start')")
    finally:
        browser.close()
    assert len(uploads) == 1 and b'name="hotwords"\r\n\r\nKubernetes,PayPal\r\n' in uploads[0]
    assert shown == "My Kubernetes account is locked."  # written by default, the name as typed
    assert starts and all(start["hotwords"] == ["Kubernetes", "PayPal"] for start in starts)


def stereo_call(tmp_path: Path) -> Path:
    """A Cantonese agent who gives a phone number on channel 0, an English customer who says a year on channel 1."""
    from model.corpus.synthesize import VoiceSpec, synthesize

    agent = synthesize("我嘅電話號碼係九一二三四五六七", VoiceSpec("yue"))
    customer = synthesize("i bought three books in two thousand and seven", VoiceSpec("en-us"))
    audio = np.zeros((max(len(agent), len(customer)), 2), dtype=np.float32)
    audio[: len(agent), 0], audio[: len(customer), 1] = agent, customer
    path = tmp_path / "call.wav"
    soundfile.write(path, audio, 16000, subtype="PCM_16")
    return path


def upload_on_page(page, path: Path) -> dict:
    page.set_input_files("#file", str(path))
    page.click("#upload-button")
    page.wait_for_selector('#upload-result[data-state="done"]', timeout=60_000)
    return {"text": page.locator("#upload-text").text_content(),
            "redactions": page.locator("#upload-redactions").text_content(),
            "channels": page.eval_on_selector_all("#upload-channels li", "rows => rows.map(r => r.textContent)"),
            "speakers": page.eval_on_selector_all("#upload-segments .seg-channel",
                                                  "rows => rows.map(r => r.textContent)")}


def test_mask_personal_data_toggles_masking_of_an_upload_and_a_stream(playwright, live_server, tmp_path):
    """Unchecked, the upload shows the number as heard; checked, the page sends redact=pii and shows the server's
    masked text and what it masked; the microphone's start message asks for masking and written numbers."""
    wav = spoken_wav(tmp_path / "phone.wav", "我嘅電話號碼係九一二三四五六七", "yue")
    browser = launch(playwright, fake_microphone_file(wav, tmp_path)[0])
    try:
        page = open_page(browser, live_server, "yue-HK")
        uploads = record_uploads(page)
        plain = upload_on_page(page, wav)
        page.check("#redact")
        masked = upload_on_page(page, wav)
        save_screenshot(page, tmp_path, "web-upload-masked.png")
        page.check("#written")
        record_from_microphone(page, 1.0)
        starts = page.evaluate("window.__sentText.filter((m) => m.type === 'start')")
    finally:
        browser.close()
    assert b'name="redact"' not in uploads[0] and b'name="redact"\r\n\r\npii\r\n' in uploads[1]
    body = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", wav.read_bytes())},
                      data={"locale": "yue-HK", "redact": "pii"}, timeout=60).json()
    assert masked["text"] == body["text"] == "我嘅電話號碼係[PHONE]。"  # written by default
    assert "[PHONE]" not in plain["text"] and "9123" in plain["text"]  # heard as 九一二三… (0.14.0), written
    assert masked["redactions"] == "Personal data masked: 1 (phone_number)." and not plain["redactions"]
    assert starts and all((s["redact"], s["format"]) == ("pii", "written") for s in starts)


def test_a_stereo_call_shows_each_channel_by_name(playwright, live_server, bundled_samples, tmp_path):
    call = stereo_call(tmp_path)
    browser = launch(playwright, fake_microphone_file(bundled_samples[6]["path"], tmp_path)[0])  # unused here
    try:
        page = open_page(browser, live_server, "auto")
        assert page.locator("#channel-names").is_hidden()
        page.check("#separate-channels")
        page.fill("#channel-names", "agent, customer")
        page.check("#redact")
        page.check("#written")
        shown = upload_on_page(page, call)
        save_screenshot(page, tmp_path, "web-upload-channels.png")
    finally:
        browser.close()
    body = httpx.post(f"{live_server.url}/transcribe", files={"file": ("a.wav", call.read_bytes())}, timeout=60, data={
        "channels": "separate", "channel_names": "agent,customer", "redact": "pii", "format": "written"}).json()
    assert shown["channels"] == [f"{c['name']} ({c['locale']}){c['text']}" for c in body["channels"]]
    agent, customer = shown["channels"]
    assert agent.startswith("agent (yue-HK)我嘅電話號碼") and agent.endswith("[PHONE]。")  # punctuated, masked
    assert customer == "customer (en-US)I bought three books in 2007."
    assert shown["speakers"] == [s["channel_name"] for s in body["segments"]] and shown["text"] == body["text"]
    assert shown["redactions"] == "Personal data masked: 1 (phone_number)."
