// `simcred devices run` and `simcred operator suspend|resume|delete` against a `simcred up` this test
// starts as a user would (a child process on a fresh data folder, free ports).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import type { DevicesRunSummary } from '../../src/system/devices-run.js';
import { initPki, manufactureDevices } from '../../src/pki/index.js';
import { lastJsonLine, runCli, startUp, type CliResult } from '../helpers/cli.js';

describe('simcred devices run, against a running simcred up', { concurrency: false }, () => {
  let ws: BenchWorkspace;
  let up: ChildProcess;
  let dsimIds: string[];
  /** The devices the first run onboarded. */
  let onboardedFirst: string[] = [];
  const cli = (...args: string[]) => runCli([...args, '--dir', ws.dataDir], { env: ws.env });
  const json = <T>(r: CliResult): T => {
    assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return lastJsonLine<T>(r.stdout);
  };

  /** Waits (bounded) until the device's audit trail shows `event`: the outbox reaches the HSS in the background. */
  async function audited(dsimId: string, event: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const state = json<{ audit: { event: string }[] }>(await cli('operator', 'state', dsimId));
      if (state.audit.some((e) => e.event === event)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.fail(`${dsimId} never showed ${event}`);
  }

  before(async () => {
    ws = await benchWorkspace();
    await initPki(ws.config.pkiDir);
    ({ child: up } = await startUp(['--dir', ws.dataDir], ws.env));
    // Four devices of this system; three registered (in manufacturing order), one not.
    const made = await manufactureDevices({
      dir: ws.config.pkiDir,
      count: 4,
      registrationServers: ws.urls.registration,
      servers: { phlr: ws.urls.phlr, ocsp: ws.urls.ocsp, hss: ws.urls.hss },
      workers: 0,
    });
    dsimIds = made.devices.map((d) => d.dsimId);
    const list = join(ws.dataDir, 'devices.ndjson');
    writeFileSync(
      list,
      dsimIds
        .slice(0, 3)
        .map((dsimId, i) =>
          JSON.stringify({
            dsimId,
            registrationServer: ws.urls.registration[i % ws.urls.registration.length],
          }),
        )
        .join('\n'),
    );
    assert.equal(
      json<{ registered: number }>(await cli('operator', 'register', '--file', list, '--json')).registered,
      3,
    );
  });
  after(() => {
    try {
      process.kill(-up.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    ws?.cleanup();
  });

  test('--count 2 onboards the next two registered devices; the table and --json say so', async () => {
    const summary = json<DevicesRunSummary>(await cli('devices', 'run', '--count', '2', '--json'));
    assert.deepEqual(
      summary.results.map((r) => [r.action, r.ok]),
      [
        ['onboard', true],
        ['onboard', true],
      ],
    );
    assert.equal(summary.onboarded, 2);
    assert.match(summary.results[0]!.imsi!, /^\d{15}$/);
    onboardedFirst = summary.results.map((r) => r.dsimId);
    const registered = dsimIds.slice(0, 3);
    for (const dsimId of onboardedFirst) assert.ok(registered.includes(dsimId), dsimId);
    // The next run takes the third: the first two hold their credentials, the fourth is not registered.
    const third = registered.find((d) => !onboardedFirst.includes(d))!;
    const table = await cli('devices', 'run', '--count', '5');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`${third}\\s+onboard\\s+attached`));
    assert.match(table.stdout, /devices 1: onboarded 1, re-provisioned 0, attached only 0, failed 0/);
    const none = await cli('devices', 'run', '--count', '1', '--json');
    assert.equal(json<DevicesRunSummary>(none).devices, 0);
    assert.match(none.stderr, /no registered device waits to onboard/);
  });

  test('a device that holds its credential attaches only; suspended it is refused, resumed it attaches, deleted it is ended', async () => {
    const dsimId = onboardedFirst[0]!;
    const attach = async () =>
      lastJsonLine<DevicesRunSummary>((await cli('devices', 'run', '--dsim', dsimId, '--json')).stdout);
    const first = await attach();
    assert.deepEqual(
      first.results.map((r) => [r.action, r.ok]),
      [['attach', true]],
    );

    assert.deepEqual(json(await cli('operator', 'suspend', dsimId, '--reason', 'unpaid')), {
      dsimId,
      state: 'suspended',
    });
    await audited(dsimId, 'subscriber-suspended');
    const refused = await cli('devices', 'run', '--dsim', dsimId, '--json');
    assert.equal(refused.code, 1, 'a failed device makes the exit code 1');
    assert.equal(
      lastJsonLine<DevicesRunSummary>(refused.stdout).results[0]!.error?.code,
      'SIMCRED_SUBSCRIPTION_SUSPENDED',
    );

    assert.deepEqual(json(await cli('operator', 'resume', dsimId)), { dsimId, state: 'completed' });
    await audited(dsimId, 'subscriber-resumed');
    assert.equal((await attach()).attached, 1);

    assert.deepEqual(json(await cli('operator', 'delete', dsimId)), { dsimId, state: 'deleted' });
    await audited(dsimId, 'subscriber-deleted');
    assert.equal((await attach()).results[0]!.error?.code, 'SIMCRED_SUBSCRIPTION_ENDED');
  });

  test('the documented refusals: an unknown device, one without a subscription, a bad choice of devices', async () => {
    const unknown = await cli('operator', 'suspend', 'DSIM0000000000000000');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /\(SIMCRED_REGISTRATION_UNKNOWN\)\n$/);
    const notYet = await cli('operator', 'resume', dsimIds[3]!);
    assert.match(notYet.stderr, /\(SIMCRED_REGISTRATION_UNKNOWN\)\n$/);
    // Registered, never onboarded: register the fourth and suspend it.
    const list = join(ws.dataDir, 'fourth.ndjson');
    writeFileSync(list, JSON.stringify({ dsimId: dsimIds[3], registrationServer: ws.urls.registration[1] }));
    json(await cli('operator', 'register', '--file', list, '--json'));
    const unprovisioned = await cli('operator', 'suspend', dsimIds[3]!);
    assert.match(unprovisioned.stderr, /\(SIMCRED_SUBSCRIPTION_NOT_PROVISIONED\)\n$/);
    const both = await cli('devices', 'run', '--dsim', dsimIds[3]!, '--count', '2');
    assert.match(both.stderr, /\(SIMCRED_CLI_ARGUMENT\)\n$/);
    const stranger = await cli('devices', 'run', '--dsim', 'DSIM00000000000000AB');
    assert.match(stranger.stderr, /no factory image.*\(SIMCRED_CLI_ARGUMENT\)\n$/);
  });

  test('with no system running on the data folder it refuses to start, retryable', async () => {
    process.kill(-up.pid!, 'SIGTERM');
    await new Promise<void>((resolve) => up.once('exit', () => resolve()));
    const r = await cli('devices', 'run', '--count', '1');
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /start `simcred up` on this data folder first \(SIMCRED_DEPENDENCY_UNAVAILABLE\)\n$/,
    );
  });
});
