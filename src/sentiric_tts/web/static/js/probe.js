// Counters the page exposes on `window.sentiricDashboard` so that automated browser tests (and a
// curious developer in the console) can see what actually reached the audio graph.

export const probe = {
  ready: false, // the first load of config, languages and voices finished
  renders: 0, // renders that completed (file or stream)
  lastRender: null, // metrics of the last completed render
  audio: {
    streams: 0, // streams started
    decodedSamples: 0, // PCM samples decoded from streams
    scheduledBuffers: 0, // AudioBufferSourceNodes scheduled for streams
    underruns: 0, // times a stream's next chunk came after the previous one had finished playing
    peakLevel: 0, // highest absolute sample the analyser saw (0..1)
    framesWithSignal: 0, // visualizer frames in which the analyser saw a signal
  },
};

window.sentiricDashboard = probe;
