// The page's audio graph: every sound (the <audio> element and streamed PCM) goes through one
// gain and one AnalyserNode, so the scopes show whatever is playing.

import { probe } from "./probe.js";

/**
 * Seconds of audio held ahead of the play head when a stream starts, and the most it grows to:
 * each underrun (the next chunk came after the last one finished) doubles it, a jitter buffer
 * that trades a little latency for no further gaps on a slow link or a busy engine.
 */
const START_LEAD_S = 0.08;
const MAX_LEAD_S = 1.0;

export class AudioGraph {
  constructor(element) {
    this.element = element;
    this.context = null;
    this.analyser = null;
    this.input = null;
  }

  /** The AudioContext, made on first use (browsers allow starting it only after a gesture). */
  ensure() {
    if (!this.context) {
      const context = new AudioContext({ latencyHint: "interactive" });
      const analyser = context.createAnalyser();
      analyser.fftSize = 2048;
      analyser.smoothingTimeConstant = 0.75;
      const input = context.createGain();
      input.connect(analyser);
      analyser.connect(context.destination);
      context.createMediaElementSource(this.element).connect(input);
      this.context = context;
      this.analyser = analyser;
      this.input = input;
    }
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
    return this.context;
  }
}

/**
 * Gapless playback of a PCM stream: each decoded chunk becomes an AudioBuffer scheduled to start
 * exactly where the previous one ends (sample-accurate on the AudioContext clock).
 */
export class StreamPlayback {
  constructor(graph, sampleRate) {
    this.graph = graph;
    this.context = graph.ensure();
    this.sampleRate = sampleRate;
    this.nextTime = 0;
    this.sources = new Set();
    this.finished = false;
    this.stopped = false;
    this.samples = 0;
    this.lead = START_LEAD_S;
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
    probe.audio.streams += 1;
  }

  get playing() {
    return !this.stopped && (this.sources.size > 0 || !this.finished);
  }

  push(samples) {
    if (this.stopped || samples.length === 0) return;
    const context = this.context;
    const buffer = context.createBuffer(1, samples.length, this.sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.graph.input);
    if (this.nextTime < context.currentTime + 0.005) {
      if (this.samples > 0) {
        probe.audio.underruns += 1;
        this.lead = Math.min(MAX_LEAD_S, this.lead * 2);
      }
      this.nextTime = context.currentTime + this.lead;
    }
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.samples += samples.length;
    this.sources.add(source);
    source.onended = () => {
      this.sources.delete(source);
      this.settle();
    };
    probe.audio.decodedSamples += samples.length;
    probe.audio.scheduledBuffers += 1;
  }

  /** No more chunks will come; `ended` resolves when the last one has played. */
  finish() {
    this.finished = true;
    this.settle();
  }

  stop() {
    this.stopped = true;
    this.finished = true;
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        /* not started yet */
      }
    }
    this.sources.clear();
    this.settle();
  }

  settle() {
    if (this.finished && this.sources.size === 0) this.resolveEnded();
  }
}
