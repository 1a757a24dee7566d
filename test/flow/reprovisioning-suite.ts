import { after, before, describe, test } from 'node:test';
/** The PostgreSQL the roles' stores go to; SQLite files in the data folder when undefined. */
type Store = { kind: 'postgres'; url: string } | undefined;
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HssStore } from '../../src/hss/store.js';
import { TrustedModule, MODULE_STATE_FILE, STATE_FILE } from '../../src/device/trusted-module.js';
import { deviceDir, loadFactoryImage } from '../../src/pki/index.js';
import { attachChallenge } from '../../src/protocol/hss.js';
import { roleDatabase } from '../../src/system/start.js';
import { rejectsWith } from '../helpers/assert.js';
import { startTestSystem, type TestSystem } from './harness.js';

/** The device process (test/helpers/device-process.ts), built beside this file. */
const DEVICE_PROCESS = resolve('dist/test/helpers/device-process.js');

type DeviceRun = { outcome?: 'onboarded' | 'up-to-date'; imsi?: string; error?: { code: string } };

/**
 * Re-provisioning (issue #14): the operator's request, the device's own after a factory reset, the
 * order's policy, and a device killed in the middle of installing its new credential. Real roles on
 * loopback; each device is a process of its own whose trusted module persists on disk, so a kill
 * is a real SIGKILL and a restart reads what the module wrote. Run on SQLite (reprovisioning.test.ts)
 * and PostgreSQL (reprovisioning-postgres.test.ts).
 */
export function reprovisioningSuite(name: string, database: () => Promise<Store>): void {
  describe(name, { concurrency: false }, () => {
    let t: TestSystem;
    let byOperator: string;
    let byDevice: string;
    let never: string;

    before(async () => {
      const store = await database();
      t = await startTestSystem(store ? { database: store } : {});
      const dsimIds = await t.manufacture(3);
      [byOperator, byDevice, never] = [dsimIds[0]!, dsimIds[1]!, dsimIds[2]!];
      const server = (i: number) => t.system.urls.registration[i % t.system.urls.registration.length]!;
      const register = (dsimId: string, i: number, reprovision?: 'never' | 'device') =>
        t.operator.registerDevices(
          t.system.urls.credentialing,
          [{ dsimId, registrationServer: server(i) }],
          undefined,
          reprovision ? { reprovision } : {},
        );
      await register(byOperator, 0);
      await register(byDevice, 1, 'device');
      await register(never, 2, 'never');
    });
    after(() => t.close());

    const url = () => t.system.urls.credentialing;

    /** Runs the device in its own process: check in (onboard, or again when re-provisioned) and attach. */
    function runDevice(dsimId: string, options: { killAtInstall?: boolean } = {}) {
      return new Promise<{ code: number | null; signal: NodeJS.Signals | null; run: DeviceRun }>(
        (resolvePromise, reject) => {
          const child = spawn(process.execPath, [DEVICE_PROCESS, t.config.pkiDir, dsimId], {
            env: { ...process.env, ...(options.killAtInstall ? { KILL_AT_MODULE_INSTALL: '1' } : {}) },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let stdout = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.on('error', reject);
          child.on('close', (code, signal) =>
            resolvePromise({
              code,
              signal,
              run: stdout.trim() ? (JSON.parse(stdout.trim().split('\n').at(-1)!) as DeviceRun) : {},
            }),
          );
        },
      );
    }

    /** What the device's module holds on disk now, read as a restarted module would. */
    async function installedImsi(dsimId: string): Promise<string | undefined> {
      return TrustedModule.fromFactoryImage(await loadFactoryImage(t.config.pkiDir, dsimId)).subscription
        ?.imsi;
    }

    async function subscribersOf(dsimId: string) {
      const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
      try {
        return await hss.subscribersOf(dsimId);
      } finally {
        await hss.close();
      }
    }

    /** Waits (bounded) for an audit event of the device: the outbox works in the background. */
    async function auditShows(dsimId: string, event: string, times = 1): Promise<void> {
      for (let i = 0; i < 200; i++) {
        const { audit } = await t.operator.deviceState(url(), dsimId);
        if (audit.filter((e) => e.event === event).length >= times) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail(`${dsimId}: no ${event} ×${times} in its audit trail`);
    }

    const attachWith = (imsi: string) =>
      t.deviceClient.call(t.system.urls.hss, attachChallenge, { body: { imsi } });

    test('the operator re-provisions a device 3 times, killing its module mid-install once: one live subscription each time, the old ones cannot attach', async () => {
      const first = await runDevice(byOperator);
      assert.equal(first.run.outcome, 'onboarded', JSON.stringify(first.run));
      const imsis = [first.run.imsi!];
      // Checked in again with nothing new: up to date, still attaching with what it holds.
      assert.equal((await runDevice(byOperator)).run.outcome, 'up-to-date');

      for (let round = 1; round <= 3; round++) {
        const answer = await t.operator.lifecycle(url(), 'reprovision', byOperator, `round ${round}`);
        assert.deepEqual(answer, { dsimId: byOperator, state: 'registered', generation: round + 1 });
        let run = await runDevice(byOperator, { killAtInstall: round === 2 });
        if (round === 2) {
          // Killed between sealing the new credential and putting it in place: the module still
          // holds the old one whole, and the network still serves it.
          assert.equal(run.signal, 'SIGKILL');
          assert.equal(await installedImsi(byOperator), imsis.at(-1));
          const meanwhile = await subscribersOf(byOperator);
          assert.equal(meanwhile.length, 2, 'old and new subscriber while the install is unfinished');
          assert.ok(meanwhile.some((s) => s.imsi === imsis.at(-1) && s.state === 'active'));
          run = await runDevice(byOperator);
        }
        assert.equal(run.run.outcome, 'onboarded', JSON.stringify(run.run));
        const imsi = run.run.imsi!;
        assert.ok(!imsis.includes(imsi), 'a new IMSI each time');
        imsis.push(imsi);
        assert.equal(await installedImsi(byOperator), imsi);
        // Exactly one live subscription: the new one, of this generation.
        const live = await subscribersOf(byOperator);
        assert.deepEqual(
          live.map((s) => [s.imsi, s.generation, s.state]),
          [[imsi, round + 1, 'active']],
        );
        for (const old of imsis.slice(0, -1))
          await rejectsWith(attachWith(old), 'SIMCRED_SUBSCRIPTION_ENDED');
        await auditShows(byOperator, 'reprovisioned', round);
        await auditShows(byOperator, 'completed', round + 1);
      }
      const { state } = await t.operator.deviceState(url(), byOperator);
      assert.equal(state, 'completed');
      // Its order allows the operator only: after a factory reset the device may not ask itself.
      factoryReset(byOperator);
      const refused = await runDevice(byOperator);
      assert.equal(refused.run.error?.code, 'SIMCRED_REPROVISION_NOT_ALLOWED');
    });

    test("after a factory reset the device asks for re-provisioning itself, where its order's policy allows it", async () => {
      const first = await runDevice(byDevice);
      assert.equal(first.run.outcome, 'onboarded', JSON.stringify(first.run));
      // Its used registration is retired at the registration server (the outbox, in the background).
      await auditShows(byDevice, 'retired');
      factoryReset(byDevice);
      const again = await runDevice(byDevice);
      assert.equal(again.run.outcome, 'onboarded', JSON.stringify(again.run));
      assert.notEqual(again.run.imsi, first.run.imsi);
      const { audit } = await t.operator.deviceState(url(), byDevice);
      assert.equal(audit.find((e) => e.event === 'reprovisioned')?.detail, 'device');
      assert.deepEqual(
        (await subscribersOf(byDevice)).map((s) => s.imsi),
        [again.run.imsi],
      );
      await rejectsWith(attachWith(first.run.imsi!), 'SIMCRED_SUBSCRIPTION_ENDED');
    });

    test('refusals: an order whose policy is never, a device without a subscription, a suspended one', async () => {
      // Not onboarded yet: nothing to replace.
      await rejectsWith(
        t.operator.lifecycle(url(), 'reprovision', never),
        'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
      );
      assert.equal((await runDevice(never)).run.outcome, 'onboarded');
      await rejectsWith(t.operator.lifecycle(url(), 'reprovision', never), 'SIMCRED_REPROVISION_NOT_ALLOWED');
      await t.operator.lifecycle(url(), 'suspend', byDevice);
      await rejectsWith(
        t.operator.lifecycle(url(), 'reprovision', byDevice),
        'SIMCRED_SUBSCRIPTION_SUSPENDED',
      );
      await t.operator.lifecycle(url(), 'resume', byDevice);
      await rejectsWith(
        t.operator.lifecycle(url(), 'reprovision', 'DSIM00000000000000AA'),
        'SIMCRED_REGISTRATION_UNKNOWN',
      );
    });

    /** Wipes the module's storage, as a factory reset would: only the factory image is left. */
    function factoryReset(dsimId: string): void {
      for (const file of [MODULE_STATE_FILE, STATE_FILE]) {
        rmSync(join(deviceDir(t.config.pkiDir, dsimId), file), { force: true });
      }
    }
  });
}
