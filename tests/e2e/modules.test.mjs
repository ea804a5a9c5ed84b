// Unit tests of the page's pure modules (no browser needed): bounded, ordered series and
// the fleet model's filtering. Run: node --test tests/e2e/modules.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Series, lowerBound } from '../../web/js/series.js';
import { FleetModel, formatValue } from '../../web/js/fleet.js';

test('a series keeps at most its capacity, newest last', () => {
  const s = new Series(100);
  for (let i = 0; i < 10_000; i++) s.add(i, i * 2);
  assert.ok(s.length <= 100 + 16, `length ${s.length}`);
  assert.equal(s.lastTime, 9_999);
  assert.equal(s.lastValue, 19_998);
  for (let i = 1; i < s.length; i++) assert.ok(s.xs[i] > s.xs[i - 1]);
});

test('a replayed reading is dropped and a late one is put in its place', () => {
  const s = new Series(50);
  for (const x of [1, 2, 4, 5]) s.add(x, x);
  assert.equal(s.add(4, 99), false, 'duplicate timestamp');
  assert.equal(s.add(3, 3), true, 'late reading');
  assert.deepEqual(s.xs, [1, 2, 3, 4, 5]);
  assert.deepEqual(s.ys, [1, 2, 3, 4, 5]);
});

test('a backfill arriving after live readings fills in before them', () => {
  const s = new Series(1000);
  s.add(100, 1);
  s.add(101, 1);
  for (let x = 50; x <= 101; x++) s.add(x, 0);
  assert.equal(s.length, 52);
  assert.equal(s.xs[0], 50);
  assert.equal(s.ys[s.length - 1], 1, 'the live value at 101 is kept');
});

test('lowerBound finds the first index at or after x', () => {
  assert.equal(lowerBound([1, 3, 5], 0), 0);
  assert.equal(lowerBound([1, 3, 5], 3), 1);
  assert.equal(lowerBound([1, 3, 5], 4), 2);
  assert.equal(lowerBound([1, 3, 5], 9), 3);
});

test('the fleet filter matches id or model, and status', () => {
  const m = new FleetModel();
  m.load([
    { device_id: 'pump-1', status: 'online', meta: { model: 'P-200' }, latest: {} },
    { device_id: 'pump-2', status: 'offline', meta: null, latest: {} },
    { device_id: 'fan-1', status: 'online', meta: { model: 'F-9' }, latest: {} },
  ]);
  assert.deepEqual(m.filtered(), ['fan-1', 'pump-1', 'pump-2']);
  m.setFilter('PUMP', '');
  assert.deepEqual(m.filtered(), ['pump-1', 'pump-2']);
  m.setFilter('p-200', '');
  assert.deepEqual(m.filtered(), ['pump-1']);
  m.setFilter('', 'offline');
  assert.deepEqual(m.filtered(), ['pump-2']);
  // A reading proves a device is up.
  m.addReadings([{ device_id: 'pump-2', metric: 't', t: 1000, value: 1 }]);
  assert.deepEqual(m.filtered(), []);
  assert.deepEqual(m.counts(), { total: 3, online: 3, offline: 0 });
});

test('live readings keep the newest value per metric and a bounded sparkline', () => {
  const m = new FleetModel();
  m.load([{ device_id: 'd', status: 'online', meta: null, latest: {} }]);
  for (let i = 0; i < 1000; i++) m.addReadings([{ device_id: 'd', metric: 't', t: i * 1000, value: i }]);
  m.addReadings([{ device_id: 'd', metric: 't', t: 5, value: -1 }]);
  const d = m.devices.get('d');
  assert.equal(d.latest.get('t').value, 999, 'an older reading does not replace the newest');
  assert.ok(d.spark.get('t').length <= 200);
});

test('values are printed short and readable', () => {
  assert.equal(formatValue(21.456), '21.46');
  assert.equal(formatValue(1013.25), '1013.3');
  assert.equal(formatValue(0), '0.00');
  assert.equal(formatValue(1.5e7), '1.50e+7');
});
