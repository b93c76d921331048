// The status strip: engine, device, readiness and queue depth, refreshed periodically.

import { getJson } from "./api.js";

const REFRESH_MS = 5000;

export class StatusStrip {
  constructor() {
    this.dot = document.getElementById("status-dot");
    this.ready = document.getElementById("status-ready");
    this.engine = document.getElementById("status-engine");
    this.device = document.getElementById("status-device");
    this.queue = document.getElementById("status-queue");
    this.timer = 0;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
  }

  start() {
    this.refresh();
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const status = await getJson("/api/status");
      this.show(status.ready ? "ready" : "busy", status.ready ? "Ready" : "Starting");
      this.engine.textContent = status.engine;
      this.device.textContent = status.device;
      this.queue.textContent = `${status.jobs_in_flight} / ${status.max_queued_requests}`;
      this.queue.title = `${status.jobs_in_flight} requests in flight; the queue holds ${status.max_queued_requests}`;
    } catch (err) {
      if (err.status === 401) this.show("locked", "API key needed");
      else if (err.status === 503) this.show("busy", "Starting");
      else this.show("down", "Unreachable");
    }
    // Hidden tabs do not poll: the strip refreshes when the tab is shown again.
    if (!document.hidden) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  show(state, text) {
    this.dot.dataset.state = state;
    this.ready.textContent = text;
  }
}
