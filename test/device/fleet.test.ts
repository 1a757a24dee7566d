// The fleet driver's two load shapes (src/device/fleet.ts): closed loop (a next device as soon as one
// finishes) and open loop (devices switched on at a fixed rate, latency counted from switch-on). These
// devices have no factory image, so each fails at once and only the schedule is left to observe.
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

test('open loop: devices are switched on at the rate, not all at once', async () => {
  const closed = await fleet({});
  assert.equal(closed.outcomes.length, 5);
  assert.ok(closed.outcomes.every((o) => !o.ok && o.error !== undefined));
  assert.ok(closed.elapsedMs < 200, `closed loop took ${closed.elapsedMs} ms`);

  const open = await fleet({ ratePerSecond: 20 });
  assert.equal(open.outcomes.length, 5);
  // The fifth device is switched on 4 / 20 s = 200 ms after the first.
  assert.ok(open.elapsedMs >= 199, `open loop took ${open.elapsedMs} ms`);
  assert.ok(open.outcomes.every((o) => !o.ok && o.error !== undefined));
});
