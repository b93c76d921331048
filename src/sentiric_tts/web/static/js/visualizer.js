// Live waveform and spectrum of whatever goes through the analyser, drawn on two canvases.

import { probe } from "./probe.js";

function themeColor(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return canvas.getContext("2d");
}

export class Scopes {
  constructor(waveCanvas, spectrumCanvas, isPlaying) {
    this.wave = waveCanvas;
    this.spectrum = spectrumCanvas;
    this.isPlaying = isPlaying;
    this.analyser = null;
    this.frame = 0;
    this.drawIdle();
    window.addEventListener("resize", () => (this.frame ? null : this.drawIdle()));
  }

  attach(analyser) {
    this.analyser = analyser;
    this.timeData = new Float32Array(analyser.fftSize);
    this.freqData = new Uint8Array(analyser.frequencyBinCount);
  }

  /** Draw every animation frame until nothing plays any more. */
  run() {
    if (this.frame || !this.analyser) return;
    const step = () => {
      this.draw();
      if (this.isPlaying()) {
        this.frame = requestAnimationFrame(step);
      } else {
        this.frame = 0;
        this.drawIdle();
      }
    };
    this.frame = requestAnimationFrame(step);
  }

  draw() {
    const analyser = this.analyser;
    analyser.getFloatTimeDomainData(this.timeData);
    analyser.getByteFrequencyData(this.freqData);
    let peak = 0;
    for (const v of this.timeData) peak = Math.max(peak, Math.abs(v));
    if (peak > 0.001) probe.audio.framesWithSignal += 1;
    probe.audio.peakLevel = Math.max(probe.audio.peakLevel, peak);
    this.drawWave(this.timeData);
    this.drawSpectrum(this.freqData);
  }

  drawIdle() {
    this.drawWave(null);
    this.drawSpectrum(null);
  }

  drawWave(data) {
    const ctx = fit(this.wave);
    const { width, height } = this.wave;
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = themeColor("--grid", "#ccd");
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, height / 2);
    ctx.lineTo(width, height / 2);
    ctx.stroke();
    if (!data) return;
    ctx.strokeStyle = themeColor("--accent", "#2f5d8a");
    ctx.lineWidth = Math.max(1.5, (window.devicePixelRatio || 1) * 1.5);
    ctx.beginPath();
    for (let x = 0; x < width; x++) {
      const v = data[Math.floor((x / width) * data.length)];
      const y = (0.5 - v * 0.45) * height;
      if (x === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  drawSpectrum(data) {
    const ctx = fit(this.spectrum);
    const { width, height } = this.spectrum;
    ctx.clearRect(0, 0, width, height);
    if (!data) return;
    // Speech lives below ~8 kHz: show the lower half of the bins on a log-ish scale.
    const bars = 64;
    const usable = Math.floor(data.length / 2);
    const gap = Math.max(1, width / bars / 5);
    const barWidth = width / bars - gap;
    ctx.fillStyle = themeColor("--accent-2", "#5b8fbf");
    for (let i = 0; i < bars; i++) {
      const from = Math.floor(Math.pow(usable, i / bars));
      const to = Math.max(from + 1, Math.floor(Math.pow(usable, (i + 1) / bars)));
      let sum = 0;
      for (let j = from; j < to; j++) sum += data[j];
      const level = sum / (to - from) / 255;
      const barHeight = Math.max(1, level * height);
      ctx.fillRect(i * (barWidth + gap), height - barHeight, barWidth, barHeight);
    }
  }
}
