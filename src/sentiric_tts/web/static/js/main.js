// The studio page: wires the composer, player, history, cloning, library and status strip.

import { ApiError, getJson, setApiKey, storedApiKey } from "./api.js";
import { ClonePanel } from "./clone.js";
import { clearError, confirmAction, h, showError } from "./dom.js";
import { examples } from "./examples.js";
import { addRender, clearRenders, deleteRender, getRender, listRenders } from "./history.js";
import { LibraryPanel } from "./library.js";
import { AudioGraph } from "./player.js";
import { probe } from "./probe.js";
import { Renderer, formatMs } from "./render.js";
import { StatusStrip } from "./status.js";
import { Scopes } from "./visualizer.js";

const $ = (id) => document.getElementById(id);

const FORMAT_LABELS = {
  wav: "WAV (PCM 16-bit)", pcm: "Raw PCM (s16le)", mulaw: "G.711 µ-law (raw)", alaw: "G.711 A-law (raw)",
  wav_mulaw: "G.711 µ-law in WAV", wav_alaw: "G.711 A-law in WAV", mp3: "MP3", opus: "Opus (Ogg)",
  aac: "AAC (ADTS)", flac: "FLAC",
};
const KIND_LABELS = { studio: "Studio speakers", library: "Your voices", piper: "Piper voices" };

const state = { config: null, voices: [], defaultVoice: "", defaultLanguage: "" };

const languageName = (() => {
  let names = null;
  try {
    names = new Intl.DisplayNames([navigator.language || "en"], { type: "language" });
  } catch {
    names = null;
  }
  return (code) => {
    const name = names ? names.of(code) : null;
    return name && name !== code ? `${name} (${code})` : code;
  };
})();

// --- audio, rendering, history ------------------------------------------------------------

const graph = new AudioGraph($("player"));
let renderer = null;
const scopes = new Scopes($("waveform"), $("spectrum"), () => Boolean(renderer && renderer.isPlaying()));
renderer = new Renderer(
  {
    player: $("player"), download: $("download"), state: $("render-state"), info: $("render-info"),
    ttfa: $("metric-ttfa"), total: $("metric-total"), audio: $("metric-audio"), rtf: $("metric-rtf"),
  },
  graph,
  scopes,
  keepRender,
);
$("player").addEventListener("error", () => {
  if ($("player").getAttribute("src")) {
    $("render-state").textContent = "This browser cannot play this format; use Download instead.";
  }
});

async function keepRender(entry) {
  try {
    await addRender(entry);
  } catch (err) {
    $("history-empty").textContent = `The history cannot be stored in this browser (${err.message}).`;
  }
  await showHistory();
}

function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

async function showHistory() {
  const list = $("history-list");
  let renders = [];
  try {
    renders = await listRenders();
  } catch (err) {
    $("history-empty").textContent = `The history is not available in this browser (${err.message}).`;
  }
  list.replaceChildren(
    ...renders.map((entry) => {
      const when = new Date(entry.createdAt).toLocaleString();
      const snippet = entry.text.length > 90 ? `${entry.text.slice(0, 90)}…` : entry.text;
      const facts = [
        entry.kind === "clone" ? "clone" : entry.voice, entry.language, `${entry.mode} ${entry.format}`,
        `first audio ${formatMs(entry.ttfaMs)}`, entry.rtf ? `RTF ${entry.rtf.toFixed(2)}` : null,
      ].filter(Boolean);
      return h("li", { class: "history-item", "data-render-id": entry.id },
        h("p", { class: "history-text" }, snippet || "(empty)"),
        h("p", { class: "hint" }, h("time", { datetime: entry.createdAt }, when), ` · ${facts.join(" · ")}`),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "button small", "aria-label": `Play render from ${when}`, onclick: async () => renderer.replay(await getRender(entry.id)) }, "Play"),
          h("button", { type: "button", class: "button small", "aria-label": `Download render from ${when}`, onclick: async () => {
            const full = await getRender(entry.id);
            downloadBlob(full.blob, full.filename);
          } }, "Download"),
          h("button", { type: "button", class: "button small ghost", "aria-label": `Delete render from ${when}`, onclick: async () => {
            await deleteRender(entry.id);
            await showHistory();
          } }, "Delete"),
        ),
      );
    }),
  );
  $("history-empty").hidden = renders.length > 0;
  $("history-clear").disabled = renders.length === 0;
}

$("history-clear").addEventListener("click", async () => {
  if (await confirmAction("Delete every render in this browser's history?")) {
    await clearRenders();
    await showHistory();
  }
});

// --- the composer ---------------------------------------------------------------------------

function optionalNumber(id) {
  const input = $(id);
  if (input.disabled || input.value.trim() === "") return undefined;
  return Number(input.value);
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

/** Output and generation options shared by the composer and the clone preview. */
function outputOptions() {
  const streaming = mode() === "stream";
  const format = streaming ? "pcm" : $("format").value;
  const rate = $("sample-rate").value;
  const fields = {
    output_format: format,
    sample_rate: rate ? Number(rate) : undefined,
    stream: streaming,
    speed: Number($("speed").value),
    volume_gain_db: Number($("gain").value),
    temperature: optionalNumber("temperature"),
    top_k: optionalNumber("top-k"),
    top_p: optionalNumber("top-p"),
    repetition_penalty: optionalNumber("repetition-penalty"),
  };
  for (const key of Object.keys(fields)) if (fields[key] === undefined) delete fields[key];
  return { mode: streaming ? "stream" : "file", format, fields };
}

async function speak() {
  const error = $("compose-error");
  clearError(error);
  const output = outputOptions();
  const text = $("text").value;
  const json = {
    text,
    language: $("language").value || undefined,
    voice: $("voice").value || undefined,
    text_type: $("text-type").value || undefined,
    ...output.fields,
  };
  $("stop").disabled = false;
  try {
    await renderer.render({ path: "/api/tts", json, mode: output.mode, format: output.format, text });
  } catch (err) {
    showError(error, err);
  } finally {
    $("stop").disabled = !renderer.busy;
  }
}

$("speak").addEventListener("click", speak);
$("stop").addEventListener("click", () => {
  renderer.stop();
  $("stop").disabled = true;
});
$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    speak();
  }
});
$("text").addEventListener("input", updateCharCount);
$("speed").addEventListener("input", () => ($("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`));
$("gain").addEventListener("input", () => ($("gain-value").textContent = `${$("gain").value} dB`));
for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", updateModeHint);

function updateModeHint() {
  const streaming = mode() === "stream";
  $("format").disabled = streaming;
  $("format-hint").textContent = streaming
    ? "Streams play as they arrive (raw PCM, decoded here); the history keeps them as WAV."
    : "The whole file comes at once; play it here or download it in the chosen format.";
}

function updateCharCount() {
  const max = state.config ? state.config.max_text_chars : null;
  const count = $("text").value.length;
  const label = $("char-count");
  label.textContent = max ? `${count.toLocaleString()} / ${max.toLocaleString()} characters` : `${count} characters`;
  label.classList.toggle("over", Boolean(max && count > max));
}

$("example").addEventListener("change", () => {
  const chosen = examples({ voice: $("voice").value || state.defaultVoice, language: $("language").value })
    .find((example) => example.id === $("example").value);
  if (chosen) {
    $("text").value = chosen.text;
    updateCharCount();
    $("text").focus();
  }
  $("example").value = "";
});

function fillExamples() {
  const select = $("example");
  select.replaceChildren(
    h("option", { value: "" }, "Choose an example…"),
    ...examples({ voice: state.defaultVoice, language: state.defaultLanguage }).map((example) =>
      h("option", { value: example.id }, example.label),
    ),
  );
}

function fillSelect(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => h("option", { value, selected: value === selected }, label)));
}

function speaks(voice, language) {
  return !voice.languages || voice.languages.length === 0 || voice.languages.includes(language);
}

/** The voice picker: voices that speak the chosen language, grouped by kind. */
function fillVoices(keep) {
  const select = $("voice");
  const language = $("language").value;
  const wanted = keep || select.value || state.defaultVoice;
  const usable = state.voices.filter((voice) => speaks(voice, language));
  const groups = new Map();
  for (const voice of usable) {
    if (!groups.has(voice.kind)) groups.set(voice.kind, []);
    groups.get(voice.kind).push(voice);
  }
  const ids = usable.map((voice) => voice.id);
  const selected = ids.includes(wanted) ? wanted : ids.includes(state.defaultVoice) ? state.defaultVoice : ids[0];
  select.replaceChildren(
    ...[...groups].map(([kind, voices]) =>
      h("optgroup", { label: KIND_LABELS[kind] || kind },
        voices.map((voice) => h("option", { value: voice.id, selected: voice.id === selected }, voice.name)),
      ),
    ),
  );
  if (!usable.length) select.append(h("option", { value: "" }, "No voice speaks this language"));
}

$("language").addEventListener("change", () => fillVoices());

async function loadVoices() {
  let listing;
  try {
    listing = await getJson("/api/voices");
  } catch (err) {
    // A service without the voice library still lists its engine's voices.
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    listing = await getJson("/api/speakers");
  }
  state.voices = listing.voices;
  state.defaultVoice = listing.default;
  fillVoices();
  library.render(state.voices);
}

async function loadCatalog() {
  const [config, languages] = await Promise.all([getJson("/api/config"), getJson("/api/languages")]);
  state.config = config;
  state.defaultLanguage = languages.default;
  const languageOptions = languages.languages.map((code) => [code, languageName(code)]);
  fillSelect($("language"), languageOptions, $("language").value || languages.default);
  fillSelect($("clone-language"), languageOptions, $("clone-language").value || languages.default);
  fillSelect(
    $("format"),
    config.output_formats.map((format) => [format, FORMAT_LABELS[format] || format]),
    $("format").value || "wav",
  );
  fillSelect(
    $("sample-rate"),
    [["", `Engine's own (${config.native_sample_rate} Hz)`], ...config.sample_rates.map((rate) => [String(rate), `${rate} Hz`])],
    $("sample-rate").value,
  );
  const xtts = config.engine === "xtts";
  for (const id of ["temperature", "top-k", "top-p", "repetition-penalty"]) $(id).disabled = !xtts;
  $("sampling-note").textContent = xtts
    ? "These shape how XTTS samples speech; leave a field empty for the engine's default."
    : `XTTS only: the running engine (${config.engine}) does not use them.`;
  clone.setAvailable(config.supports_cloning, config.engine);
  await loadVoices();
  fillExamples();
  updateCharCount();
}

// --- cloning and the library --------------------------------------------------------------

function playBlob(blob, filename) {
  renderer.showAudio(blob, blob, filename, true);
}

function useVoice(voice) {
  const language = voice.language || (voice.languages || [])[0];
  if (language && !speaks(voice, $("language").value)) $("language").value = language;
  fillVoices(voice.id);
  $("voice").focus();
}

const library = new LibraryPanel({ reload: loadVoices, use: useVoice, play: playBlob });
const clone = new ClonePanel({
  render: (request) => renderer.render(request),
  outputOptions,
  reload: loadVoices,
  select: useVoice,
  play: playBlob,
});

// --- API key and start-up -----------------------------------------------------------------

const status = new StatusStrip();

window.addEventListener("sentiric:unauthorized", () => {
  $("key-form").classList.add("attention");
  $("api-key").setAttribute("aria-invalid", "true");
});

$("api-key").value = storedApiKey();
$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setApiKey($("api-key").value);
  $("key-form").classList.remove("attention");
  $("api-key").removeAttribute("aria-invalid");
  status.refresh();
  await start();
});

async function start() {
  const error = $("compose-error");
  clearError(error);
  try {
    await loadCatalog();
    probe.ready = true;
  } catch (err) {
    showError(error, err);
  }
}

updateModeHint();
updateCharCount();
status.start();
showHistory();
start();
