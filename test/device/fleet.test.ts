// The fleet driver's two load shapes (src/device/fleet.ts): closed loop (a next device as soon as one
// finishes) and open loop (devices switched on at a fixed rate, latency counted from switch-on). These
// devices have no factory image, so each fails at once and only the schedule is left to observe. Time
// is a still timer the test hands in, so the outcome depends on neither the machine's load nor its clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet, type FleetOptions } from '../../src/device/fleet.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { tempDir } from '../helpers/cli.js';

function fleet(overrides: Partial<FleetOptions>): Promise<Awaited<ReturnType<typeof runFleet>>> {
  const dir = tempDir('simcred-fleet-');
  return runFleet({
    pkiDir: dir.path, // an empty folder: no device has a factory image here
    dsimIds: [
      'DSIM0000000000000001',
      'DSIM0000000000000002',
      'DSIM0000000000000003',
      'DSIM0000000000000004',
      'DSIM0000000000000005',
    ],
    ocsp: ocspStatusChecker({ urls: ['http://127.0.0.1:9'] }),
    phlrUrl: 'https://127.0.0.1:9',
    hssUrl: 'https://127.0.0.1:9',
    concurrency: 5,
    ...overrides,
  }).finally(() => dir.cleanup());
}

/** Counts the devices under way at once, and the most there ever were. */
function inFlight() {
  let now = 0;
  const counter = {
    most: 0,
    onDeviceStart: () => {
      now += 1;
      counter.most = Math.max(counter.most, now);
    },
    onDeviceDone: () => {
      now -= 1;
    },
  };
  return counter;
}

/** A timer that stands still and only records the waits asked of it (which then end at once). */
function stillTimer() {
  const waits: number[] = [];
  return { waits, timer: { now: () => 1000, sleep: async (ms: number) => void waits.push(ms) } };
}

test('closed loop: `concurrency` devices under way at once, each next one without a wait', async () => {
  for (const concurrency of [5, 2, 1]) {
    const counter = inFlight();
    const { waits, timer } = stillTimer();
    const closed = await fleet({ concurrency, timer, ...counter });
    assert.equal(closed.outcomes.length, 5);
    assert.ok(closed.outcomes.every((o) => !o.ok && o.error !== undefined));
    assert.equal(counter.most, concurrency, `concurrency ${concurrency}`);
    assert.deepEqual(waits, []);
  }
});

test('open loop: devices are switched on at the rate, not all at once', async () => {
  const { waits, timer } = stillTimer();
  const open = await fleet({ ratePerSecond: 20, timer });
  assert.equal(open.outcomes.length, 5);
  assert.ok(open.outcomes.every((o) => !o.ok && o.error !== undefined));
  // The clock stands still: device i waits its whole slot, i / 20 s after the first (which does not wait).
  assert.deepEqual(
    [...waits].sort((a, b) => a - b),
    [50, 100, 150, 200],
  );
});
