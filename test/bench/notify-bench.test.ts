import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import type { NotifyResult } from '../../src/bench/notify.js';

// A smoke run of `simcred bench notify` at a tiny size: correctness only, never timing.
test('bench notify: 8 devices, every state change notified and verified, figures reported', async () => {
  const dir = tempDir('simcred-bench-notify-');
  try {
    const r = await runCli([
      'bench',
      'notify',
      '--devices',
      '8',
      '--concurrency',
      '4',
      '--dir',
      join(dir.path, 'data'),
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /events\/s/);
    const j = lastJsonLine<NotifyResult>(r.stdout);
    assert.equal(j.bench, 'notify');
    assert.equal(j.provisioned, 8);
    assert.equal(j.events, 48, 'six state changes per device, registered … attached');
    assert.equal(j.refused, 0);
    assert.deepEqual(
      j.lagByState.map((s) => [s.state, s.count]),
      ['registered', 'authenticated', 'referred', 'delivered', 'completed', 'attached'].map((s) => [s, 8]),
    );
    for (const value of [j.eventsPerSecond, j.lagMs.p50, j.lagMs.p99]) assert.ok(value >= 0);
    assert.ok(j.lagMs.p99 >= j.lagMs.p50);
  } finally {
    dir.cleanup();
  }
});
