// The live feed: one WebSocket to /ws that survives restarts of vigil and network hiccups.
//
// Subscriptions are remembered here, not in the socket: after every (re)connect each one is
// sent again with a `since` just before the newest reading already received, so the server
// backfills what was missed while disconnected and the charts have no gap. Overlap at the
// seam is harmless: the series buffers drop readings they already hold (see series.js).

/** Connection states, shown by the indicator. */
export const State = Object.freeze({
  CONNECTING: 'connecting',
  LIVE: 'live',
  RECONNECTING: 'reconnecting',
  UNAVAILABLE: 'unavailable',
});

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;
// Device clocks and commit order differ slightly: ask for a little more than the newest
// timestamp seen, duplicates are dropped anyway.
const SEAM_MARGIN_MS = 5_000;

export class LiveConnection {
  /**
   * @param {object} handlers `onReadings(array)`, `onDevice(msg)`, `onAnomaly(msg)`,
   *   `onState(state, detail)`, `onLagged(n)`; all optional.
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    /** filter -> { since: ms|null } (since used for the first subscribe only). */
    this.filters = new Map();
    this.ws = null;
    this.state = null;
    this.backoff = MIN_BACKOFF_MS;
    this.timer = null;
    // Newest reading timestamp received over this page's life (ms), for resubscribes.
    this.newestTs = null;
    this.everConnected = false;
  }

  start() {
    this.setState(State.CONNECTING);
    this.connect();
  }

  /** Adds a filter; `sinceMs` asks the server to backfill from then on. */
  subscribe(filter, sinceMs = null) {
    this.filters.set(filter, { since: sinceMs });
    this.send({ op: 'subscribe', filter, ...(sinceMs != null ? { since: iso(sinceMs) } : {}) });
  }

  unsubscribe(filter) {
    if (this.filters.delete(filter)) this.send({ op: 'unsubscribe', filter });
  }

  /** Marks the feed as not served by this vigil (no /ws route): no reconnect attempts. */
  markUnavailable() {
    clearTimeout(this.timer);
    this.setState(State.UNAVAILABLE);
  }

  setState(state, detail = '') {
    if (this.state === state && !detail) return;
    this.state = state;
    this.handlers.onState?.(state, detail);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  connect() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = MIN_BACKOFF_MS;
      const resumeFrom = this.newestTs != null ? this.newestTs - SEAM_MARGIN_MS : null;
      for (const [filter, sub] of this.filters) {
        // First subscribe: the caller's since. Later ones: resume where the feed stopped.
        const since = this.everConnected && resumeFrom != null ? resumeFrom : sub.since;
        this.send({ op: 'subscribe', filter, ...(since != null ? { since: iso(since) } : {}) });
      }
      this.everConnected = true;
      this.setState(State.LIVE);
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry(ev.reason || `closed (${ev.code})`);
    };
    // An error is always followed by close; the retry happens there.
    ws.onerror = () => {};
  }

  retry(reason) {
    if (this.state === State.UNAVAILABLE) return;
    this.setState(this.everConnected ? State.RECONNECTING : State.CONNECTING, reason);
    // Full jitter: many pages reconnecting after a vigil restart do not arrive at once.
    const wait = Math.round(this.backoff / 2 + Math.random() * (this.backoff / 2));
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  dispatch(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('vigil: unreadable live message', data);
      return;
    }
    switch (msg.type) {
      case 'readings': {
        const rs = msg.readings;
        // Parse times once here; everything downstream works in epoch milliseconds.
        for (const r of rs) {
          r.t = Date.parse(r.ts);
          if (this.newestTs == null || r.t > this.newestTs) this.newestTs = r.t;
        }
        this.handlers.onReadings?.(rs);
        break;
      }
      case 'device':
        this.handlers.onDevice?.(msg);
        break;
      case 'anomaly':
        msg.t = Date.parse(msg.ts);
        this.handlers.onAnomaly?.(msg);
        break;
      case 'lagged':
        this.handlers.onLagged?.(msg.skipped);
        break;
      case 'error':
        console.warn('vigil live feed:', msg.message);
        break;
      case 'subscribed':
      case 'unsubscribed':
      case 'alert':
        break;
      default:
        console.debug('vigil: unknown live message type', msg.type);
    }
  }
}

function iso(ms) {
  return new Date(ms).toISOString();
}
