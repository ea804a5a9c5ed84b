// The page at fleet scale: how long until the fleet is on screen, and whether the page's
// memory and DOM stay flat while it streams. Measures and prints; it asserts only what
// does not depend on the machine's speed (counts, bounded DOM).
//
//   E2E_SCRIPT=scale.mjs E2E_DEVICES=1000 E2E_RATE=2000 E2E_SOAK_S=600 scripts/e2e.sh

import {
  BASE, DEVICES, Vigil, check, getJson, launchChromium, main, until,
} from './harness.mjs';

const SOAK_S = Number(process.env.E2E_SOAK_S || 60);
const SAMPLE_S = Math.max(5, Math.round(SOAK_S / 10));
const vigil = new Vigil();
let browser = null;

async function metrics(cdp) {
  // Collect garbage first so the numbers show what the page holds, not what it dropped.
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics: m } = await cdp.send('Performance.getMetrics');
  const get = (name) => m.find((x) => x.name === name)?.value ?? NaN;
  return { heapMB: get('JSHeapUsedSize') / 2 ** 20, nodes: get('Nodes') };
}

async function run() {
  await vigil.start();
  const total = await until(`the API to list ${DEVICES} devices`, async () => {
    const { body } = await getJson('/api/v1/devices?limit=1');
    return body.total >= DEVICES ? body.total : null;
  });
  browser = await launchChromium();

  // Cold loads: time from navigation start to the fleet drawn (the page's own mark).
  const shown = [];
  for (let i = 0; i < 3; i++) {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(BASE);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 60_000 });
    const counted = Number(await page.getAttribute('#fleet-summary', 'data-total'));
    check(counted === total, `load ${i + 1}: the page counts all ${total} devices`);
    shown.push(Number(await page.getAttribute('body', 'data-fleet-shown-ms')));
    // Where the time went: the document, the scripts, the devices listing (from the
    // browser's own resource timing).
    const parts = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .concat(performance.getEntriesByType('navigation'))
        .map((e) => `${new URL(e.name).pathname.split('/').pop() || '/'} ${Math.round(e.startTime)}+${Math.round(e.duration)}`),
    );
    console.log(`e2e: measure - load ${i + 1} (start+duration ms): ${parts.join(', ')}`);
    await page.close();
  }
  console.log(`e2e: measure - fleet of ${total} on screen after ${shown.join(', ')} ms (target: 1000 ms)`);

  // Soak: one page left streaming; sample its heap and DOM size.
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(BASE);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 60_000 });
  const samples = [];
  for (let t = 0; t <= SOAK_S; t += SAMPLE_S) {
    if (t > 0) await page.waitForTimeout(SAMPLE_S * 1000);
    const m = await metrics(cdp);
    samples.push(m);
    console.log(`e2e: measure - t=${t}s heap ${m.heapMB.toFixed(1)} MB, DOM nodes ${m.nodes}`);
  }
  const rows = await page.$$eval('.device-row', (r) => r.length);
  check(rows < 100, `the list keeps ${rows} row elements for ${total} devices (virtualised)`);
  const first = samples[1] || samples[0];
  const last = samples[samples.length - 1];
  console.log(
    `e2e: measure - heap after warm-up ${first.heapMB.toFixed(1)} MB, at the end ${last.heapMB.toFixed(1)} MB ` +
      `over ${SOAK_S} s; DOM nodes ${first.nodes} -> ${last.nodes}`,
  );
  check(last.nodes <= first.nodes * 1.2 + 50, `the DOM does not grow while streaming (${first.nodes} -> ${last.nodes} nodes)`);
}

await main(run, async () => {
  await browser?.close().catch(() => {});
  await vigil.stop();
});
