// One time series held in the browser, with a hard cap on its length.
//
// The page runs for days: every buffer is bounded, so memory stays flat however long it is
// open. Times are seconds since the epoch (what uPlot's time axis expects), kept sorted.
// Readings may arrive out of order (a backfill after live readings, overlapping filters):
// they are inserted at their place, and a reading with a timestamp already held is dropped,
// which makes replays at a reconnect seam harmless.

export class Series {
  /** @param {number} capacity the most points kept; the oldest go first. */
  constructor(capacity) {
    this.capacity = capacity;
    this.xs = [];
    this.ys = [];
  }

  get length() {
    return this.xs.length;
  }

  /** Newest value, or undefined when empty. */
  get lastValue() {
    return this.ys[this.ys.length - 1];
  }

  get lastTime() {
    return this.xs[this.xs.length - 1];
  }

  /** Adds one point; returns false when it was a duplicate (or too old to keep). */
  add(x, y) {
    const xs = this.xs;
    const n = xs.length;
    if (n === 0 || x > xs[n - 1]) {
      xs.push(x);
      this.ys.push(y);
    } else {
      const i = lowerBound(xs, x);
      if (xs[i] === x) return false;
      // Older than everything kept in a full buffer: it would be evicted at once.
      if (i === 0 && n >= this.capacity) return false;
      xs.splice(i, 0, x);
      this.ys.splice(i, 0, y);
    }
    // Trim in slices rather than one shift per point: amortised O(1), still bounded.
    if (xs.length > this.capacity + Math.max(16, this.capacity >> 3)) {
      const drop = xs.length - this.capacity;
      xs.splice(0, drop);
      this.ys.splice(0, drop);
    }
    return true;
  }

  /** Drops everything (e.g. leaving a device view). */
  clear() {
    this.xs = [];
    this.ys = [];
  }
}

/** First index whose value is >= x (xs sorted ascending). */
export function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
