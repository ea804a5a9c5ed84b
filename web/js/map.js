// Device locations as a lat/lon scatter on a canvas: no tile server, so it works offline.
//
// An equirectangular projection around the fleet's own bounding box, with longitude
// squeezed by cos(latitude) so distances look right at the fleet's latitude. A faint
// graticule gives a sense of scale. Clicking a dot opens that device.

const PAD = 18;

export class FleetMap {
  constructor(canvas, note, model, onOpen) {
    this.canvas = canvas;
    this.note = note;
    this.model = model;
    this.drawnVersion = -1;
    this.points = []; // [x, y, id] in CSS pixels, for hit testing
    canvas.addEventListener('click', (ev) => {
      const id = this.hit(ev.offsetX, ev.offsetY);
      if (id) onOpen(id);
    });
    canvas.addEventListener('mousemove', (ev) => {
      const id = this.hit(ev.offsetX, ev.offsetY);
      canvas.style.cursor = id ? 'pointer' : 'default';
      canvas.title = id || '';
    });
  }

  hit(x, y) {
    let best = null;
    let bestD = 64; // within 8 px
    for (const [px, py, id] of this.points) {
      const d = (px - x) ** 2 + (py - y) ** 2;
      if (d < bestD) {
        bestD = d;
        best = id;
      }
    }
    return best;
  }

  /** Redraws when the fleet or the filter changed (statuses and new devices). */
  render(force = false) {
    if (!force && this.drawnVersion === this.model.filterVersion) return;
    this.drawnVersion = this.model.filterVersion;
    const { canvas } = this;
    const cssW = canvas.clientWidth || 300;
    const cssH = canvas.clientHeight || 220;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);

    const located = [];
    for (const d of this.model.devices.values()) {
      const loc = d.location();
      if (loc) located.push([loc, d]);
    }
    const missing = this.model.devices.size - located.length;
    this.note.textContent =
      located.length === 0
        ? 'No device has published a location (devices/{device}/meta).'
        : missing > 0
          ? `${missing} device(s) without a location are not shown.`
          : '';
    this.points = [];
    if (located.length === 0) return;

    let [minLat, maxLat, minLon, maxLon] = [90, -90, 180, -180];
    for (const [loc] of located) {
      minLat = Math.min(minLat, loc.lat);
      maxLat = Math.max(maxLat, loc.lat);
      minLon = Math.min(minLon, loc.lon);
      maxLon = Math.max(maxLon, loc.lon);
    }
    // A single point (or a tight cluster) still gets a visible area around it.
    const latSpan = Math.max(maxLat - minLat, 0.01);
    const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
    const lonSpan = Math.max(maxLon - minLon, 0.01);
    const w = cssW - 2 * PAD;
    const h = cssH - 2 * PAD;
    const scale = Math.min(w / (lonSpan * kx), h / latSpan);
    const cx = (minLon + maxLon) / 2;
    const cy = (minLat + maxLat) / 2;
    const project = (lat, lon) => [cssW / 2 + (lon - cx) * kx * scale, cssH / 2 - (lat - cy) * scale];

    drawGraticule(ctx, project, cssW, cssH, scale, kx);

    const shown = new Set(this.model.filtered());
    // Offline first, then online on top; dots outside the filter are faded.
    located.sort((a, b) => (a[1].status === 'online') - (b[1].status === 'online'));
    for (const [loc, d] of located) {
      const [x, y] = project(loc.lat, loc.lon);
      const inFilter = shown.has(d.id);
      ctx.globalAlpha = inFilter ? 1 : 0.15;
      ctx.fillStyle = d.status === 'online' ? '#2e9e44' : '#9aa0a6';
      ctx.beginPath();
      ctx.arc(x, y, 3.5, 0, 2 * Math.PI);
      ctx.fill();
      if (inFilter) this.points.push([x, y, d.id]);
    }
    ctx.globalAlpha = 1;
  }
}

/** Lines every 1, 2, 5, 10… degrees, chosen so that a few fit across the canvas. */
function drawGraticule(ctx, project, w, h, scale, kx) {
  const steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 45];
  const step = steps.find((s) => s * scale * kx >= 50) || 45;
  ctx.strokeStyle = '#e3e6ea';
  ctx.fillStyle = '#8a9099';
  ctx.font = '10px system-ui, sans-serif';
  ctx.lineWidth = 1;
  const [lonL, latT] = unproject(project, 0, 0);
  const [lonR, latB] = unproject(project, w, h);
  for (let lon = Math.ceil(lonL / step) * step; lon <= lonR; lon += step) {
    const [x] = project(0, lon);
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, h);
    ctx.stroke();
    ctx.fillText(`${+lon.toFixed(2)}°`, x + 2, h - 3);
  }
  for (let lat = Math.ceil(latB / step) * step; lat <= latT; lat += step) {
    const [, y] = project(lat, 0);
    ctx.beginPath();
    ctx.moveTo(0, y);
    ctx.lineTo(w, y);
    ctx.stroke();
    ctx.fillText(`${+lat.toFixed(2)}°`, 2, y - 2);
  }
}

/** Inverse of a linear projection, found from two probe points. */
function unproject(project, x, y) {
  const [x0, y0] = project(0, 0);
  const [x1] = project(0, 1);
  const [, y1] = project(1, 0);
  return [(x - x0) / (x1 - x0), (y - y0) / (y1 - y0)];
}
