// Shared by the page's modules: element handles, the status line and message banner, and transcript rendering
// (token confidence as shading, times and scores on hover).

export const $ = (id) => document.getElementById(id);
export const ui = {
  locale: $("locale"), fullContextFinals: $("full-context-finals"), hotwords: $("hotwords"), apiKey: $("api-key"),
  redact: $("redact"), written: $("written"), separateChannels: $("separate-channels"), channelNames: $("channel-names"),
  status: $("status"), message: $("message"),
  micStart: $("mic-start"), micStop: $("mic-stop"), transcript: $("transcript"),
  uploadForm: $("upload-form"), file: $("file"), uploadButton: $("upload-button"), uploadStatus: $("upload-status"),
  uploadResult: $("upload-result"), uploadText: $("upload-text"), uploadSegments: $("upload-segments"),
  uploadChannels: $("upload-channels"), uploadRedactions: $("upload-redactions"),
};

// ------------------------------------------------------------------------------------- status and messages

export function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

export function showMessage(kind, text) {
  ui.message.dataset.kind = kind;
  ui.message.textContent = text;
  ui.message.hidden = false;
}

export function clearMessage() {
  ui.message.hidden = true;
  ui.message.textContent = "";
}

// The key lives in sessionStorage: it survives a reload of this tab but is not written to disk for good.
const KEY_STORAGE = "openasr.apiKey";
ui.apiKey.value = sessionStorage.getItem(KEY_STORAGE) || "";
ui.apiKey.addEventListener("change", () => sessionStorage.setItem(KEY_STORAGE, ui.apiKey.value.trim()));

export const apiKey = () => ui.apiKey.value.trim();
export const authHeaders = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});
export const KEY_NEEDED = "This server needs an API key: enter it in the API key box and try again.";

// The hotwords box: phrases separated by commas or new lines, as the server's `hotwords` field takes them (the
// server normalises each one as transcripts are written: case, accents and punctuation do not matter).
export const hotwordList = () => ui.hotwords.value.split(/[,\n]/).map((phrase) => phrase.trim()).filter(Boolean);

// What uploads and streams alike ask for beyond decoding (docs/protocol.md: "Personal data", "Written numbers"): an
// unchecked redaction box leaves the server's default, so a server that masks everything (ASR_REDACT=pii) still does;
// the written-form box always says which form it wants.
export const resultOptions = () => ({
  ...(ui.redact.checked ? { redact: "pii" } : {}),
  format: ui.written.checked ? "written" : "spoken",
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const seconds = (s) => `${s.toFixed(2)} s`;
export const percent = (p) => `${Math.round(p * 100)}%`;

// -------------------------------------------------------------------------------------------- rendering

function tokenSpan(token) {
  const span = document.createElement("span");
  span.className = "token";
  span.style.setProperty("--confidence", token.confidence);
  span.title = `${token.start.toFixed(2)}–${token.end.toFixed(2)} s · confidence ${percent(token.confidence)}`;
  span.textContent = token.text;
  return span;
}

// Token texts carry no word spacing (and the decoder may drop some tokens), so each token is located in the
// segment's text and the gaps are kept as plain text: what is shown is always exactly the server's text.
export function renderTokens(container, text, tokens) {
  container.replaceChildren();
  let cursor = 0;
  for (const token of tokens) {
    const at = token.text ? text.indexOf(token.text, cursor) : -1;
    if (at < 0) continue;
    if (at > cursor) container.append(text.slice(cursor, at));
    container.append(tokenSpan(token));
    cursor = at + token.text.length;
  }
  if (cursor < text.length) container.append(text.slice(cursor));
}

function segmentRow(key) {
  let row = ui.transcript.querySelector(`[data-key="${key}"]`);
  if (!row) {
    row = document.createElement("div");
    row.className = "segment";
    row.dataset.key = key;
    const text = document.createElement("span");
    text.className = "seg-text";
    const meta = document.createElement("span");
    meta.className = "seg-meta";
    row.append(text, meta);
    ui.transcript.append(row);
  }
  return row;
}

export function showPartial(key, message) {
  if (!message.text) {
    ui.transcript.querySelector(`[data-key="${key}"]`)?.remove();
    return;
  }
  const row = segmentRow(key);
  row.classList.add("partial");
  renderTokens(row.querySelector(".seg-text"), message.text, message.tokens);
  row.querySelector(".seg-meta").textContent = "…";
  row.scrollIntoView({ block: "nearest" });
}

export function showFinal(key, message) {
  if (!message.text) {
    ui.transcript.querySelector(`[data-key="${key}"]`)?.remove(); // a stop with nothing left to say
    return;
  }
  const row = segmentRow(key);
  row.classList.replace("partial", "final") || row.classList.add("final");
  renderTokens(row.querySelector(".seg-text"), message.text, message.tokens);
  row.querySelector(".seg-text").title = message.raw_text ? `as heard: ${message.raw_text}` : "";  // format=written
  const detected = message.locale_probability == null ? "" : ` ${percent(message.locale_probability)}`;
  const meta = row.querySelector(".seg-meta");
  meta.textContent = `${message.locale}${detected} · ${seconds(message.start)}–${seconds(message.end)} · ${Math.round(message.latency_ms)} ms`;
  meta.title = `locale ${message.locale}; final ${message.latency_ms} ms after its last audio reached the server (${message.reason})`;
  row.scrollIntoView({ block: "nearest" });
}

