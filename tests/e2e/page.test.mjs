// End-to-end test of vigil's live page in headless Chromium (Debian's, via playwright-core).
//
// Run by scripts/e2e.sh, which starts PostgreSQL, Mosquitto and a vigil-sim fleet (see
// harness.mjs for what it passes). This script runs vigil itself, because it restarts it
// to check the reconnect.
//
// Every wait is for a condition under a generous timeout; nothing asserts on timing.

import { join } from 'node:path';
import {
  ADDR, BASE, DEVICES, INGEST_TOKEN, LONG, OUT, Vigil, check, getJson, launchChromium, main, results, until,
} from './harness.mjs';

const vigil = new Vigil();
let browser = null;

async function run() {
  await vigil.start();

  // Readiness of the data: the whole simulated fleet is listed with values.
  const listing = await until(`the API to list ${DEVICES} devices with readings`, async () => {
    const { body } = await getJson(`/api/v1/devices?limit=1000`);
    const withValues = body.devices.filter((d) => Object.keys(d.latest).length > 0);
    return body.total >= DEVICES && withValues.length >= DEVICES ? body : null;
  });
  const wsServed = (await fetch(`${BASE}/ws`)).status !== 404;
  if (!wsServed) results.skipped.push('live feed (/ws is not served by this vigil)');

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`e2e: page console error: ${m.text()}`);
  });
  // Anything but vigil itself would be a CDN or tile server: the page must not need one.
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE) && !r.url().startsWith(`ws://${ADDR}`)) foreign.push(r.url());
  });

  // --- fleet overview
  await page.goto(BASE);
  await page.waitForSelector('body[data-loaded="true"]', { timeout: LONG });
  const shownTotal = await page.getAttribute('#fleet-summary', 'data-total');
  check(Number(shownTotal) === listing.total, `the page counts ${listing.total} devices, as the API does (shows ${shownTotal})`);
  const firstRow = await page.getAttribute('.device-row:not([hidden])', 'data-device');
  check(firstRow === listing.devices[0].device_id, `the list starts with ${listing.devices[0].device_id} (got ${firstRow})`);

  // Search narrows the list; clearing it brings everyone back.
  const target = listing.devices[Math.min(3, listing.devices.length - 1)].device_id;
  await page.fill('#search', target);
  await until('the search to narrow the list', async () => {
    const ids = await page.$$eval('.device-row:not([hidden])', (rows) => rows.map((r) => r.dataset.device));
    return ids.length >= 1 && ids.every((id) => id.includes(target));
  });
  check(true, `searching "${target}" shows only matching devices`);
  await page.fill('#search', '');
  // The status filter: the simulated fleet is all online.
  await page.selectOption('#status-filter', 'offline');
  await until('the offline filter to empty the list', async () => (await page.$$('.device-row:not([hidden])')).length === 0);
  await page.selectOption('#status-filter', 'online');
  await until('the online filter to show the fleet', async () => (await page.$$('.device-row:not([hidden])')).length >= Math.min(DEVICES, 20));
  check(true, 'filtering by status shows online devices and no offline ones');
  await page.selectOption('#status-filter', '');

  if (wsServed) {
    await page.waitForSelector('#conn[data-state="live"]', { timeout: LONG });
    check(true, 'the connection indicator shows live');
  }
  await page.waitForTimeout(1500); // let sparklines gather a few points for the screenshot
  await page.screenshot({ path: join(OUT, 'page.png') });
  console.log(`e2e: screenshot ${join(OUT, 'page.png')}`);

  // --- device view
  const device = listing.devices[0];
  const metrics = Object.keys(device.latest).sort();
  await page.click(`.device-row[data-device="${device.device_id}"]`);
  await page.waitForSelector('#device-view:not([hidden])', { timeout: LONG });
  await until(`one chart per metric (${metrics.join(', ')})`, async () =>
    (await page.$$eval('.chart', (cs) => cs.map((c) => c.dataset.metric).sort())).join() === metrics.join(),
  );
  check(true, `the device view has a chart for each of ${metrics.join(', ')}`);
  const chart = `.chart[data-metric="${metrics[0]}"]`;

  if (wsServed) {
    const first = await until('the live chart to draw a value', async () => page.getAttribute(chart, 'data-last-ts'));
    await until('the live chart value to change', async () => (await page.getAttribute(chart, 'data-last-ts')) !== first);
    check(true, `the live chart of ${metrics[0]} moves on with new readings`);
  }

  // --- zoom: drag across the middle of the plot, expect a history request and its drawing
  const over = await page.waitForSelector(`${chart} .u-over`, { timeout: LONG });
  const box = await over.boundingBox();
  const answered = page.waitForResponse((r) => r.url().includes('/api/v1/readings?') && r.url().includes(`metric=${metrics[0]}`), { timeout: LONG });
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.8, y, { steps: 5 });
  await page.mouse.up();
  const response = await answered;
  check(true, `zooming asked vigil for history: ${new URL(response.url()).search}`);
  if (response.status() === 200) {
    const points = (await response.json()).points.length;
    await until('the history answer to be drawn', async () =>
      (await page.getAttribute(chart, 'data-source')) === 'history' &&
      Number(await page.getAttribute(chart, 'data-points')) === points,
    );
    check(points > 0, `the zoomed chart draws the ${points} points of the answer`);
    check(await page.isVisible('#back-to-live'), 'a "back to live" button is offered');
    await page.screenshot({ path: join(OUT, 'device-zoomed.png') });
    await page.click('#back-to-live');
    await until('the chart to be live again', async () => (await page.getAttribute(chart, 'data-mode')) === 'live');
    check(true, '"back to live" returns the charts to the live feed');
  } else {
    const ok = response.status() === 404 && !(await response.text()).includes('"error"');
    check(ok, `history route missing (404), not an error (${response.status()})`);
    await until('the "not available" note', async () => (await page.textContent(`${chart} .chart-note`)).includes('not available'));
    check(true, 'the page says history is not available');
    results.skipped.push('history drawing (/api/v1/readings is not served by this vigil)');
  }

  // --- anomaly markers: an outlier posted into the series is flagged by the detector and
  // marked on the chart and in the list.
  const anomaliesServed = (await getJson(`/api/v1/anomalies?device=${device.device_id}`)).status !== 404;
  if (anomaliesServed && wsServed) {
    // The detector scores a series only after its warm-up: wait for enough readings.
    await until('the series to have 60 stored readings', async () =>
      Number(await page.getAttribute(chart, 'data-points')) >= 60,
    120_000);
    const last = Number(await page.getAttribute(chart, 'data-last'));
    const outlier = last + 1000;
    const res = await fetch(`${BASE}/api/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify([{ device_id: device.device_id, metric: metrics[0], ts: new Date().toISOString(), value: outlier }]),
    });
    check(res.ok, `posted an outlier ${outlier} into ${device.device_id}/${metrics[0]} (HTTP ${res.status})`);
    await until('an anomaly marker on the chart', async () =>
      Number(await page.getAttribute(chart, 'data-anomalies')) >= 1,
    );
    const items = await page.$$eval('#anomaly-list li', (lis) => lis.map((li) => li.textContent));
    check(items.some((t) => t.includes(metrics[0])), `the anomaly is listed: ${items[0]}`);
  } else {
    results.skipped.push('anomaly markers (no /api/v1/anomalies or no live feed in this vigil)');
  }
  await page.screenshot({ path: join(OUT, 'device.png') });

  // --- reconnect: vigil restarts, the page notices, comes back and resumes
  if (wsServed) {
    const stoppedAt = Date.now();
    await vigil.stop();
    await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: LONG });
    check(true, 'with vigil stopped, the indicator shows reconnecting');
    await vigil.start();
    const restartedAt = Date.now();
    await page.waitForSelector('#conn[data-state="live"]', { timeout: LONG });
    check(true, 'after vigil restarts, the indicator is live again');
    const before = await page.getAttribute(chart, 'data-last-ts');
    await until('live values after the reconnect', async () => (await page.getAttribute(chart, 'data-last-ts')) !== before);
    check(true, 'live values flow again after the reconnect (resubscribed)');

    // No gap and no duplicate across the restart: the chart holds exactly the stored
    // readings of its window. Readings still in flight make the two differ for a moment,
    // so compare until they agree (a real gap never would), leaving out the newest 5 s.
    const api = `/api/v1/readings?device=${device.device_id}&metric=${metrics[0]}&max_points=10000`;
    let detail = '';
    await until('the chart to hold exactly the stored readings across the restart', async () => {
      const xs = await page.$eval(chart, (el) => el.vigilChart.buffer.xs.map((x) => Math.round(x * 1000)));
      const lo = xs[0];
      const hi = xs[xs.length - 1] - 5000;
      // The compared window must span the whole outage.
      if (lo > stoppedAt || hi < restartedAt) return null;
      const from = new Date(lo - 1000).toISOString();
      const to = new Date(hi + 1000).toISOString();
      const { body } = await getJson(`${api}&from=${from}&to=${to}`);
      if (body.downsampled) fail('history answered downsampled points for a short raw range');
      const stored = body.points.map((p) => Date.parse(p.ts)).filter((t) => t > lo && t < hi);
      const shown = xs.filter((t) => t > lo && t < hi);
      const missing = stored.filter((t) => !shown.includes(t)).length;
      detail =
        `${shown.length} shown, ${stored.length} stored, ${missing} missing over ${((hi - lo) / 1000).toFixed(0)} s ` +
        `spanning a ${((restartedAt - stoppedAt) / 1000).toFixed(1)} s outage`;
      return missing === 0 && shown.length === stored.length ? detail : null;
    }, LONG).catch((e) => fail(`${e.message}; ${detail}`));
    check(true, `the live chart has no gap and no duplicate across the restart (${detail})`);
  }

  check(pageErrors.length === 0, `no uncaught error in the page${pageErrors.length ? `: ${pageErrors.join('; ')}` : ''}`);
  check(foreign.length === 0, `the page loads nothing from elsewhere${foreign.length ? `: ${foreign.join(', ')}` : ''}`);
}

await main(run, async () => {
  await browser?.close().catch(() => {});
  await vigil.stop();
});
