// Several hosts behind a real load balancer (issue 16, docs/deployment.md): each role instance is a
// `simcred serve ROLE --config FILE` process on a loopback address of its own (127.0.0.0/8 is all
// loopback on Linux, so 127.0.1.1, 127.0.1.2 … stand for hosts), every store on one PostgreSQL,
// HAProxy (Debian's) in TCP pass-through in front of 3 credentialing, 2 provisioning and 2
// registration instances. Devices send every request to the credentialing and provisioning servers
// twice at once (two connections through the balancer, so two instances) and replay it after the
// answer; one credentialing instance is SIGKILLed mid-run. Size: HOSTS_TEST_DEVICES (default
// 120; docs/benchmarks.md has a run of 2,000).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ProcessGroup, waitHealthy, type ServerProcess } from '../../src/bench/processes.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { PeerClient, loadTlsIdentity } from '../../src/http/index.js';
import { freePort } from '../../src/ocsp/openssl.js';
import { loadFactoryImage, loadPki, manufactureDevices } from '../../src/pki/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { lastJsonLine, runCli } from '../helpers/cli.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

const DEVICES = Number(process.env.HOSTS_TEST_DEVICES ?? 120);
const CONCURRENCY = 24;

/** One "host" per instance: the role's third octet, the instance's last one; .100 is the balancer. */
const NET = { credentialing: 1, provisioning: 2, registration: 3, hss: 4, phlr: 5, ocsp: 6 } as const;
const address = (role: keyof typeof NET, host: number) => `127.0.${NET[role]}.${host}`;
const BALANCER = 100;
const INSTANCES = { credentialing: 3, provisioning: 2, registration: 2 } as const;

interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * A device's HTTPS client that sends each POST to the balanced roles twice at once, the copy on a
 * connection pool of its own (so another connection through the balancer, round-robin to another
 * instance), answers with the better of the two (see rank), then replays it.
 * What the copies and replays were answered is counted by status and error code.
 */
class DuplicatingClient extends PeerClient {
  readonly counts = new Map<string, number>();

  constructor(
    root: string,
    private readonly copies: PeerClient,
    private readonly hosts: Set<string>,
  ) {
    super({ tls: { ca: [root] }, connections: 64, timeoutMs: 30_000 });
  }

  override async send(
    url: string,
    method: string,
    body: string | Buffer | AsyncIterable<Uint8Array> | undefined,
    contentType: string,
    signal?: AbortSignal,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    if (method !== 'POST' || typeof body !== 'string' || !this.hosts.has(new URL(url).host)) {
      return super.send(url, method, body, contentType, signal, headers);
    }
    const [original, copy] = await Promise.allSettled([
      super.send(url, method, body, contentType, signal, headers),
      this.copies.send(url, method, body, contentType, signal, headers),
    ]);
    // The device sees one answer: a success if either got one, else a retryable failure (the copy
    // reached an instance as it died) if either got one, else the original's refusal.
    const rank = (r: PromiseSettledResult<Answer>) =>
      r.status === 'rejected' ? 1 : r.value.statusCode < 300 ? 0 : r.value.statusCode === 503 ? 1 : 2;
    const chosen = rank(copy) < rank(original) ? copy : original;
    this.count('copy', chosen === original ? copy : original);
    this.count(
      'replay',
      await this.copies.send(url, method, body, contentType).then(
        (value): PromiseSettledResult<Answer> => ({ status: 'fulfilled', value }),
        (reason: unknown): PromiseSettledResult<Answer> => ({ status: 'rejected', reason }),
      ),
    );
    if (chosen.status === 'rejected') throw chosen.reason;
    return chosen.value;
  }

  private count(kind: string, result: PromiseSettledResult<Answer>): void {
    let key = `${kind} unreachable`;
    if (result.status === 'fulfilled') {
      const code = /"code":"(SIMCRED_[A-Z_]+)"/.exec(result.value.text)?.[1];
      key = `${kind} ${result.value.statusCode}${code ? ` ${code}` : ''}`;
    }
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
}

describe('several hosts behind HAProxy, on PostgreSQL', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;
  let sql: pg.Client;
  let work: string;
  let group: ProcessGroup;
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  const instances: Record<string, ServerProcess[]> = {};

  before(async () => {
    postgres = await startPostgres();
    sql = new pg.Client({ connectionString: postgres.url });
    await sql.connect();
    work = mkdtempSync(join(tmpdir(), 'simcred-hosts-'));
    group = new ProcessGroup({});
  });

  after(async () => {
    haproxy?.kill('SIGKILL');
    await group?.close();
    await sql?.end();
    postgres?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`provisions ${DEVICES} devices exactly once through the balancer, one credentialing instance killed mid-run`, async () => {
    const dataDir = join(work, 'data');
    const pkiDir = join(dataDir, 'pki');
    const ports = {
      credentialing: await freePort(),
      registration: [await freePort()],
      provisioning: [await freePort()],
      hss: await freePort(),
      phlr: await freePort(),
      ocsp: await freePort(),
      portal: await freePort(),
    };
    const balanced = (role: 'credentialing' | 'provisioning' | 'registration', port: number) =>
      `https://${address(role, BALANCER)}:${port}`;
    const urls = {
      credentialing: balanced('credentialing', ports.credentialing),
      registration: [balanced('registration', ports.registration[0]!)],
      provisioning: [balanced('provisioning', ports.provisioning[0]!)],
      hss: `https://${address('hss', 1)}:${ports.hss}`,
      phlr: `https://${address('phlr', 1)}:${ports.phlr}`,
      ocsp: `http://${address('ocsp', 1)}:${ports.ocsp}`,
    };

    // Each role's certificate names its balancer's address and its instances' (`pki init --host`).
    const hosts = (Object.keys(INSTANCES) as (keyof typeof INSTANCES)[]).flatMap((role) =>
      [BALANCER, ...Array.from({ length: INSTANCES[role] }, (_, i) => i + 1)].map(
        (host) => `${role}=${address(role, host)}`,
      ),
    );
    hosts.push(`hss=${address('hss', 1)}`, `phlr=${address('phlr', 1)}`, `ocsp=${address('ocsp', 1)}`);
    const init = await runCli(['pki', 'init', '--dir', pkiDir, '--host', hosts.join(','), '--json']);
    assert.equal(init.code, 0, init.stderr);
    assert.deepEqual(lastJsonLine<{ reissued: string[] }>(init.stdout).reissued, []);
    const root = (await loadPki(pkiDir)).operator.root.pem;

    // One config per instance: the shared part, and the instance's own listen address.
    const shared = {
      dataDir,
      database: { kind: 'postgres', url: postgres.url },
      ports,
      urls,
      listen: { hss: address('hss', 1), phlr: address('phlr', 1), ocsp: address('ocsp', 1) },
      log: { level: 'warn' },
      // The default session lifetime (120 s): a device whose session answer died with the killed
      // instance resends step 3 with the same nonce and gets that session from another instance.
    };
    const configFile = (name: string, listen: Record<string, string> = {}) => {
      const file = join(work, `${name}.json`);
      writeFileSync(file, JSON.stringify({ ...shared, listen: { ...shared.listen, ...listen } }, null, 2));
      return file;
    };
    const serve = (role: string, host: number | undefined, url: string) => {
      const name = host === undefined ? role : `${role}-${host}`;
      const listen = host === undefined ? {} : { [role]: address(role as keyof typeof NET, host) };
      return group.start({ name, url, args: ['serve', role, '--config', configFile(name, listen)] });
    };

    // The singletons first (the HSS generates its secrets), then one instance of each balanced role
    // (it migrates the role's schema), then the others.
    await waitHealthy(
      [
        serve('ocsp', undefined, urls.ocsp),
        serve('hss', undefined, urls.hss),
        serve('phlr', undefined, urls.phlr),
      ],
      root,
      120_000,
    );
    for (const first of [true, false]) {
      const started: ServerProcess[] = [];
      for (const role of ['registration', 'provisioning', 'credentialing'] as const) {
        const port = role === 'credentialing' ? ports.credentialing : ports[role][0]!;
        for (let host = first ? 1 : 2; host <= (first ? 1 : INSTANCES[role]); host++) {
          const started1 = serve(role, host, `https://${address(role, host)}:${port}`);
          (instances[role] ??= []).push(started1);
          started.push(started1);
        }
      }
      await waitHealthy(started, root, 120_000);
    }

    // HAProxy from Debian, as a child process with the config `simcred deploy haproxy` prints.
    const deploy = await runCli([
      'deploy',
      'haproxy',
      '--config',
      configFile('deploy'),
      ...(['credentialing', 'provisioning', 'registration'] as const).flatMap((role) =>
        instances[role]!.map((p) => ['--instance', `${role}=${new URL(p.url).host}`]).flat(),
      ),
    ]);
    assert.equal(deploy.code, 0, deploy.stderr);
    const cfg = join(work, 'haproxy.cfg');
    writeFileSync(cfg, deploy.stdout);
    const roles = ['credentialing', 'provisioning-1', 'registration-1'].map((name) => {
      const bind = new RegExp(`^frontend ${name}\\n    bind (\\S+):(\\d+)$`, 'm').exec(deploy.stdout);
      assert.ok(bind, `${name} in ${deploy.stdout}`);
      return { name, bind: { address: bind[1]!, port: Number(bind[2]) } };
    });
    haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    const balancers = roles.map((r) => ({
      name: `haproxy ${r.name}`,
      pid: haproxy!.pid!,
      url: `https://${r.bind.address}:${r.bind.port}`,
      child: haproxy!,
      stderr: () => haproxyLog,
    }));
    await waitHealthy(balancers, root, 60_000);

    // A fleet whose factory images name the balancers (registration) and the singletons.
    const made = await manufactureDevices({
      dir: pkiDir,
      count: DEVICES,
      registrationServers: urls.registration,
      servers: { phlr: urls.phlr, ocsp: urls.ocsp, hss: urls.hss },
    });
    const dsimIds = made.devices.map((d) => d.dsimId);
    const operator = new OperatorClient(loadTlsIdentity(pkiDir, 'portal'));
    try {
      const registered = await operator.registerDevices(
        urls.credentialing,
        dsimIds.map((dsimId) => ({ dsimId, registrationServer: urls.registration[0]! })),
      );
      assert.equal(registered.registered, DEVICES, JSON.stringify(registered.rejected.slice(0, 3)));
    } finally {
      await operator.close();
    }

    const copies = new PeerClient({ tls: { ca: [root] }, connections: 64, timeoutMs: 30_000 });
    const client = new DuplicatingClient(
      root,
      copies,
      new Set([new URL(urls.credentialing).host, new URL(urls.provisioning[0]!).host]),
    );
    const victim = instances.credentialing![1]!;
    const installed = new Map<string, { imsi: string; packageId: string }>();
    const failures: string[] = [];
    let next = 0;
    let killed = false;
    const fleetStarted = performance.now();
    try {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < dsimIds.length) {
            const dsimId = dsimIds[next++]!;
            try {
              const agent = DeviceAgent.fromFactoryImage(await loadFactoryImage(pkiDir, dsimId), {
                client,
                maxAttempts: 30,
                maxRetryDelayMs: 5000,
              });
              const { subscription } = await agent.onboard();
              installed.set(dsimId, { imsi: subscription.imsi, packageId: subscription.packageId });
            } catch (err) {
              failures.push(`${dsimId}: ${(err as Error).message}`);
            }
            // A third of the way: one credentialing instance dies with requests in flight.
            if (!killed && installed.size + failures.length >= Math.floor(DEVICES / 3)) {
              killed = true;
              process.kill(-victim.pid, 'SIGKILL');
            }
          }
        }),
      );
    } finally {
      await client.close();
      await copies.close();
    }
    const fleetSeconds = (performance.now() - fleetStarted) / 1000;
    const counts = Object.fromEntries([...client.counts].sort());
    console.log(
      `hosts: ${DEVICES} devices in ${fleetSeconds.toFixed(1)} s (${(DEVICES / fleetSeconds).toFixed(1)}/s, concurrency ${CONCURRENCY}); ` +
        `copies and replays answered: ${JSON.stringify(counts)}`,
    );

    assert.ok(killed, 'an instance was killed');
    assert.deepEqual(failures, []);
    assert.equal(installed.size, DEVICES, 'all provisioned and attached');
    assert.equal(new Set([...installed.values()].map((s) => s.imsi)).size, DEVICES, 'distinct IMSIs');
    assert.ok(
      !Object.keys(counts).some((k) => /\b5\d\d\b/.test(k) && !/ 503 /.test(k) && !k.endsWith(' 503')),
      `a copy or replay got a server error: ${JSON.stringify(counts)}`,
    );
    assert.ok(!Object.keys(counts).some((k) => k.includes('SIMCRED_INTERNAL')), JSON.stringify(counts));

    // One subscriber and one package per device, in the HSS's store; the credentialing store holds
    // the same package for it, and it is the one the device installed.
    const hss = await sql.query<{ n: string; dsims: string; imsis: string; packages: string }>(
      'SELECT count(*) AS n, count(DISTINCT dsim_id) AS dsims, count(DISTINCT imsi) AS imsis, count(DISTINCT package_id) AS packages FROM hss.subscribers',
    );
    assert.deepEqual(hss.rows[0], {
      n: String(DEVICES),
      dsims: String(DEVICES),
      imsis: String(DEVICES),
      packages: String(DEVICES),
    });
    const stored = await sql.query<{ dsim_id: string; imsi: string; package_id: string }>(
      'SELECT r.dsim_id, s.imsi, s.package_id FROM credentialing.registrations r JOIN hss.subscribers s ON s.dsim_id = r.dsim_id AND s.package_id = r.package_id',
    );
    if (stored.rows.length !== DEVICES) {
      const all = await sql.query(
        'SELECT r.dsim_id, r.state, r.package_id AS cred_package, s.package_id AS hss_package, s.imsi FROM credentialing.registrations r LEFT JOIN hss.subscribers s ON s.dsim_id = r.dsim_id',
      );
      const mismatched = all.rows.filter(
        (r: { cred_package: string; hss_package: string }) => r.cred_package !== r.hss_package,
      );
      assert.fail(
        `${stored.rows.length} of ${DEVICES} packages match: ${JSON.stringify(mismatched.slice(0, 3))} installed ${JSON.stringify([...installed].slice(0, 3))}`,
      );
    }
    for (const row of stored.rows) {
      assert.deepEqual(installed.get(row.dsim_id), { imsi: row.imsi, packageId: row.package_id });
    }
    // Every device attached: the credentialing servers record it from the HSS's feed of first attaches.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { rows } = await sql.query<{ n: string }>(
        "SELECT count(DISTINCT dsim_id) AS n FROM credentialing.audit_events WHERE event = 'attached'",
      );
      if (rows[0]!.n === String(DEVICES)) break;
      assert.ok(Date.now() < deadline, `${rows[0]!.n} of ${DEVICES} attached in the credentialing audit`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(readFileSync(cfg, 'utf8'), /mode tcp/);
    assert.match(haproxyLog, /credentialing-2 is DOWN/, 'HAProxy saw the killed instance go');
  });
});
