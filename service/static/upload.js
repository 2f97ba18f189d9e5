// File upload: POST /transcribe (multipart), retried while the server answers 503, shown segment by segment.

import {
  KEY_NEEDED, authHeaders, clearMessage, hotwordList, percent, renderTokens, resultOptions, seconds, showMessage, sleep, ui,
} from "./ui.js";

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
    for (const [name, value] of Object.entries({ ...resultOptions(), ...channelOptions() })) form.append(name, value);
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

// A call with one party per channel (`channels=separate`), and the names of its channels in order.
function channelOptions() {
  if (!ui.separateChannels.checked) return {};
  const names = ui.channelNames.value.split(",").map((name) => name.trim()).filter(Boolean);
  return { channels: "separate", ...(names.length ? { channel_names: names.join(",") } : {}) };
}

const channelLabel = (channel) => channel.name || `channel ${channel.channel + 1}`;

function renderChannels(body) {
  ui.uploadChannels.hidden = !body.channels;
  ui.uploadChannels.replaceChildren(...(body.channels || []).map((channel) => {
    const item = document.createElement("li");
    item.dataset.channel = channel.channel;
    const label = document.createElement("span");
    label.className = "channel-name";
    label.textContent = `${channelLabel(channel)} (${channel.locale})`;
    const text = document.createElement("span");
    text.className = "channel-text";
    text.textContent = channel.text;
    item.append(label, text);
    return item;
  }));
}

// Masked items by kind ("2 masked: phone_number, email"); the text itself shows each as [PHONE], [EMAIL], ...
function renderRedactions(body) {
  ui.uploadRedactions.hidden = !body.redactions;
  const kinds = [...new Set((body.redactions || []).map((r) => r.entity))];
  ui.uploadRedactions.textContent = body.redactions
    ? `Personal data masked: ${body.redactions.length}${kinds.length ? ` (${kinds.join(", ")})` : ""}.` : "";
}

function segmentItem(segment, channels) {
  const item = document.createElement("li");
  const time = document.createElement("span");
  time.className = "seg-time";
  time.textContent = `${seconds(segment.start)}–${seconds(segment.end)}`;
  const text = document.createElement("span");
  text.className = "seg-text";
  renderTokens(text, segment.text, segment.tokens);
  if (segment.raw_text) text.title = `as heard: ${segment.raw_text}`;
  item.append(time);
  if (segment.channel != null) {
    const who = document.createElement("span");
    who.className = "seg-channel";
    who.textContent = channelLabel(channels.find((c) => c.channel === segment.channel) || { channel: segment.channel });
    item.append(who);
  }
  item.append(text);
  return item;
}

function renderUpload(body) {
  ui.uploadText.textContent = body.text;
  ui.uploadText.title = body.raw_text ? `as heard: ${body.raw_text}` : "";
  renderChannels(body);
  renderRedactions(body);
  ui.uploadSegments.replaceChildren(...body.segments.map((segment) => segmentItem(segment, body.channels || [])));
  const detected = body.locale_probability == null ? "" : ` (detected, ${percent(body.locale_probability)})`;
  const heard = body.channels ? `${body.channels.length} channels` : `${body.locale}${detected}`;  // each its own locale
  ui.uploadStatus.textContent = `${heard} · ${body.duration_s.toFixed(1)} s of audio in ${body.processing_s.toFixed(2)} s`;
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

