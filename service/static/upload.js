// File upload: POST /transcribe (multipart), retried while the server answers 503, shown segment by segment.

import { KEY_NEEDED, authHeaders, clearMessage, hotwordList, percent, renderTokens, seconds, showMessage, sleep, ui } from "./ui.js";

const UPLOAD_ATTEMPTS = 4;

function retryAfterSeconds(response) {
  const value = Number(response.headers.get("Retry-After"));
  return Number.isFinite(value) && value >= 0 ? value : 2;
}

async function postUpload(file) {
  for (let attempt = 1; ; attempt++) {
    const form = new FormData();
    form.append("file", file);
    form.append("locale", ui.locale.value);
    form.append("timestamps", "true");
    if (hotwordList().length) form.append("hotwords", hotwordList().join(","));
    let response;
    try {
      response = await fetch("/transcribe", { method: "POST", body: form, headers: authHeaders() });
    } catch (error) {
      throw new Error(`Could not reach the server (${error.message}); check the connection and try again.`);
    }
    if (response.status === 503) {
      const wait = retryAfterSeconds(response);
      if (attempt >= UPLOAD_ATTEMPTS) throw new Error(`The server is busy; try again in ${wait} s.`);
      showMessage("warning", `The server is busy. Retrying the upload in ${wait} s (attempt ${attempt + 1} of ${UPLOAD_ATTEMPTS}).`);
      ui.uploadStatus.textContent = "server busy — waiting to retry";
      await sleep(wait * 1000);
      continue;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) throw new Error(KEY_NEEDED);
    if (response.status === 429) throw new Error(`Too many requests for this API key: ${body.message || "try again later"}.`);
    if (!response.ok) {
      throw new Error(`Transcription failed: ${body.message || response.statusText} (${body.error || response.status}).`);
    }
    return body;
  }
}

function renderUpload(body) {
  ui.uploadText.textContent = body.text;
  ui.uploadSegments.replaceChildren(...body.segments.map((segment) => {
    const item = document.createElement("li");
    const time = document.createElement("span");
    time.className = "seg-time";
    time.textContent = `${seconds(segment.start)}–${seconds(segment.end)}`;
    const text = document.createElement("span");
    text.className = "seg-text";
    renderTokens(text, segment.text, segment.tokens);
    item.append(time, text);
    return item;
  }));
  const detected = body.locale_probability == null ? "" : ` (detected, ${percent(body.locale_probability)})`;
  ui.uploadStatus.textContent = `${body.locale}${detected} · ${body.duration_s.toFixed(1)} s of audio in ${body.processing_s.toFixed(2)} s`;
  ui.uploadResult.dataset.state = "done";
}

export async function onUpload(event) {
  event.preventDefault();
  const file = ui.file.files[0];
  if (!file) return;
  clearMessage();
  ui.uploadButton.disabled = true;
  ui.uploadResult.dataset.state = "working";
  ui.uploadStatus.textContent = `transcribing ${file.name}…`;
  try {
    renderUpload(await postUpload(file));
    if (ui.message.dataset.kind === "warning") clearMessage();
  } catch (error) {
    ui.uploadResult.dataset.state = "error";
    ui.uploadStatus.textContent = "";
    showMessage("error", error.message);
  } finally {
    ui.uploadButton.disabled = false;
  }
}

