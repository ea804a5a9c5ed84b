// HTTP calls to vigil's JSON API, with one rule for "not there": a 404 whose body is not
// vigil's JSON error means the route itself is missing (an older vigil, a feature not
// served yet), which the page shows as "not available" instead of failing.

/** An API answer that is not 2xx. `missing` is true when the route does not exist. */
export class ApiError extends Error {
  constructor(status, message, missing) {
    super(message);
    this.status = status;
    this.missing = missing;
  }
}

async function getJson(path, { signal } = {}) {
  const res = await fetch(path, { signal });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
    // vigil answers its own 404s (unknown device or metric) as {"error": ...}.
    const missing = (res.status === 404 || res.status === 405) && !(body && body.error);
    throw new ApiError(res.status, message, missing);
  }
  return body;
}

/** Every device, fetched page by page (the API caps a page; the fleet may be larger). */
export async function allDevices(pageSize = 1000) {
  const devices = [];
  for (let offset = 0; ; offset += pageSize) {
    const page = await getJson(`/api/v1/devices?limit=${pageSize}&offset=${offset}`);
    devices.push(...page.devices);
    if (page.devices.length === 0 || devices.length >= page.total) return devices;
  }
}

/** One device, or null when vigil does not know it. */
export async function device(id) {
  try {
    return await getJson(`/api/v1/devices/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && !e.missing) return null;
    throw e;
  }
}

/**
 * History of one series between two instants (ms), downsampled by the server to at most
 * `maxPoints` points with peaks kept, so a zoom over a year costs the same as an hour.
 */
export async function readings(deviceId, metric, fromMs, toMs, maxPoints, signal) {
  const q = new URLSearchParams({
    device: deviceId,
    metric,
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    max_points: String(Math.max(2, Math.round(maxPoints))),
  });
  return getJson(`/api/v1/readings?${q}`, { signal });
}

/** Recent anomalies of one device, newest first. */
export async function anomalies(deviceId, fromMs, limit = 200) {
  const q = new URLSearchParams({
    device: deviceId,
    from: new Date(fromMs).toISOString(),
    limit: String(limit),
  });
  return getJson(`/api/v1/anomalies?${q}`);
}

/** Firing alerts, or null while vigil serves no alerts API. */
export async function alerts() {
  try {
    return await getJson('/api/v1/alerts');
  } catch (e) {
    if (e instanceof ApiError && e.missing) return null;
    throw e;
  }
}

/** Whether the WebSocket route exists (a plain GET is refused, but not with 404). */
export async function liveFeedServed() {
  const res = await fetch('/ws');
  return res.status !== 404;
}
