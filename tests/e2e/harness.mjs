// What the page tests share: settings from scripts/e2e.sh, a vigil process they can stop
// and start again, condition waits under generous timeouts, and Debian's Chromium.
//
// scripts/e2e.sh passes: VIGIL_BIN (the vigil binary), VIGIL_HTTP_ADDR, VIGIL_DATABASE_URL,
// VIGIL_MQTT_URL (read by vigil itself), E2E_DEVICES (fleet size), E2E_OUT (output dir).

import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (run scripts/e2e.sh)`);
  return v;
}

export const VIGIL_BIN = env('VIGIL_BIN');
export const ADDR = env('VIGIL_HTTP_ADDR');
export const OUT = env('E2E_OUT');
export const DEVICES = Number(env('E2E_DEVICES'));
export const BASE = `http://${ADDR}`;
/** The default wait: long enough for a loaded 2-core machine; no test relies on speed. */
export const LONG = 60_000;
export const INGEST_TOKEN = 'e2e';

mkdirSync(OUT, { recursive: true });
const vigilLog = createWriteStream(join(OUT, 'vigil.log'), { flags: 'a' });

/** Results of one test script, printed as `N passed, N failed` at the end. */
export const results = { passed: 0, skipped: [] };

export class Failure extends Error {}

export function fail(message) {
  throw new Failure(message);
}

export function check(cond, message) {
  if (!cond) fail(message);
  results.passed++;
  console.log(`e2e: ok - ${message}`);
}

/** Polls `probe` until it returns a truthy value; fails with `what` after `timeout` ms. */
export async function until(what, probe, timeout = LONG) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      if (e instanceof Failure) throw e;
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`timed out after ${timeout / 1000} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export async function getJson(path) {
  const res = await fetch(`${BASE}${path}`);
  return { status: res.status, body: res.ok ? await res.json() : null };
}

/** vigil as a child process, so a test can restart it. */
export class Vigil {
  constructor() {
    this.proc = null;
  }

  async start() {
    vigilLog.write(`\n=== e2e: starting vigil at ${new Date().toISOString()}\n`);
    const proc = spawn(VIGIL_BIN, ['serve'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // HTTP ingest on, so a test can post a reading of its own (an outlier).
      env: { ...process.env, VIGIL_HTTP__INGEST_TOKEN: INGEST_TOKEN },
    });
    proc.stdout.pipe(vigilLog, { end: false });
    proc.stderr.pipe(vigilLog, { end: false });
    proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.proc = proc;
    await until('vigil to answer /readyz', async () => {
      if (proc.exitCode !== null) fail(`vigil exited early (code ${proc.exitCode}); see ${OUT}/vigil.log`);
      return (await fetch(`${BASE}/readyz`)).ok;
    });
  }

  /** SIGTERM, then wait for the exit (SIGKILL only if it hangs past the long timeout). */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    await Promise.race([proc.exited, new Promise((r) => setTimeout(r, LONG))]);
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  }
}

/** Debian's Chromium, headless; these flags keep it off the (closed) network. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Runs `body`, always runs `cleanup`, prints the summary line and sets the exit code. */
export async function main(body, cleanup) {
  let failed = 0;
  try {
    await body();
  } catch (e) {
    failed = 1;
    console.error(`e2e: FAILED: ${e instanceof Failure ? e.message : e.stack || e.message}`);
  } finally {
    await cleanup().catch((e) => console.error(`e2e: cleanup: ${e.message}`));
    vigilLog.end();
  }
  for (const s of results.skipped) console.log(`e2e: skipped - ${s}`);
  const skipped = results.skipped.length ? `, ${results.skipped.length} skipped` : '';
  console.log(`e2e: ${results.passed} passed, ${failed} failed${skipped}`);
  process.exitCode = failed;
}
