// Wiring of the page: load the fleet, open the live feed, route between the fleet overview
// (`#/`) and a device (`#/device/<id>`), and repaint on a fixed cadence.
//
// Rendering is decoupled from arrival: messages update the models immediately, and one
// timer repaints what changed at most REPAINT_MS apart. That keeps the page smooth at
// thousands of readings a second, whatever the batching of the server.

import * as api from './api.js';
import { LiveConnection, State } from './live.js';
import { FleetModel, FleetList } from './fleet.js';
import { FleetMap } from './map.js';
import { DeviceView } from './device.js';

const REPAINT_MS = 250;
const ALERTS_POLL_MS = 30_000;
// Backfill a little before the listing so nothing between listing and subscribe is lost.
const LISTING_MARGIN_MS = 2_000;

const $ = (id) => document.getElementById(id);

const fleet = new FleetModel();
const openDevice = (id) => {
  location.hash = `#/device/${encodeURIComponent(id)}`;
};
const list = new FleetList(fleet, $('device-list'), $('device-list-spacer'), openDevice);
const map = new FleetMap($('map'), $('map-note'), fleet, openDevice);

const live = new LiveConnection({
  onReadings(rs) {
    fleet.addReadings(rs);
    deviceView.onReadings(rs);
  },
  onDevice(msg) {
    fleet.updateDevice(msg);
  },
  onAnomaly(a) {
    deviceView.onAnomaly(a);
  },
  onLagged(n) {
    // The server skipped messages for us: say so rather than pretend the charts are whole.
    showConn(live.state, `${n} message(s) skipped: this page fell behind`);
  },
  onState(state, detail) {
    showConn(state, detail);
  },
});

const deviceView = new DeviceView(
  {
    title: $('dev-title'),
    status: $('dev-status'),
    meta: $('dev-meta'),
    note: $('device-note'),
    charts: $('charts'),
    anomalyList: $('anomaly-list'),
    anomalyNote: $('anomaly-note'),
    backToLive: $('back-to-live'),
    rangeLabel: $('range-label'),
  },
  fleet,
  live,
);

function showConn(state, detail = '') {
  const el = $('conn');
  el.dataset.state = state;
  const text = {
    [State.CONNECTING]: 'connecting',
    [State.LIVE]: 'live',
    [State.RECONNECTING]: 'reconnecting',
    [State.UNAVAILABLE]: 'live feed not available',
  }[state];
  $('conn-text').textContent = text;
  el.title = detail ? `${text}: ${detail}` : text;
}

function showSummary() {
  const c = fleet.counts();
  $('fleet-summary').textContent = `${c.total} devices · ${c.online} online · ${c.offline} offline`;
  $('fleet-summary').dataset.total = String(c.total);
  const shown = fleet.filtered().length;
  $('shown-count').textContent = shown === c.total ? '' : `${shown} shown`;
}

function route() {
  const m = location.hash.match(/^#\/device\/(.+)$/);
  const isDevice = Boolean(m);
  $('fleet-view').hidden = isDevice;
  $('device-view').hidden = !isDevice;
  if (isDevice) {
    deviceView.open(decodeURIComponent(m[1]));
  } else {
    deviceView.close();
    // The list was hidden: its size may have changed.
    list.render(true);
    map.render(true);
  }
}

function repaint() {
  if (document.hidden) return;
  if ($('device-view').hidden) {
    list.render();
    map.render();
  } else {
    deviceView.refresh();
  }
  showSummary();
}

function wireFilters() {
  const apply = () => {
    fleet.setFilter($('search').value, $('status-filter').value);
    $('device-list').scrollTop = 0;
    repaint();
  };
  $('search').addEventListener('input', apply);
  $('status-filter').addEventListener('change', apply);
}

/** The alerts panel appears only once vigil serves alerts; nothing is shown before that. */
async function pollAlerts() {
  try {
    const answer = await api.alerts();
    if (answer && Array.isArray(answer.alerts)) {
      const panel = $('alerts-panel');
      const ul = $('alerts-list');
      panel.hidden = false;
      ul.textContent = '';
      for (const a of answer.alerts) {
        const li = document.createElement('li');
        li.textContent = [a.state, a.rule, a.device_id, a.message].filter(Boolean).join(' · ');
        ul.appendChild(li);
      }
      if (answer.alerts.length === 0) ul.innerHTML = '<li class="muted">no alert firing</li>';
    }
  } catch (e) {
    console.warn('vigil: alerts', e.message);
  }
  setTimeout(pollAlerts, ALERTS_POLL_MS);
}

/**
 * The first listing. vigil answers 503 until its registry is loaded (just after a start),
 * and may be unreachable for a moment: both are retried with back-off, saying so.
 */
async function loadFleet() {
  const note = $('fleet-error');
  for (let wait = 500; ; wait = Math.min(wait * 2, 10_000)) {
    try {
      fleet.load(await api.allDevices());
      note.hidden = true;
      return;
    } catch (e) {
      note.hidden = false;
      if (e instanceof api.ApiError && e.missing) {
        note.textContent =
          'The devices list is not available in this vigil; devices appear as their readings arrive.';
        return;
      }
      if (e instanceof api.ApiError && e.status < 500) {
        note.textContent = `Could not load the devices: ${e.message}`;
        return;
      }
      note.textContent = `Waiting for vigil to list the devices (${e.message}); retrying…`;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

async function start() {
  wireFilters();
  window.addEventListener('hashchange', route);
  // Sizes changed: the list's visible range and the map's canvas must be recomputed.
  window.addEventListener('resize', () => {
    list.render(true);
    map.render(true);
  });
  const listedAt = Date.now();
  await loadFleet();
  route();
  repaint();
  // When the fleet first stood on screen, for the scale test (the target is 1 s at 1,000).
  document.body.dataset.fleetShownMs = String(Math.round(performance.now()));
  document.body.dataset.loaded = 'true';

  live.subscribe('#', listedAt - LISTING_MARGIN_MS);
  let served = true;
  try {
    served = await api.liveFeedServed();
  } catch {
    // vigil unreachable right now: the connection's own retries will cope.
  }
  if (served) live.start();
  else live.markUnavailable();

  setInterval(repaint, REPAINT_MS);
  pollAlerts();
}

start();
