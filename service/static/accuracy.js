// "How well this model hears": the bundled model's measured error per locale, on recordings of real people and on
// the synthetic test it was built for, from /v1/models (the model card's numbers), so that whoever speaks into the
// page knows what to expect before they do.

import { $ } from "./ui.js";

const LANGUAGE = { "zh-CN": "Mandarin", "yue-HK": "Cantonese", "en-US": "English" };
// Above this error on real speech a locale is, for a speaker, mostly unusable: the page says so in words.
const UNUSABLE_ERROR = 0.5;

const perLocale = (evaluation) => evaluation?.modes?.full_context?.per_locale ?? {};
const percent = (cell) => (cell ? `${(100 * cell.error_rate).toFixed(1)}%` : "–");
const listed = (names) => (names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0]);
const unit = (cell) => (cell?.metric === "wer" ? "words" : "characters");

export function showAccuracy(model) {
  const real = perLocale(model.real_speech_evaluation);
  const synthetic = perLocale(model.evaluation);
  const locales = model.locales.filter((locale) => real[locale] || synthetic[locale]);
  const section = $("accuracy");
  if (!locales.length) {
    section.hidden = true;
    return;
  }
  const rows = locales.map((locale) => {
    const row = document.createElement("tr");
    row.dataset.locale = locale;
    for (const [text, name] of [[`${LANGUAGE[locale] ?? locale} (${locale})`, "locale"], [percent(real[locale]), "real"],
                                [percent(synthetic[locale]), "synthetic"], [unit(real[locale] ?? synthetic[locale]), "unit"]]) {
      const cell = document.createElement("td");
      cell.className = name;
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  $("accuracy-rows").replaceChildren(...rows);
  const unusable = locales.filter((locale) => real[locale]?.error_rate > UNUSABLE_ERROR);
  $("accuracy-summary").textContent = unusable.length
    ? `${model.id} ${model.version ?? ""} was trained on synthetic voices: on recordings of real people it gets most `
      + `${listed(unusable.map((l) => LANGUAGE[l] ?? l))} wrong. Expect poor transcripts from a microphone.`
    : `${model.id} ${model.version ?? ""}: error on recordings of real people and on its synthetic test, per language.`;
  section.dataset.usable = unusable.length ? "no" : "yes";
  section.hidden = false;
}
