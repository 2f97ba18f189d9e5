// The openasr page: live microphone transcription over /v1/stream and file uploads to /transcribe.
// Plain ES modules, no build step; the message shapes are the server's (service/protocol.py, docs/protocol.md).

import { showAccuracy } from "./accuracy.js";
import { LiveTranscriber } from "./live.js";
import { onUpload } from "./upload.js";
import { KEY_NEEDED, authHeaders, clearMessage, showMessage, ui } from "./ui.js";

// The page's first choice of language: the browser's own where the model has it (Cantonese for yue and for the
// Chinese of Hong Kong and Macau), else "auto". Real speakers are read far better with their locale named than
// detected: the model card's real-speech lines with `locale=auto`.
export function browserLocale(languages, locales) {
  for (const tag of languages.map((l) => l.toLowerCase())) {
    const language = tag.split("-")[0];
    const cantonese = language === "yue" || /^zh-(hk|mo)\b/.test(tag);
    const match = locales.find((l) => l.toLowerCase() === tag)
      ?? locales.find((l) => (cantonese ? l.startsWith("yue-") : l.split("-")[0] === language));
    if (match) return match;
  }
  return "auto";
}

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
    const chosen = ui.locale.dataset.touched ? ui.locale.value
      : browserLocale(navigator.languages?.length ? navigator.languages : [navigator.language], locales);
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
ui.locale.addEventListener("change", () => { ui.locale.dataset.touched = "yes"; });
ui.separateChannels.addEventListener("change", () => { ui.channelNames.parentElement.hidden = !ui.separateChannels.checked; });
loadLocales();

