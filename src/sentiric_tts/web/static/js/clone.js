// Voice cloning: reference clips from files or the microphone, a preview through the renderer,
// and saving the clips as a library voice.

import { call } from "./api.js";
import { clearError, h, showError, whileBusy } from "./dom.js";

const MAX_CLIPS = 5;
const MAX_RECORD_S = 30;

function recorderType() {
  const wanted = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
  return wanted.find((type) => window.MediaRecorder && MediaRecorder.isTypeSupported(type)) || "";
}

export class ClonePanel {
  /**
   * @param hooks {render(request): Promise, outputOptions(): object, reload(): Promise,
   *               select(voiceId), play(blob, filename)}
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.clips = [];
    this.recorder = null;
    this.el = (id) => document.getElementById(id);
    this.error = this.el("clone-error");
    this.message = this.el("clone-message");
    this.el("clone-files").addEventListener("change", (event) => this.addFiles(event.target));
    this.el("clone-record").addEventListener("click", () => this.toggleRecording());
    this.el("clone-preview").addEventListener("click", (event) => this.preview(event.currentTarget));
    this.el("clone-save").addEventListener("click", (event) => this.save(event.currentTarget));
    if (!window.MediaRecorder || !navigator.mediaDevices) {
      this.el("clone-record").disabled = true;
      this.el("clone-record-state").textContent = "Recording needs a secure page (https or localhost).";
    }
  }

  /** Cloning needs an engine that can clone (XTTS); Piper cannot. */
  setAvailable(available, engine) {
    const notice = this.el("clone-unavailable");
    this.el("clone-controls").disabled = !available;
    notice.hidden = available;
    notice.textContent = available
      ? ""
      : `Cloning is unavailable: the running engine (${engine}) cannot clone voices. Start the service with XTTS v2 to clone; saved library voices are still listed below.`;
  }

  addClip(blob, name) {
    if (this.clips.length >= MAX_CLIPS) {
      showError(this.error, new Error(`At most ${MAX_CLIPS} clips; remove one first.`));
      return;
    }
    this.clips.push({ blob, name });
    this.renderClips();
  }

  addFiles(input) {
    clearError(this.error);
    for (const file of input.files) this.addClip(file, file.name);
    input.value = "";
  }

  renderClips() {
    const list = this.el("clone-clips");
    list.replaceChildren(
      ...this.clips.map((clip, index) =>
        h("li", {},
          h("span", { class: "sample-name" }, clip.name, h("span", { class: "hint" }, ` · ${(clip.blob.size / 1024).toFixed(0)} KB`)),
          h("button", { type: "button", class: "button small", "aria-label": `Play ${clip.name}`, onclick: () => this.hooks.play(clip.blob, clip.name) }, "Play"),
          h("button", { type: "button", class: "button small ghost", "aria-label": `Remove ${clip.name}`, onclick: () => {
            this.clips.splice(index, 1);
            this.renderClips();
          } }, "Remove"),
        ),
      ),
    );
  }

  async toggleRecording() {
    const button = this.el("clone-record");
    const state = this.el("clone-record-state");
    if (this.recorder) {
      this.recorder.stop();
      return;
    }
    clearError(this.error);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: true } });
    } catch (err) {
      showError(this.error, new Error(`The microphone is not available (${err.message}). Allow it for this page, or upload a clip.`));
      return;
    }
    const type = recorderType();
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const parts = [];
    const began = performance.now();
    const tick = setInterval(() => {
      const seconds = (performance.now() - began) / 1000;
      state.textContent = `Recording… ${seconds.toFixed(0)} s`;
      if (seconds >= MAX_RECORD_S) recorder.stop();
    }, 250);
    recorder.ondataavailable = (event) => event.data.size && parts.push(event.data);
    recorder.onstop = () => {
      clearInterval(tick);
      for (const track of stream.getTracks()) track.stop();
      this.recorder = null;
      button.textContent = "Record from microphone";
      button.setAttribute("aria-pressed", "false");
      const blob = new Blob(parts, { type: recorder.mimeType || type || "audio/webm" });
      const ext = blob.type.includes("ogg") ? "ogg" : blob.type.includes("mp4") ? "m4a" : "webm";
      state.textContent = "";
      if (blob.size) this.addClip(blob, `recording-${this.clips.length + 1}.${ext}`);
    };
    this.recorder = recorder;
    recorder.start(250);
    button.textContent = "Stop recording";
    button.setAttribute("aria-pressed", "true");
    state.textContent = "Recording… speak for 5-20 s";
  }

  form(fields) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && value !== null && value !== "") form.append(name, String(value));
    }
    for (const clip of this.clips) form.append("files", clip.blob, clip.name);
    return form;
  }

  needClips() {
    if (this.clips.length) return false;
    showError(this.error, new Error("Add at least one reference clip (upload a file or record one)."));
    return true;
  }

  async preview(button) {
    clearError(this.error);
    this.message.textContent = "";
    if (this.needClips()) return;
    const text = this.el("clone-text").value;
    const output = this.hooks.outputOptions();
    const form = this.form({ text, language: this.el("clone-language").value, ...output.fields });
    await whileBusy(button, async () => {
      try {
        await this.hooks.render({ path: "/api/tts/clone", form, mode: output.mode, format: output.format, text, kind: "clone" });
      } catch (err) {
        showError(this.error, err);
      }
    });
  }

  async save(button) {
    clearError(this.error);
    this.message.textContent = "";
    if (this.needClips()) return;
    const name = this.el("clone-name").value.trim();
    if (!name) {
      showError(this.error, new Error("Give the voice a name before saving it."));
      this.el("clone-name").focus();
      return;
    }
    const form = this.form({
      name,
      language: this.el("clone-language").value,
      description: this.el("clone-description").value.trim(),
    });
    await whileBusy(button, async () => {
      try {
        const voice = await (await call("/api/voices", { method: "POST", form })).json();
        await this.hooks.reload();
        this.hooks.select(voice);
        this.message.textContent = `Saved "${voice.name}" to the library and selected it in the composer.`;
      } catch (err) {
        showError(this.error, err);
      }
    });
  }
}
