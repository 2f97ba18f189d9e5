// The openasr page: live microphone transcription over /v1/stream and file uploads to /transcribe.
// Plain ES modules, no build step; the message shapes are the server's (service/protocol.py, docs/protocol.md).

import { LiveTranscriber } from "./live.js";
import { onUpload } from "./upload.js";
import { showMessage, ui } from "./ui.js";

async function loadLocales() {
  try {
    const response = await fetch("/v1/models");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    const locales = [...new Set(body.data.flatMap((model) => model.locales))];
    for (const locale of locales) ui.locale.append(new Option(locale, locale));
  } catch (error) {
    showMessage("error", `Could not load the model's languages (${error.message}); only "auto" is offered.`);
  }
}

const live = new LiveTranscriber();
ui.micStart.addEventListener("click", () => live.start());
ui.micStop.addEventListener("click", () => live.stop());
ui.uploadForm.addEventListener("submit", onUpload);
loadLocales();

