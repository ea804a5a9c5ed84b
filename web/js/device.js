// The device view: one chart per metric, live, with anomalies, and zoom into history.
//
// On open it subscribes to `<device>/+` with `since` = the start of the live window, so the
// server backfills the last minutes and then streams on the same connection (no gap). A
// drag on any chart zooms all of them to that range (aligned time axes) by fetching each
// metric's downsampled history; "back to live" returns to the streaming window.

import * as api from './api.js';
import { MetricChart, LIVE_WINDOW_S } from './chart.js';

/** How far back anomalies are listed when the view opens. */
const ANOMALY_LOOKBACK_MS = 24 * 3600 * 1000;
const ANOMALY_LIST_MAX = 50;

export class DeviceView {
  constructor(els, fleet, live) {
    this.els = els;
    this.fleet = fleet;
    this.live = live;
    this.id = null;
    this.charts = new Map();
    this.filter = null;
    this.range = null; // [fromS, toS] while zoomed
    this.fetches = null; // AbortController of the current history fetches
    this.anomalyItems = [];
    els.backToLive.addEventListener('click', () => this.goLive());
    window.addEventListener('resize', () => {
      for (const c of this.charts.values()) c.resize(this.els.charts.clientWidth);
    });
  }

  async open(id) {
    this.close();
    this.id = id;
    const { els } = this;
    els.title.textContent = id;
    els.note.hidden = true;
    els.anomalyList.textContent = '';
    els.anomalyNote.textContent = '';
    const known = this.fleet.devices.get(id);
    this.showHeader(known);
    // Charts for the metrics already known; new metrics get one on their first reading.
    if (known) {
      for (const m of known.metrics()) {
        // Start from the newest stored value: a real reading, drawn before any live one.
        const l = known.latest.get(m);
        this.chartFor(m).addLive(l.t / 1000, l.value);
      }
    }

    this.filter = `${id}/+`;
    this.live.subscribe(this.filter, Date.now() - LIVE_WINDOW_S * 1000);

    try {
      const d = await api.device(id);
      if (this.id !== id) return;
      if (!d) this.showNote(`vigil knows no device "${id}".`);
      else this.showHeader(this.fleet.devices.get(id) || null, d);
    } catch (e) {
      if (this.id === id) this.showNote(`Could not load the device: ${e.message}`);
    }
    this.loadAnomalies(id);
  }

  close() {
    if (this.filter) this.live.unsubscribe(this.filter);
    this.filter = null;
    this.fetches?.abort();
    this.fetches = null;
    for (const c of this.charts.values()) c.destroy();
    this.charts.clear();
    this.range = null;
    this.anomalyItems = [];
    this.els.backToLive.hidden = true;
    this.els.rangeLabel.textContent = '';
    this.id = null;
  }

  showHeader(state, fromApi = null) {
    const status = state?.status || fromApi?.status || 'unknown';
    this.els.status.dataset.status = status;
    this.els.status.title = status;
    const meta = state?.meta || fromApi?.meta;
    const bits = [status];
    if (meta?.model) bits.push(`model ${meta.model}`);
    if (meta?.location) bits.push(`at ${meta.location.lat.toFixed(3)}, ${meta.location.lon.toFixed(3)}`);
    this.els.meta.textContent = bits.join(' · ');
  }

  showNote(text) {
    this.els.note.textContent = text;
    this.els.note.hidden = false;
  }

  chartFor(metric) {
    let c = this.charts.get(metric);
    if (!c) {
      const unit = this.fleet.devices.get(this.id)?.unit(metric) || '';
      c = new MetricChart(this.els.charts, metric, unit, (from, to) => this.zoom(from, to));
      this.charts.set(metric, c);
    }
    return c;
  }

  /** Live readings (all devices): keeps this device's, drawn at the next refresh. */
  onReadings(readings) {
    if (!this.id) return;
    for (const r of readings) {
      if (r.device_id === this.id) this.chartFor(r.metric).addLive(r.t / 1000, r.value);
    }
  }

  onAnomaly(a) {
    if (!this.id || a.device_id !== this.id) return;
    this.chartFor(a.metric).addAnomaly(a);
    this.anomalyItems.unshift(a);
    this.renderAnomalies();
  }

  refresh() {
    for (const c of this.charts.values()) c.refresh();
  }

  async loadAnomalies(id) {
    try {
      const answer = await api.anomalies(id, Date.now() - ANOMALY_LOOKBACK_MS);
      if (this.id !== id) return;
      for (const a of answer.anomalies) {
        a.t = Date.parse(a.ts);
        this.chartFor(a.metric).addAnomaly(a);
      }
      // Live ones may have arrived meanwhile: keep them, newest first, no duplicates.
      const seen = new Set(this.anomalyItems.map((a) => `${a.metric}@${a.t}`));
      for (const a of answer.anomalies) if (!seen.has(`${a.metric}@${a.t}`)) this.anomalyItems.push(a);
      this.anomalyItems.sort((p, q) => q.t - p.t);
      this.renderAnomalies();
    } catch (e) {
      if (this.id !== id) return;
      this.els.anomalyNote.textContent =
        e instanceof api.ApiError && e.missing
          ? 'Anomaly detection is not available in this vigil.'
          : `Could not load anomalies: ${e.message}`;
    }
  }

  renderAnomalies() {
    this.anomalyItems.length = Math.min(this.anomalyItems.length, ANOMALY_LIST_MAX);
    const list = this.els.anomalyList;
    list.textContent = '';
    this.els.anomalyNote.textContent = this.anomalyItems.length
      ? ''
      : 'No anomaly in the last 24 hours.';
    for (const a of this.anomalyItems) {
      const li = document.createElement('li');
      const when = new Date(a.t).toLocaleString();
      li.textContent = `${when} — ${a.metric} = ${a.value} (score ${Number(a.score).toFixed(2)}, ${a.detector}) ${a.explanation || ''}`;
      list.appendChild(li);
    }
  }

  /** Zooms every chart to [fromS, toS] (seconds) with history from the server. */
  async zoom(fromS, toS) {
    const id = this.id;
    this.range = [fromS, toS];
    this.els.backToLive.hidden = false;
    this.els.rangeLabel.textContent =
      `${new Date(fromS * 1000).toLocaleTimeString()} – ${new Date(toS * 1000).toLocaleTimeString()}`;
    this.fetches?.abort();
    const ctl = new AbortController();
    this.fetches = ctl;
    await Promise.all(
      [...this.charts.values()].map(async (c) => {
        c.note('loading history…');
        try {
          const answer = await api.readings(id, c.metric, fromS * 1000, toS * 1000, c.plotWidth(), ctl.signal);
          if (this.fetches === ctl) c.showHistory(answer, fromS, toS);
        } catch (e) {
          if (e.name === 'AbortError' || this.fetches !== ctl) return;
          c.note(
            e instanceof api.ApiError && e.missing
              ? 'history is not available in this vigil'
              : `history failed: ${e.message}`,
          );
        }
      }),
    );
  }

  goLive() {
    this.fetches?.abort();
    this.fetches = null;
    this.range = null;
    this.els.backToLive.hidden = true;
    this.els.rangeLabel.textContent = '';
    for (const c of this.charts.values()) c.goLive();
  }
}
