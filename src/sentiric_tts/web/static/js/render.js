// One render: send the request, play the answer (streamed PCM or a whole file), measure it,
// and keep it in the history. Used by the composer and by the clone preview alike.

import { call } from "./api.js";
import { FILE_EXTENSIONS, Pcm16Decoder, playableBlob, wavBlob } from "./pcm.js";
import { StreamPlayback } from "./player.js";
import { probe } from "./probe.js";

export function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function extensionFrom(response, format) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?[^".]*\.([A-Za-z0-9]+)"?/.exec(disposition);
  return match ? match[1] : FILE_EXTENSIONS[format] || "bin";
}

function stamp(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}

export class Renderer {
  /**
   * @param els {player, download, state, info, ttfa, total, audio, rtf}
   * @param graph the AudioGraph; scopes: the Scopes; onSaved(entry): a render was kept.
   */
  constructor(els, graph, scopes, keep) {
    this.els = els;
    this.graph = graph;
    this.scopes = scopes;
    this.keep = keep;
    this.controller = null;
    this.playback = null;
    this.urls = [];
    els.player.addEventListener("play", () => this.scopes.run());
    els.player.addEventListener("playing", () => this.setState("Playing"));
    els.player.addEventListener("ended", () => this.setState("Done"));
  }

  get busy() {
    return this.controller !== null;
  }

  isPlaying() {
    return Boolean(this.playback && this.playback.playing) || !this.els.player.paused;
  }

  setState(text) {
    this.els.state.textContent = text;
  }

  /** Stop whatever plays or downloads now. */
  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    if (this.playback) this.playback.stop();
    this.playback = null;
    this.els.player.pause();
  }

  /**
   * Synthesize and play. `request`: {path, json | form, mode: "stream" | "file", format, text}.
   * Resolves with the kept history entry; rejects with an ApiError (or AbortError on stop).
   */
  async render(request) {
    this.stop();
    this.graph.ensure();
    this.scopes.attach(this.graph.analyser);
    const controller = new AbortController();
    this.controller = controller;
    this.setState("Waiting for the service…");
    this.showMetrics(null);
    const started = performance.now();
    try {
      const response = await call(request.path, {
        method: "POST",
        json: request.json,
        form: request.form,
        signal: controller.signal,
      });
      const result =
        request.mode === "stream"
          ? await this.playStream(response, started, controller.signal)
          : await this.playFile(response, request.format, started);
      const entry = {
        createdAt: new Date().toISOString(),
        text: request.text,
        kind: request.kind || "tts",
        mode: request.mode,
        format: request.mode === "stream" ? "wav" : request.format,
        voice: response.headers.get("X-Voice") || "",
        language: response.headers.get("X-Language") || "",
        ...result,
      };
      entry.rtf = entry.audioSeconds > 0 ? entry.totalMs / 1000 / entry.audioSeconds : null;
      this.showMetrics(entry);
      probe.renders += 1;
      probe.lastRender = { ...entry, blob: undefined, playBlob: undefined };
      await this.keep(entry);
      return entry;
    } catch (err) {
      this.setState(err && err.name === "AbortError" ? "Stopped" : "Failed");
      throw err;
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  async playStream(response, started, signal) {
    const rate = Number(response.headers.get("X-Sample-Rate"));
    const playback = new StreamPlayback(this.graph, rate);
    this.playback = playback;
    this.scopes.run();
    const decoder = new Pcm16Decoder();
    const chunks = [];
    const reader = response.body.getReader();
    let firstMs = null;
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (firstMs === null) {
          firstMs = performance.now() - started;
          this.els.ttfa.textContent = formatMs(firstMs);
        }
        chunks.push(value);
        playback.push(decoder.push(value));
        this.setState(`Streaming… ${(playback.samples / rate).toFixed(1)} s received`);
      }
    } catch (err) {
      if (signal.aborted) throw new DOMException("Stopped", "AbortError");
      const got = (playback.samples / rate).toFixed(1);
      throw new Error(`The stream broke off after ${got} s of audio (${err.message}). Try again.`);
    }
    if (signal.aborted) throw new DOMException("Stopped", "AbortError");
    const totalMs = performance.now() - started;
    playback.finish();
    this.setState("Playing");
    playback.ended.then(() => {
      if (this.playback === playback) this.setState("Done");
    });
    const blob = wavBlob(chunks, rate);
    this.showAudio(blob, blob, `sentiric-${stamp(new Date())}.wav`, false);
    return {
      sampleRate: rate,
      ttfaMs: firstMs ?? totalMs,
      totalMs,
      audioSeconds: playback.samples / rate,
      blob,
      filename: `sentiric-${stamp(new Date())}.wav`,
    };
  }

  async playFile(response, format, started) {
    const rate = Number(response.headers.get("X-Sample-Rate"));
    const contentType = response.headers.get("Content-Type") || "";
    const bytes = new Uint8Array(await response.arrayBuffer());
    const totalMs = performance.now() - started;
    const blob = new Blob([bytes], { type: contentType });
    const playBlob = playableBlob(bytes, format, contentType, rate);
    const filename = `sentiric-${stamp(new Date())}.${extensionFrom(response, format)}`;
    this.showAudio(blob, playBlob, filename, true);
    const header = Number(response.headers.get("X-Audio-Duration"));
    return {
      sampleRate: rate,
      ttfaMs: totalMs, // a whole file can start playing once all of it has arrived
      totalMs,
      audioSeconds: Number.isFinite(header) && header > 0 ? header : 0,
      blob,
      playBlob: playBlob === blob ? undefined : playBlob,
      filename,
    };
  }

  /** Put a render in the player (and the download link); autoplay when asked. */
  showAudio(blob, playBlob, filename, autoplay) {
    for (const url of this.urls) URL.revokeObjectURL(url);
    const playUrl = URL.createObjectURL(playBlob);
    const downloadUrl = playBlob === blob ? playUrl : URL.createObjectURL(blob);
    this.urls = [...new Set([playUrl, downloadUrl])];
    const { player, download } = this.els;
    player.src = playUrl;
    download.href = downloadUrl;
    download.download = filename;
    download.textContent = `Download ${filename.split(".").pop().toUpperCase()}`;
    download.hidden = false;
    if (autoplay) this.play();
  }

  /** Play a stored render from the history. */
  replay(entry) {
    this.stop();
    this.graph.ensure();
    this.scopes.attach(this.graph.analyser);
    this.showAudio(entry.blob, entry.playBlob || entry.blob, entry.filename, true);
    this.showMetrics(entry);
  }

  play() {
    this.graph.ensure();
    this.els.player.play().catch((err) => {
      this.setState(
        err.name === "NotSupportedError"
          ? "This browser cannot play this format; download it instead."
          : `Press play to listen (${err.message}).`,
      );
    });
  }

  showMetrics(entry) {
    const { ttfa, total, audio, rtf, info } = this.els;
    if (!entry) {
      for (const el of [ttfa, total, audio, rtf]) el.textContent = "–";
      info.textContent = "";
      return;
    }
    ttfa.textContent = formatMs(entry.ttfaMs);
    total.textContent = formatMs(entry.totalMs);
    audio.textContent = entry.audioSeconds ? `${entry.audioSeconds.toFixed(2)} s` : "–";
    rtf.textContent = entry.rtf ? entry.rtf.toFixed(3) : "–";
    const parts = [entry.mode === "stream" ? "Streamed" : "File", entry.format, `${entry.sampleRate} Hz`];
    if (entry.voice) parts.push(`voice ${entry.voice}`);
    if (entry.language) parts.push(entry.language);
    info.textContent = parts.join(" · ");
  }
}
