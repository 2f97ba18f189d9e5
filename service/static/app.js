// The openasr page: live microphone transcription over /v1/stream and file uploads to /transcribe.
// Plain ES modules, no build step; the message shapes are the server's (service/protocol.py, docs/protocol.md).

import { showAccuracy } from "./accuracy.js";
import { LiveTranscriber } from "./live.js";
import { onUpload } from "./upload.js";
import { KEY_NEEDED, authHeaders, clearMessage, showMessage, ui } from "./ui.js";

async function loadLocales() {
  try {
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (response.status === 401) {
      showMessage("error", KEY_NEEDED);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    const locales = [...new Set(body.data.flatMap((model) => model.locales))];
    const chosen = ui.locale.value;
    ui.locale.replaceChildren(new Option("auto (detect)", "auto"), ...locales.map((l) => new Option(l, l)));
    ui.locale.value = locales.includes(chosen) ? chosen : "auto";
    if (body.data[0]) showAccuracy(body.data[0]);
    if (!ui.fullContextFinals.dataset.touched) {  // the server's default until the user chooses
      ui.fullContextFinals.checked = Boolean(body.data[0]?.streaming?.full_context_finals);
    }
    if (ui.message.textContent === KEY_NEEDED) clearMessage();
  } catch (error) {
    showMessage("error", `Could not load the model's languages (${error.message}); only "auto" is offered.`);
  }
}

const live = new LiveTranscriber();
ui.micStart.addEventListener("click", () => live.start());
ui.micStop.addEventListener("click", () => live.stop());
ui.uploadForm.addEventListener("submit", onUpload);
ui.apiKey.addEventListener("change", loadLocales);
ui.fullContextFinals.addEventListener("change", () => { ui.fullContextFinals.dataset.touched = "yes"; });
ui.separateChannels.addEventListener("change", () => { ui.channelNames.parentElement.hidden = !ui.separateChannels.checked; });
loadLocales();

