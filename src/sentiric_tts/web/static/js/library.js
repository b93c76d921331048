// The voice library: list, rename, delete, play and manage the clips of saved (cloned) voices.

import { call } from "./api.js";
import { clearError, confirmAction, h, showError, whileBusy } from "./dom.js";

const path = (id) => `/api/voices/${encodeURIComponent(id)}`;

export class LibraryPanel {
  /**
   * @param hooks {reload(): Promise (re-reads the voices), use(voice), play(blob, filename)}
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.list = document.getElementById("library-list");
    this.empty = document.getElementById("library-empty");
    this.error = document.getElementById("library-error");
    document.getElementById("library-refresh").addEventListener("click", () => this.run(() => hooks.reload()));
  }

  /** Run an action, show its error (the API's message) or clear the last one. */
  async run(action) {
    clearError(this.error);
    try {
      await action();
    } catch (err) {
      showError(this.error, err);
    }
  }

  render(voices) {
    const library = voices.filter((v) => v.kind === "library");
    this.list.replaceChildren(...library.map((voice) => this.item(voice)));
    this.empty.hidden = library.length > 0;
  }

  item(voice) {
    const name = h("span", { class: "voice-name" }, voice.name);
    const langs = (voice.languages || []).slice(0, 3).join(", ");
    const meta = [voice.description, langs && `speaks ${langs}${voice.languages.length > 3 ? "…" : ""}`]
      .filter(Boolean)
      .join(" · ");
    const head = h("div", { class: "voice-head" }, name, meta ? h("p", { class: "hint" }, meta) : null);
    const li = h("li", { class: "voice-item", "data-voice-id": voice.id });
    const actions = h(
      "div",
      { class: "voice-actions" },
      h("button", { type: "button", class: "button small", onclick: () => this.hooks.use(voice) }, "Use"),
      h("button", { type: "button", class: "button small", "aria-label": `Rename ${voice.name}`, onclick: () => this.startRename(li, head, voice) }, "Rename"),
      h("button", { type: "button", class: "button small danger", "aria-label": `Delete ${voice.name}`, onclick: () => this.remove(voice) }, "Delete"),
    );
    const samples = h("ul", { class: "sample-list", "aria-label": `Clips of ${voice.name}` },
      (voice.samples || []).map((sample) => this.sampleItem(voice, sample)));
    const upload = h("input", {
      type: "file", multiple: true, accept: "audio/*", class: "visually-hidden", id: `add-${voice.id}`,
      onchange: (event) => this.addSamples(voice, event.target),
    });
    const add = h("label", { class: "button small", for: `add-${voice.id}` }, "Add clips", upload);
    li.append(h("div", { class: "voice-row" }, head, actions), samples, h("div", { class: "voice-foot" }, add));
    return li;
  }

  sampleItem(voice, sample) {
    const seconds = Number(sample.seconds);
    const label = `${sample.filename}${Number.isFinite(seconds) ? ` · ${seconds.toFixed(1)} s` : ""}`;
    return h("li", {},
      h("span", { class: "sample-name" }, label),
      h("button", { type: "button", class: "button small", "aria-label": `Play ${sample.filename}`, onclick: (e) => this.playSample(e.currentTarget, voice, sample) }, "Play"),
      h("button", { type: "button", class: "button small ghost", "aria-label": `Remove ${sample.filename} from ${voice.name}`, onclick: () => this.removeSample(voice, sample) }, "Remove"),
    );
  }

  startRename(li, head, voice) {
    const input = h("input", { type: "text", value: voice.name, maxlength: 80, "aria-label": `New name for ${voice.name}`, class: "rename-input" });
    const cancel = () => form.replaceWith(head);
    const form = h("form", { class: "rename-form", onsubmit: (event) => {
      event.preventDefault();
      this.run(() => whileBusy(save, async () => {
        await call(path(voice.id), { method: "PATCH", json: { name: input.value.trim() } });
        await this.hooks.reload();
      }));
    } },
      input,
      h("button", { type: "submit", class: "button small primary" }, "Save"),
      h("button", { type: "button", class: "button small", onclick: cancel }, "Cancel"),
    );
    const save = form.querySelector("button[type=submit]");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel();
    });
    head.replaceWith(form);
    input.focus();
    input.select();
  }

  async remove(voice) {
    if (!(await confirmAction(`Delete the voice "${voice.name}" and its clips? This cannot be undone.`))) return;
    await this.run(async () => {
      await call(path(voice.id), { method: "DELETE" });
      await this.hooks.reload();
    });
  }

  async playSample(button, voice, sample) {
    await this.run(() => whileBusy(button, async () => {
      const url = `${path(voice.id)}/sample?sample_id=${encodeURIComponent(sample.id)}`;
      const blob = await (await call(url)).blob();
      this.hooks.play(blob, sample.filename);
    }));
  }

  async removeSample(voice, sample) {
    if (!(await confirmAction(`Remove the clip "${sample.filename}" from "${voice.name}"?`))) return;
    await this.run(async () => {
      await call(`${path(voice.id)}/samples/${encodeURIComponent(sample.id)}`, { method: "DELETE" });
      await this.hooks.reload();
    });
  }

  async addSamples(voice, input) {
    const files = [...input.files];
    input.value = "";
    if (!files.length) return;
    await this.run(async () => {
      const form = new FormData();
      for (const file of files) form.append("files", file, file.name);
      await call(`${path(voice.id)}/samples`, { method: "POST", form });
      await this.hooks.reload();
    });
  }
}
