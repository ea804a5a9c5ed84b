// The fleet: what the page knows about every device, and the virtualised list showing it.
//
// At 1,000 devices and thousands of readings a second, touching the DOM per reading would
// freeze the page. So readings only update plain objects here (cheap), mark the model
// dirty, and the list repaints at most a few times a second, and only the rows in view.

import { Series } from './series.js';

/** Points kept per metric for the sparklines: small, because there are thousands. */
const SPARK_POINTS = 120;
const ROW_HEIGHT = 30;
const OVERSCAN = 6;

/** One device as the page holds it. */
class DeviceState {
  constructor(d) {
    this.id = d.device_id;
    this.status = d.status;
    this.meta = d.meta || null;
    /** metric -> { t: ms, value } */
    this.latest = new Map();
    /** metric -> Series (seconds, value), bounded. */
    this.spark = new Map();
    for (const [metric, l] of Object.entries(d.latest || {})) {
      this.latest.set(metric, { t: Date.parse(l.ts), value: l.value });
    }
  }

  unit(metric) {
    const units = this.meta && this.meta.units;
    return (units && typeof units[metric] === 'string' && units[metric]) || '';
  }

  location() {
    const loc = this.meta && this.meta.location;
    if (!loc || !Number.isFinite(loc.lat) || !Number.isFinite(loc.lon)) return null;
    return loc;
  }

  metrics() {
    return [...this.latest.keys()].sort();
  }
}

/** Every device and its newest values, plus the current filter. */
export class FleetModel {
  constructor() {
    this.devices = new Map();
    this.ids = [];
    this.visible = [];
    this.query = '';
    this.status = '';
    this.version = 0;
    // Bumped when membership, status or the filter changed (what the map shows).
    this.filterVersion = 0;
    this.filterDirty = true;
  }

  /** Replaces the fleet with an API listing. */
  load(list) {
    this.devices.clear();
    for (const d of list) this.devices.set(d.device_id, new DeviceState(d));
    this.ids = [...this.devices.keys()].sort();
    this.touch(true);
  }

  touch(filterChanged = false) {
    this.version++;
    if (filterChanged) {
      this.filterDirty = true;
      this.filterVersion++;
    }
  }

  /** Applies a batch of live readings; unknown devices are added on the fly. */
  addReadings(readings) {
    for (const r of readings) {
      let d = this.devices.get(r.device_id);
      if (!d) {
        d = this.add({ device_id: r.device_id, status: 'online' });
      }
      const prev = d.latest.get(r.metric);
      if (!prev || r.t >= prev.t) d.latest.set(r.metric, { t: r.t, value: r.value });
      let s = d.spark.get(r.metric);
      if (!s) d.spark.set(r.metric, (s = new Series(SPARK_POINTS)));
      s.add(r.t / 1000, r.value);
      // A reading proves the device is up, whatever the last status message said.
      if (d.status !== 'online') {
        d.status = 'online';
        this.filterDirty = true;
        this.filterVersion++;
      }
    }
    this.version++;
  }

  /** Applies a `device` message: status or metadata. */
  updateDevice(msg) {
    const d = this.devices.get(msg.device_id) || this.add({ device_id: msg.device_id, status: 'online' });
    if (msg.status) d.status = msg.status;
    if (msg.meta !== undefined) d.meta = msg.meta;
    this.touch(true);
  }

  add(raw) {
    const d = new DeviceState(raw);
    this.devices.set(d.id, d);
    // Keep ids sorted like the API does; new devices are rare, so a re-sort is fine.
    this.ids.push(d.id);
    this.ids.sort();
    this.touch(true);
    return d;
  }

  setFilter(query, status) {
    this.query = query.trim().toLowerCase();
    this.status = status;
    this.touch(true);
  }

  /** The ids passing the filter, recomputed only when something relevant changed. */
  filtered() {
    if (this.filterDirty) {
      const q = this.query;
      this.visible = this.ids.filter((id) => {
        const d = this.devices.get(id);
        if (this.status && d.status !== this.status) return false;
        if (!q) return true;
        const model = (d.meta && typeof d.meta.model === 'string' && d.meta.model.toLowerCase()) || '';
        return id.toLowerCase().includes(q) || model.includes(q);
      });
      this.filterDirty = false;
    }
    return this.visible;
  }

  counts() {
    let online = 0;
    for (const d of this.devices.values()) if (d.status === 'online') online++;
    return { total: this.devices.size, online, offline: this.devices.size - online };
  }
}

/** The device list: a fixed row height lets it build only the rows in view. */
export class FleetList {
  constructor(model, scroller, spacer, onOpen) {
    this.model = model;
    this.scroller = scroller;
    this.spacer = spacer;
    this.rows = [];
    this.drawnVersion = -1;
    scroller.addEventListener('scroll', () => this.render(true), { passive: true });
    scroller.addEventListener('click', (ev) => {
      const row = ev.target.closest('.row[data-device]');
      if (row) onOpen(row.dataset.device);
    });
  }

  /** Repaints the rows in view; skipped when nothing changed since the last paint. */
  render(force = false) {
    if (!force && this.drawnVersion === this.model.version) return;
    this.drawnVersion = this.model.version;
    const ids = this.model.filtered();
    this.spacer.style.height = `${ids.length * ROW_HEIGHT}px`;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(ids.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const needed = last - first;
    while (this.rows.length < needed) this.rows.push(this.makeRow());
    for (let i = 0; i < this.rows.length; i++) {
      const row = this.rows[i];
      if (i >= needed) {
        row.el.hidden = true;
        continue;
      }
      row.el.hidden = false;
      this.fill(row, this.model.devices.get(ids[first + i]), first + i);
    }
  }

  makeRow() {
    const el = document.createElement('div');
    el.className = 'row device-row';
    el.innerHTML =
      '<span class="c-status"><span class="status-dot"></span></span>' +
      '<span class="c-id"></span><span class="c-values"></span>' +
      '<span class="c-spark"><canvas width="120" height="22"></canvas></span>';
    this.scroller.appendChild(el);
    return {
      el,
      dot: el.querySelector('.status-dot'),
      id: el.querySelector('.c-id'),
      values: el.querySelector('.c-values'),
      canvas: el.querySelector('canvas'),
    };
  }

  fill(row, d, index) {
    row.el.style.transform = `translateY(${index * ROW_HEIGHT}px)`;
    row.el.dataset.device = d.id;
    row.el.dataset.status = d.status;
    row.dot.dataset.status = d.status;
    row.dot.title = d.status;
    row.id.textContent = d.id;
    const parts = [];
    for (const m of d.metrics().slice(0, 4)) {
      parts.push(`${m} ${formatValue(d.latest.get(m).value)}${unitSuffix(d.unit(m))}`);
    }
    row.values.textContent = parts.length ? parts.join('  ·  ') : 'no readings yet';
    const first = d.metrics()[0];
    drawSpark(row.canvas, first ? d.spark.get(first) : null, d.status === 'online');
  }
}

/** A tiny line of the newest points, scaled to its own min and max. */
function drawSpark(canvas, series, online) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (!series || series.length < 2) return;
  const { xs, ys } = series;
  let lo = Infinity;
  let hi = -Infinity;
  for (const y of ys) {
    if (y < lo) lo = y;
    if (y > hi) hi = y;
  }
  const span = hi - lo || 1;
  const x0 = xs[0];
  const xspan = xs[xs.length - 1] - x0 || 1;
  ctx.strokeStyle = online ? '#2f7ed8' : '#999';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let i = 0; i < xs.length; i++) {
    const x = ((xs[i] - x0) / xspan) * (w - 2) + 1;
    const y = h - 2 - ((ys[i] - lo) / span) * (h - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.stroke();
}

/** A readable number: few digits, no exponent for ordinary sensor values. */
export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : 2);
}

export function unitSuffix(unit) {
  return unit ? ` ${unit}` : '';
}
