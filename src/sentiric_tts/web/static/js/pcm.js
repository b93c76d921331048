// Audio bytes to samples and back: raw s16le, G.711 and WAV, for formats the browser cannot play.

/** Decodes a raw s16le byte stream that may be split at any byte (a chunk can end mid-sample). */
export class Pcm16Decoder {
  constructor() {
    this.carry = null;
  }

  /** Samples (float32, -1..1) in `bytes`, keeping an odd trailing byte for the next call. */
  push(bytes) {
    let data = bytes;
    if (this.carry !== null) {
      data = new Uint8Array(bytes.length + 1);
      data[0] = this.carry;
      data.set(bytes, 1);
      this.carry = null;
    }
    const whole = data.length & ~1;
    if (whole !== data.length) this.carry = data[data.length - 1];
    const view = new DataView(data.buffer, data.byteOffset, whole);
    const samples = new Float32Array(whole / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(i * 2, true) / 32768;
    return samples;
  }
}

function mulawToLinear(byte) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const sample = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return u & 0x80 ? -sample : sample;
}

function alawToLinear(byte) {
  const a = byte ^ 0x55;
  const exponent = (a >> 4) & 0x07;
  const mantissa = a & 0x0f;
  const sample = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1);
  return a & 0x80 ? sample : -sample;
}

/** G.711 bytes (ITU-T tables) to s16le bytes. */
export function g711ToPcm16(bytes, law) {
  const decode = law === "alaw" ? alawToLinear : mulawToLinear;
  const out = new DataView(new ArrayBuffer(bytes.length * 2));
  for (let i = 0; i < bytes.length; i++) out.setInt16(i * 2, decode(bytes[i]), true);
  return new Uint8Array(out.buffer);
}

/** A PCM s16le mono WAV file around `pcmBytes` (one Uint8Array or a list of them). */
export function wavBlob(pcmBytes, sampleRate) {
  const parts = Array.isArray(pcmBytes) ? pcmBytes : [pcmBytes];
  let size = parts.reduce((sum, part) => sum + part.length, 0);
  size &= ~1;
  const header = new DataView(new ArrayBuffer(44));
  const ascii = (offset, text) => [...text].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  header.setUint32(4, 36 + size, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  ascii(36, "data");
  header.setUint32(40, size, true);
  return new Blob([header, ...parts], { type: "audio/wav" });
}

/** Format tag, rate and data of a WAV file; null when it is not one this page can read. */
export function parseWav(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (bytes.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return null;
  let offset = 12;
  let format = null;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const start = offset + 8;
    if (id === "fmt ") {
      format = { tag: view.getUint16(start, true), rate: view.getUint32(start + 4, true) };
    } else if (id === "data" && format) {
      // A streamed WAV says "unknown size" (0xFFFFFFFF): the data runs to the end of the file.
      const end = size === 0xffffffff ? bytes.length : Math.min(bytes.length, start + size);
      return { ...format, data: bytes.subarray(start, end) };
    }
    offset = start + size + (size & 1);
  }
  return null;
}

/**
 * Something an <audio> element can play, from a whole response in `format`: raw PCM and G.711
 * (raw or in WAV) become PCM WAV; everything else is played as sent.
 */
export function playableBlob(bytes, format, contentType, sampleRate) {
  if (format === "pcm") return wavBlob(bytes, sampleRate);
  if (format === "mulaw" || format === "alaw") return wavBlob(g711ToPcm16(bytes, format), sampleRate);
  if (format === "wav_mulaw" || format === "wav_alaw") {
    const wav = parseWav(bytes);
    if (wav && (wav.tag === 7 || wav.tag === 6)) {
      return wavBlob(g711ToPcm16(wav.data, wav.tag === 6 ? "alaw" : "mulaw"), wav.rate);
    }
  }
  return new Blob([bytes], { type: contentType.split(";")[0] || "application/octet-stream" });
}

export const FILE_EXTENSIONS = {
  wav: "wav", pcm: "pcm", mulaw: "ulaw", alaw: "alaw", wav_mulaw: "wav", wav_alaw: "wav",
  mp3: "mp3", opus: "ogg", aac: "aac", flac: "flac",
};
