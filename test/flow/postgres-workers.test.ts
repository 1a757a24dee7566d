// `simcred up --workers 2` on PostgreSQL, as an operator would run it: every request a device sends
// to the credentialing and provisioning servers duplicated (sent twice at once on two connections,
// which the primary hands to different workers: a load balancer's retry, a replay) and PostgreSQL
// restarted in the middle. Every device provisioned, one IMSI and one HSS subscriber each, 503 +
// Retry-After while the database was away, no worker process lost.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import { processTree } from '../../src/bench/processes.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { isSimcredError } from '../../src/errors/index.js';
import { PeerClient, loadTlsIdentity } from '../../src/http/index.js';
import { initPki, loadFactoryImage, loadPki, manufactureDevices } from '../../src/pki/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { startUp, type RunningUp } from '../helpers/cli.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { untilWithin as until } from '../helpers/webhook-receiver.js';

const DEVICES = 24;
/** Devices onboarding at once. */
const AT_ONCE = 6;

/**
 * A device's client that sends each request for the credentialing or provisioning server twice at
 * once, each on its own connection pool, and takes the better answer (a 2xx if either got one), as a
 * device behind a retrying load balancer sees it.
 */
class DuplicatingClient extends PeerClient {
  duplicated = 0;
  private readonly twin: PeerClient;

  constructor(
    root: string,
    private readonly duplicate: (url: string) => boolean,
  ) {
    super({ tls: { ca: [root] }, connections: 8 });
    this.twin = new PeerClient({ tls: { ca: [root] }, connections: 8 });
  }

  override async send(...args: Parameters<PeerClient['send']>): ReturnType<PeerClient['send']> {
    // Only whole bodies can be sent twice (every device request is JSON).
    if (!this.duplicate(args[0]) || (args[2] !== undefined && typeof args[2] !== 'string')) {
      return super.send(...args);
    }
    this.duplicated++;
    const answers = await Promise.allSettled([super.send(...args), this.twin.send(...args)]);
    const ok = answers.find((a) => a.status === 'fulfilled' && a.value.statusCode < 300);
    const chosen = ok ?? answers.find((a) => a.status === 'fulfilled') ?? answers[0];
    if (chosen.status === 'rejected') throw chosen.reason;
    return chosen.value;
  }

  override async close(): Promise<void> {
    await this.twin.close();
    await super.close();
  }
}

describe(
  'simcred up --workers 2 on PostgreSQL: duplicated requests and a database restart',
  { concurrency: false },
  () => {
    let postgres: ThrowawayPostgres;
    let ws: BenchWorkspace;
    let up: RunningUp;
    let sql: pg.Client;

    before(async () => {
      postgres = await startPostgres();
      ws = await benchWorkspace();
      await initPki(ws.config.pkiDir);
      up = await startUp(['--dir', ws.dataDir, '--workers', '2'], {
        ...ws.env,
        SIMCRED_DATABASE__KIND: 'postgres',
        SIMCRED_DATABASE__URL: postgres.url,
      });
      sql = new pg.Client({ connectionString: postgres.url });
    });

    after(async () => {
      await sql?.end().catch(() => undefined);
      try {
        process.kill(-up.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      ws?.cleanup();
      postgres?.stop();
    });

    it('every device provisioned once, 0 duplicate IMSIs, 503s while the database is away, no worker lost', async () => {
      const root = (await loadPki(ws.config.pkiDir)).operator.root.pem;
      const { devices } = await manufactureDevices({
        dir: ws.config.pkiDir,
        count: DEVICES,
        keyType: 'ec',
        registrationServers: ws.urls.registration,
        servers: { phlr: ws.urls.phlr, ocsp: ws.urls.ocsp, hss: ws.urls.hss },
        workers: 0,
      });
      const dsimIds = devices.map((d) => d.dsimId);
      const operator = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
      const workers = processTree(up.child.pid!).slice(1);
      assert.equal(workers.length, 2);
      const client = new DuplicatingClient(root, (url) =>
        [ws.urls.credentialing, ...ws.urls.provisioning].some((base) => url.startsWith(base)),
      );
      try {
        await operator.registerDevices(
          ws.urls.credentialing,
          dsimIds.map((dsimId, i) => ({
            dsimId,
            registrationServer: ws.urls.registration[i % ws.urls.registration.length]!,
          })),
        );

        let done = 0;
        const imsiOf = new Map<string, string>();
        const failures: string[] = [];
        const onboard = async (dsimId: string) => {
          const image = await loadFactoryImage(ws.config.pkiDir, dsimId);
          const agent = DeviceAgent.fromFactoryImage(image, {
            module: TrustedModule.fromFactoryImage(image, { persist: false }),
            client,
            // The device waits out the restart on Retry-After (capped so the test does not idle).
            maxAttempts: 200,
            maxRetryDelayMs: 300,
          });
          try {
            imsiOf.set(dsimId, (await agent.onboard()).subscription.imsi);
          } catch (err) {
            failures.push(`${dsimId}: ${isSimcredError(err) ? err.code : ''} ${String(err)}`);
          }
          done++;
        };
        let next = 0;
        const fleet = Promise.all(
          Array.from({ length: AT_ONCE }, async () => {
            while (next < dsimIds.length) await onboard(dsimIds[next++]!);
          }),
        );

        await until('a few devices done', () => done >= 4);
        postgres.halt();
        const answer = await client.send(
          `${ws.urls.credentialing}/v1/sessions`,
          'POST',
          JSON.stringify({
            dsimId: dsimIds.at(-1)!,
            deviceNonce: 'B'.repeat(43),
            sessionNonce: 'B'.repeat(43),
          }),
          'application/json',
        );
        assert.equal(answer.statusCode, 503, answer.text);
        assert.ok(Number(answer.headers['retry-after']) > 0, 'Retry-After');
        assert.equal((JSON.parse(answer.text) as { code: string }).code, 'SIMCRED_DEPENDENCY_UNAVAILABLE');
        const doneWhileDown = done;
        postgres.resume();
        await fleet;

        assert.deepEqual(failures, [], 'every device provisioned');
        assert.ok(doneWhileDown < DEVICES, 'the restart met devices still onboarding');
        assert.ok(client.duplicated > DEVICES * 3, 'requests were duplicated');
        assert.equal(new Set(imsiOf.values()).size, DEVICES, '0 duplicate IMSIs');

        await sql.connect();
        const count = async (query: string) => Number((await sql.query<{ n: string }>(query)).rows[0]!.n);
        assert.equal(
          await count('select count(*) as n from hss.subscribers'),
          DEVICES,
          'one subscriber each',
        );
        assert.equal(await count('select count(distinct imsi) as n from hss.subscribers'), DEVICES);
        assert.equal(
          await count(`select count(*) as n from credentialing.audit_events where event = 'delivered'`),
          DEVICES,
          'one package delivered per device',
        );
        await until(
          'every registration completed',
          async () =>
            (await count(
              `select count(*) as n from credentialing.registrations where state <> 'completed'`,
            )) === 0,
        );
        // The workers the database restart met are the ones still serving.
        assert.deepEqual(
          processTree(up.child.pid!).slice(1).sort(),
          [...workers].sort(),
          'no worker process lost',
        );
        assert.doesNotMatch(up.stderr(), /uncaught|unhandled/i);
        // No role answered a 500 (logged as 'request failed'), a unique violation least of all.
        assert.doesNotMatch(up.stderr(), /"msg":"request failed"|duplicate key/);
      } finally {
        await client.close();
        await operator.close();
      }
      process.kill(up.child.pid!, 'SIGTERM');
      assert.equal(await up.exited, 0);
    });
  },
);
