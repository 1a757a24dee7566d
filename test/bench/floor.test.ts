// The bench's crypto floor (src/bench/floor.ts) lists the public-key operations of one onboarding, by
// role, with their counts. Here each role runs in a process of its own, as in the field (no role
// shares another's memoised checks), with every sign, verify, key generation and ECDH counted at
// node:crypto and WebCrypto (test/helpers/crypto-count-preload.ts); the device is this process. One
// device is onboarded through the real flow after warm-up devices, and the floor's counts must be
// the measured ones: when the code changes, the list must follow.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ALL_ROLES, benchWorkspace, startRoles } from '../../src/bench/cluster.js';
import { measureCryptoFloor, type FloorOperationKind } from '../../src/bench/floor.js';
import { ProcessGroup, type ServerProcess } from '../../src/bench/processes.js';
import { clearCertificateCaches } from '../../src/crypto/index.js';
import * as x509 from '../../src/crypto/x509.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { PeerClient, loadTlsIdentity } from '../../src/http/index.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { clearOcspCaches } from '../../src/ocsp/verify.js';
import { initPki, loadFactoryImage, loadPki, manufactureDevices } from '../../src/pki/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import {
  countByKind,
  countOperations,
  installOperationCounter,
  type OperationCounts,
} from '../helpers/crypto-operations.js';

const PRELOAD = pathToFileURL(resolve('dist/test/helpers/crypto-count-preload.js')).href;
const KINDS: FloorOperationKind[] = ['sign', 'verify', 'keygen', 'ecdh'];

type ByRole = Record<string, OperationCounts>;

const zero = (): OperationCounts => ({ sign: 0, verify: 0, keygen: 0, ecdh: 0, other: 0 });

/** Each server process's running totals, summed per role (registration-1 and -2 are "registration"). */
function serverTotals(servers: ServerProcess[], countDir: string): ByRole {
  const totals: ByRole = {};
  for (const s of servers) {
    const counts = JSON.parse(readFileSync(join(countDir, `${s.pid}.json`), 'utf8')) as OperationCounts;
    const role = s.name.split('-')[0]!;
    const sum = (totals[role] ??= zero());
    for (const kind of Object.keys(sum) as (keyof OperationCounts)[]) sum[kind] += counts[kind];
  }
  return totals;
}

function difference(after: ByRole, before: ByRole): ByRole {
  const out: ByRole = {};
  for (const [role, counts] of Object.entries(after)) {
    out[role] = zero();
    for (const kind of Object.keys(counts) as (keyof OperationCounts)[]) {
      out[role][kind] = counts[kind] - before[role]![kind];
    }
  }
  return out;
}

describe('crypto floor: the listed operations are the ones an onboarding does', () => {
  test('every role in its own process after warm-up onboardings, the device cold', async (c) => {
    installOperationCounter();
    const ws = await benchWorkspace();
    const countDir = mkdtempSync(join(tmpdir(), 'simcred-crypto-count-'));
    const group = new ProcessGroup({ ...ws.env, CRYPTO_OPERATIONS_COUNT_DIR: countDir });
    const pkiDir = ws.config.pkiDir;
    let client: PeerClient | undefined;
    try {
      await initPki(pkiDir);
      const pki = await loadPki(pkiDir);
      const servers = await startRoles(group, ws, ALL_ROLES, pki.operator.root.pem, ['--import', PRELOAD]);
      const made = await manufactureDevices({
        dir: pkiDir,
        count: 3,
        registrationServers: ws.urls.registration,
        workers: 0,
      });
      const dsimIds = made.devices.map((d) => d.dsimId);
      const operator = new OperatorClient(loadTlsIdentity(pkiDir, 'portal'));
      try {
        await operator.registerDevices(
          ws.urls.credentialing,
          dsimIds.map((dsimId, i) => ({
            dsimId,
            registrationServer: ws.urls.registration[i % ws.urls.registration.length]!,
          })),
        );
      } finally {
        await operator.close();
      }
      client = new PeerClient({ tls: { ca: [pki.operator.root.pem] } });
      const onboard = async (dsimId: string) => {
        const image = await loadFactoryImage(pkiDir, dsimId);
        const agent = new DeviceAgent({
          module: TrustedModule.fromFactoryImage(image, { persist: false }),
          client: client!,
          registrationServer: image.image.registrationServer,
          phlrUrl: ws.urls.phlr,
          hssUrl: ws.urls.hss,
          operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
          ocsp: ocspStatusChecker({ urls: [ws.urls.ocsp] }),
          maxAttempts: 1,
        });
        return agent.onboard();
      };

      // Devices go to the registration servers in turn: one warm-up device for each.
      await onboard(dsimIds[0]!);
      await onboard(dsimIds[1]!);
      const before = serverTotals(servers, countDir);
      // This process plays the devices: the measured one opens its package with nothing memoised.
      clearCertificateCaches();
      clearOcspCaches();
      const { result, operations } = await countOperations(() => onboard(dsimIds[2]!));
      assert.equal(result.retries, 0, 'one pass through the flow');
      const measured = difference(serverTotals(servers, countDir), before);
      measured.device = countByKind(operations);
      for (const o of operations) c.diagnostic(`device ${o.kind} ${o.via}`);
      for (const [role, counts] of Object.entries(measured))
        c.diagnostic(`${role} ${JSON.stringify(counts)}`);

      const floor = measureCryptoFloor(pki, await loadFactoryImage(pkiDir, dsimIds[2]!), { iterations: 1 });
      const listed: ByRole = Object.fromEntries(Object.keys(measured).map((role) => [role, zero()]));
      for (const o of floor.operations) (listed[o.role] ??= zero())[o.kind] += o.count;
      assert.deepEqual(measured, listed);
      // And the totals the bench prints are the sums of that list.
      for (const side of ['server', 'device'] as const) {
        for (const kind of KINDS) {
          const roles = Object.keys(listed).filter((r) => (r === 'device') === (side === 'device'));
          assert.equal(
            floor.counts[side][kind],
            roles.reduce((sum, r) => sum + listed[r]![kind], 0),
            `${side} ${kind}`,
          );
        }
      }
    } finally {
      await client?.close();
      await group.close();
      ws.cleanup();
      rmSync(countDir, { recursive: true, force: true });
    }
  });
});
