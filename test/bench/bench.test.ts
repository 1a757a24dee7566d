import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import type { E2eResult } from '../../src/bench/e2e.js';
import type { BenchResult } from '../../src/ocsp/bench.js';
import { syntheticDevices, type RegisterResult } from '../../src/bench/register.js';
import type { PortalUploadResult } from '../../src/bench/portal-upload.js';
import type { ScaleResult } from '../../src/bench/scale.js';
import { processCpuMs, peakRssMiB } from '../../src/bench/processes.js';
import { DEVICE_STEPS } from '../../src/device/agent.js';

// Smoke runs of `simcred bench e2e | register | scale` at tiny sizes: correctness only, never timing.
// Every bench kills its child process groups itself (try/finally + an exit hook); the checks below
// also make sure none is left behind.

/** Our `simcred serve` children still alive (their command line names this data folder). */
function leftovers(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const server = cmdline.includes('\0serve\0') || cmdline.includes('\0up\0');
      if (server && cmdline.includes(marker)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

const positive = (value: unknown, name: string) =>
  assert.ok(typeof value === 'number' && value > 0, `${name} = ${String(value)} should be > 0`);

describe('simcred bench', { concurrency: false }, () => {
  it('synthetic DSIM_IDs are well-formed, distinct and spread over the servers', () => {
    const devices = [...syntheticDevices(5, ['https://a', 'https://b'])];
    assert.equal(devices.length, 5);
    for (const d of devices) assert.match(d.dsimId, /^DSIM[0-9A-F]{16}$/);
    assert.equal(new Set(devices.map((d) => d.dsimId)).size, 5);
    assert.deepEqual(
      devices.map((d) => d.registrationServer),
      ['https://a', 'https://b', 'https://a', 'https://b', 'https://a'],
    );
    assert.ok(processCpuMs('self') > 0);
    assert.ok(peakRssMiB('self') > 0);
  });

  it('e2e: 20 devices, every role its own process, all provisioned and attached', async () => {
    const dir = tempDir('simcred-bench-e2e-');
    try {
      const chart = join(dir.path, 'e2e.svg');
      const data = join(dir.path, 'data');
      const r = await runCli([
        'bench',
        'e2e',
        '--devices',
        '20',
        '--concurrency',
        '8',
        '--dir',
        data,
        '--chart',
        chart,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /onboardings\/s/);
      assert.match(r.stdout, /crypto floor/);
      const j = lastJsonLine<E2eResult>(r.stdout);
      assert.equal(j.bench, 'e2e');
      assert.equal(j.devices, 20);
      assert.equal(j.provisioned, 20);
      assert.equal(j.failed, 0);
      assert.equal(j.distinctImsis, 20);
      assert.equal(j.hssSubscribers, 20);
      assert.equal(j.attached, 20);
      positive(j.onboardingsPerSecond, 'onboardingsPerSecond');
      for (const p of ['p50', 'p95', 'p99'] as const) positive(j.onboarding[p], `onboarding.${p}`);
      const steps = (j.steps as { step: string; count: number; p99: number }[]).map((s) => s.step);
      for (const step of [...DEVICE_STEPS, 'total']) {
        assert.ok(steps.includes(step), `step ${step}`);
      }
      for (const s of j.steps as { step: string; count: number }[]) assert.equal(s.count, 20, s.step);
      assert.equal(j.servers.length, 8);
      for (const s of j.servers as { name: string; cpuMs: number; peakRssMiB: number }[]) {
        positive(s.cpuMs, `${s.name}.cpuMs`);
        positive(s.peakRssMiB, `${s.name}.peakRssMiB`);
      }
      positive(j.serverCpuMsPerOnboarding, 'serverCpuMsPerOnboarding');
      positive(j.floor.serverMs, 'floor.serverMs');
      positive(j.floor.deviceMs, 'floor.deviceMs');
      positive(j.cpuOverFloor, 'cpuOverFloor');
      // The floor's operation counts are checked against a counted onboarding in floor.test.ts.
      // The messages the flow needs of each role, per onboarding. A device that retried (a 503 under
      // load, say) sent some again: the bench reports its retries, and each went over at most one
      // whole pass of the flow's 13 messages. Without a retry the counts are exact.
      assert.ok(j.requests && j.transport, 'one process per role: requests counted');
      const FLOW = { credentialing: 4, hss: 3, phlr: 2, registration: 2, provisioning: 2 };
      // Registration servers also answer the credentialing server's withdrawals of used
      // registrations, which its outbox batches: at most one call per onboarding.
      // The HSS also answers the credentialing server's follower of its attach feed: a long poll ends
      // with a first attach (at most one per onboarding) or after its 5 s wait.
      const feedPolls = j.provisioned + Math.ceil(j.onboardMs / 5000) + 2;
      const withdrawalsAtMost = (role: string) =>
        role === 'registration' ? j.provisioned : role === 'hss' ? feedPolls : 0;
      const served: Record<string, number> = {};
      for (const q of j.requests) {
        const role = q.name.split('-')[0]!;
        served[role] = (served[role] ?? 0) + Math.round(q.perOnboarding * j.provisioned);
      }
      assert.deepEqual(Object.keys(served).sort(), Object.keys(FLOW).sort());
      let extra = 0;
      for (const [role, perOnboarding] of Object.entries(FLOW)) {
        const needed: number = perOnboarding * j.provisioned;
        assert.ok(served[role]! >= needed, `${role}: ${served[role]} requests for ${needed} messages`);
        const beyond = Math.max(0, served[role]! - needed - withdrawalsAtMost(role));
        if (j.retries === 0)
          assert.equal(beyond, 0, `${role}: ${served[role]} requests for ${needed} messages`);
        extra += beyond;
      }
      assert.ok(extra <= 13 * j.retries, `${extra} requests beyond the flow, ${j.retries} retries`);
      if (j.retries === 0) {
        assert.ok(
          j.transport.requestsPerOnboarding >= 13 &&
            j.transport.requestsPerOnboarding <= 14 + feedPolls / j.provisioned,
        );
      }
      positive(j.transport.serverMs, 'transport.serverMs');
      positive(j.transport.serverFloorMs, 'transport.serverFloorMs');
      assert.match(r.stdout, /transport floor/);
      for (const o of j.floor.operations as { microseconds: number; operation: string }[]) {
        positive(o.microseconds, o.operation);
      }
      const svg = readFileSync(chart, 'utf8');
      assert.match(svg, /^<svg /);
      assert.match(svg, /<\/svg>\s*$/);
      assert.match(svg, /onboardings\/s/);
      assert.deepEqual(leftovers(data), []);
    } finally {
      dir.cleanup();
    }
  });

  it('e2e --colocated --rate: every role in one process, 3 warm-up devices, then 10 switched on 20 a second, all provisioned and attached', async () => {
    const dir = tempDir('simcred-bench-colocated-');
    try {
      const data = join(dir.path, 'data');
      const r = await runCli([
        'bench',
        'e2e',
        '--devices',
        '10',
        '--colocated',
        '--rate',
        '20',
        '--warmup-devices',
        '3',
        '--dir',
        data,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /every role in one process/);
      assert.match(
        r.stdout,
        /switched on at 20\/s \(open loop, at most 64 at once\) after 3 warm-up devices/,
      );
      const j = lastJsonLine<E2eResult>(r.stdout);
      assert.equal(j.rate, 20);
      assert.equal(j.warmupDevices, 3);
      assert.equal(j.devices, 10, 'the warm-up devices are not counted');
      // The open-loop schedule itself (device i switched on i / rate after the first) is shown with
      // an injected timer in test/device/fleet.test.ts, not by timing this run.
      assert.equal(j.colocated, true);
      assert.equal(j.provisioned, 10);
      assert.equal(j.attached, 10);
      assert.equal(j.servers.length, 1);
      positive(j.servers[0]!.cpuMs, 'all roles cpuMs');
      assert.deepEqual(leftovers(data), []);
    } finally {
      dir.cleanup();
    }
  });

  it('e2e --colocated --workers 2: two processes each serving every role, both used, all attached', async () => {
    const dir = tempDir('simcred-bench-workers-');
    try {
      const data = join(dir.path, 'data');
      const r = await runCli([
        'bench',
        'e2e',
        '--devices',
        '16',
        '--colocated',
        '--workers',
        '2',
        '--dir',
        data,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /every role in each of 2 worker processes/);
      const j = lastJsonLine<E2eResult>(r.stdout);
      assert.equal(j.workers, 2);
      assert.equal(j.provisioned, 16);
      assert.equal(j.distinctImsis, 16);
      assert.equal(j.attached, 16);
      // The primary and its two workers, each worker with CPU of its own in the fleet phase.
      const processes = j.servers[0]!.processes ?? [];
      assert.equal(processes.length, 3);
      for (const p of processes.slice(1)) positive(p.cpuMs, `worker ${p.pid} cpuMs`);
      assert.equal(j.requests, undefined, 'per-worker counters are not summed into a wrong figure');
      assert.deepEqual(leftovers(data), []);
    } finally {
      dir.cleanup();
    }
  });

  it('ocsp: ours and openssl ocsp under the same load, every answer good, CPU per request of each', async () => {
    const r = await runCli([
      'bench',
      'ocsp',
      '--seconds',
      '1',
      '--warmup',
      '1',
      '--connections',
      '4',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /CPU µs\/req/);
    const j = lastJsonLine<BenchResult>(r.stdout);
    assert.equal(j.warmupSeconds, 1);
    assert.match(r.stdout, /after 1 s of warm-up/);
    for (const side of [j.ours, j.opensslResponder]) {
      for (const kind of ['nonce', 'noNonce'] as const) {
        positive(side[kind].requests, `${kind} requests`);
        assert.equal(side[kind].errors, 0);
        positive(side[kind].cpuUsPerRequest, `${kind} cpuUsPerRequest`);
      }
    }
    positive(j.ratio.nonce, 'ratio.nonce');
    positive(j.cpuRatio.nonce, 'cpuRatio.nonce');
  });

  it('register: 2,000 synthetic devices as one stream, every one stored', async () => {
    const dir = tempDir('simcred-bench-register-');
    try {
      const data = join(dir.path, 'data');
      const r = await runCli(['bench', 'register', '--devices', '2000', '--dir', data, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /registrations\/s/);
      const j = lastJsonLine<RegisterResult>(r.stdout);
      assert.equal(j.bench, 'register');
      assert.equal(j.registered, 2000);
      assert.equal(j.rejected, 0);
      assert.deepEqual(j.stored, [1000, 1000]);
      positive(j.registrationsPerSecond, 'registrationsPerSecond');
      for (const name of ['credentialing', 'registration-1', 'registration-2', 'bench']) {
        positive(j.peakRssMiB[name], `peakRssMiB.${name}`);
      }
      assert.deepEqual(leftovers(data), []);
    } finally {
      dir.cleanup();
    }
  });

  it('portal-upload: a CSV of 1,000 devices through the portal, every one accepted, next to register', async () => {
    const r = await runCli(['bench', 'portal-upload', '--devices', '1000', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /portal ÷ register/);
    const j = lastJsonLine<PortalUploadResult>(r.stdout);
    assert.equal(j.bench, 'portal-upload');
    assert.equal(j.accepted, 1000);
    assert.equal(j.rejected, 0);
    assert.equal(j.register.registered, 1000);
    positive(j.ratio, 'ratio');
    for (const name of ['portal', 'credentialing', 'registration-1', 'registration-2', 'bench']) {
      positive(j.peakRssMiB[name], `peakRssMiB.${name}`);
    }
  });

  it('scale: three sizes of each, growth ratios reported', async () => {
    const dir = tempDir('simcred-bench-scale-');
    try {
      const chart = join(dir.path, 'scale.svg');
      const r = await runCli([
        'bench',
        'scale',
        '--register-sizes',
        '1000,2000,4000',
        '--e2e-sizes',
        '10,20,40',
        '--concurrency',
        '8',
        '--chart',
        chart,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const j = lastJsonLine<ScaleResult>(r.stdout);
      assert.equal(j.bench, 'scale');
      assert.deepEqual(
        (j.register as { devices: number }[]).map((p) => p.devices),
        [1000, 2000, 4000],
      );
      assert.deepEqual(
        (j.runs.register as { registered: number }[]).map((p) => p.registered),
        [1000, 2000, 4000],
      );
      assert.deepEqual(
        (j.e2e as { provisioned: number }[]).map((p) => p.provisioned),
        [10, 20, 40],
      );
      for (const p of [...j.register, ...j.e2e] as { perDeviceUs: number; maxPeakRssMiB: number }[]) {
        positive(p.perDeviceUs, 'perDeviceUs');
        positive(p.maxPeakRssMiB, 'maxPeakRssMiB');
      }
      for (const [name, value] of Object.entries(j.growth as Record<string, number>)) positive(value, name);
      assert.ok(existsSync(chart));
      assert.match(readFileSync(chart, 'utf8'), /polyline/);
    } finally {
      dir.cleanup();
    }
  });

  it('rejects a bad size list with a clear error', async () => {
    const r = await runCli(['bench', 'scale', '--register-sizes', '10,x', '--e2e-sizes', '1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--register-sizes.*SIMCRED_CLI_ARGUMENT/);
  });
});
