// One metric's chart in the device view, drawn by uPlot (the global from the vendored IIFE).
//
// Two modes. "live": the newest minutes from the live feed, redrawn a few times a second
// from a bounded buffer. "history": a range the user dragged across, fetched from
// /api/v1/readings with max_points about the chart's width in pixels, so any range costs
// the same to fetch and draw (the server keeps each bucket's min and max: peaks stay).
// The chart does not zoom itself on a drag: it reports the range and the device view
// zooms every chart of the device to it, keeping their time axes aligned.

import { Series } from './series.js';
import { formatValue, unitSuffix } from './fleet.js';

/** Seconds of live data shown. */
export const LIVE_WINDOW_S = 300;
/** Points kept per metric in the device view (bounds memory at any reading rate). */
const LIVE_POINTS = 5000;
const HEIGHT = 200;

export class MetricChart {
  constructor(container, metric, unit, onRangeSelected) {
    this.metric = metric;
    this.unit = unit;
    this.buffer = new Series(LIVE_POINTS);
    /** Anomaly markers: [{ x: seconds, value, score, explanation }], newest last, bounded. */
    this.anomalies = [];
    this.mode = 'live';
    this.dirty = true;

    this.el = document.createElement('div');
    this.el.className = 'chart';
    this.el.dataset.metric = metric;
    this.el.dataset.mode = 'live';
    // Reachable from the element, for the end-to-end test and the browser console.
    this.el.vigilChart = this;
    this.el.innerHTML =
      '<div class="chart-head"><b class="metric"></b><span class="value"></span>' +
      '<span class="mode"></span><span class="chart-note"></span></div><div class="plot"></div>';
    this.el.querySelector('.metric').textContent = metric + (unit ? ` (${unit})` : '');
    this.valueEl = this.el.querySelector('.value');
    this.modeEl = this.el.querySelector('.mode');
    this.noteEl = this.el.querySelector('.chart-note');
    container.appendChild(this.el);

    const chart = this;
    const plotEl = this.el.querySelector('.plot');
    this.plot = new uPlot(
      {
        width: Math.max(300, container.clientWidth - 24),
        height: HEIGHT,
        // Drag selects an x range; we fetch history for it instead of uPlot zooming the
        // few live points it holds.
        cursor: { drag: { x: true, y: false, setScale: false } },
        legend: { show: false },
        scales: {
          x: {
            time: true,
            // With no data or one point, still show the live window ending now (or at
            // that point), so the axis is readable and a drag maps to real times.
            range: (u, min, max) => {
              if (min == null || !Number.isFinite(min)) {
                const now = Date.now() / 1000;
                return [now - LIVE_WINDOW_S, now];
              }
              return min === max ? [max - LIVE_WINDOW_S, max + 1] : [min, max];
            },
          },
        },
        series: [
          {},
          {
            label: metric,
            stroke: '#2f7ed8',
            width: 1.5,
            points: { show: false },
            value: (u, v) => (v == null ? '' : formatValue(v) + unitSuffix(unit)),
          },
        ],
        axes: [
          { stroke: '#555', grid: { stroke: '#eee' } },
          {
            stroke: '#555',
            grid: { stroke: '#eee' },
            size: 60,
            label: unit || undefined,
            values: (u, vals) => vals.map((v) => formatValue(v)),
          },
        ],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width < 4) return;
              const from = u.posToVal(u.select.left, 'x');
              const to = u.posToVal(u.select.left + u.select.width, 'x');
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              onRangeSelected(from, to);
            },
          ],
          draw: [(u) => chart.drawAnomalies(u)],
        },
      },
      [[], []],
      plotEl,
    );
    this.setModeLabel();
  }

  /** A live reading (seconds, value). Drawn at the next refresh. */
  addLive(x, y) {
    if (this.buffer.add(x, y)) this.dirty = true;
  }

  /** An anomaly event to mark on the chart. */
  addAnomaly(a) {
    const x = a.t / 1000;
    if (this.anomalies.some((m) => m.x === x)) return;
    this.anomalies.push({ x, value: a.value, score: a.score, explanation: a.explanation });
    this.anomalies.sort((p, q) => p.x - q.x);
    if (this.anomalies.length > 500) this.anomalies.splice(0, this.anomalies.length - 500);
    this.dirty = true;
  }

  /** Redraws the live window when something new arrived. */
  refresh() {
    if (this.mode !== 'live' || !this.dirty) return;
    this.dirty = false;
    const { xs, ys } = this.buffer;
    const from = (xs[xs.length - 1] ?? 0) - LIVE_WINDOW_S;
    let i = 0;
    while (i < xs.length && xs[i] < from) i++;
    this.draw(xs.slice(i), ys.slice(i), 'live');
  }

  draw(xs, ys, source) {
    this.plot.setData([xs, ys]);
    this.el.dataset.points = String(xs.length);
    this.el.dataset.source = source;
    const last = ys[ys.length - 1];
    if (last !== undefined) {
      this.el.dataset.last = String(last);
      this.el.dataset.lastTs = String(xs[xs.length - 1]);
      this.valueEl.textContent = formatValue(last) + unitSuffix(this.unit);
    }
  }

  /** Shows a fetched history answer (`points` as the API gives them). */
  showHistory(answer, fromS, toS) {
    this.mode = 'history';
    this.el.dataset.mode = 'history';
    const xs = answer.points.map((p) => Date.parse(p.ts) / 1000);
    const ys = answer.points.map((p) => p.value);
    this.draw(xs, ys, 'history');
    // Keep the chosen range even where the series has no data at its ends.
    this.plot.setScale('x', { min: fromS, max: toS });
    this.note(answer.downsampled ? `${xs.length} points (downsampled)` : `${xs.length} points`);
    this.setModeLabel();
  }

  goLive() {
    this.mode = 'live';
    this.el.dataset.mode = 'live';
    this.note('');
    this.dirty = true;
    this.refresh();
    this.setModeLabel();
  }

  note(text) {
    this.noteEl.textContent = text;
  }

  setModeLabel() {
    this.modeEl.textContent = this.mode === 'live' ? 'live' : 'history';
    this.modeEl.dataset.mode = this.mode;
  }

  /** Width of the plotting area in CSS pixels: about one point per pixel is enough. */
  plotWidth() {
    return Math.max(100, Math.round(this.plot.bbox.width / (window.devicePixelRatio || 1)));
  }

  resize(width) {
    this.plot.setSize({ width: Math.max(300, width - 24), height: HEIGHT });
  }

  /** Red rings at anomalies, with a faint line so one off the y range is still seen. */
  drawAnomalies(u) {
    if (this.anomalies.length === 0) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const min = u.scales.x.min;
    const max = u.scales.x.max;
    ctx.save();
    for (const a of this.anomalies) {
      if (a.x < min || a.x > max) continue;
      const x = u.valToPos(a.x, 'x', true);
      ctx.strokeStyle = 'rgba(214, 40, 40, 0.35)';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      if (Number.isFinite(a.value)) {
        const y = u.valToPos(a.value, 'y', true);
        if (y >= top && y <= top + height && x >= left && x <= left + width) {
          ctx.strokeStyle = '#d62828';
          ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
          ctx.beginPath();
          ctx.arc(x, y, 5 * (window.devicePixelRatio || 1), 0, 2 * Math.PI);
          ctx.stroke();
        }
      }
    }
    ctx.restore();
    this.el.dataset.anomalies = String(this.anomalies.length);
  }

  destroy() {
    this.plot.destroy();
    this.el.remove();
  }
}
