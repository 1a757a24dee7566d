// The factory image (devices/<DSIM_ID>/factory.json): checked against factoryImageSchema when read,
// documented from that schema in docs/device.md, and the only place a device learns where its
// PHLR, OCSP responder and HSS are.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { schemaLeaves } from '../../src/config/schema-doc.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { runFleet } from '../../src/device/fleet.js';
import { SimcredError } from '../../src/errors/index.js';
import { PeerClient } from '../../src/http/index.js';
import { phlrChallenge } from '../../src/protocol/phlr.js';
import {
  deviceDir,
  deviceEndpoints,
  factoryImageSchema,
  initPki,
  loadFactoryImage,
  manufactureDevices,
  readFactoryImage,
  withFactoryImageFields,
} from '../../src/pki/index.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

const DOC = 'docs/device.md';
const SERVERS = { phlr: 'https://phlr.test:1', ocsp: 'http://ocsp.test:2', hss: 'https://hss.test:3' };

test('docs/device.md lists every factory image field from the schema (npm run docs:device)', async () => {
  const doc = readFileSync(DOC, 'utf8');
  const expected = await format(withFactoryImageFields(doc), {
    ...(await resolveConfig(DOC)),
    filepath: DOC,
  });
  assert.equal(doc, expected);
  const leaves = schemaLeaves(factoryImageSchema);
  assert.deepEqual(
    leaves.filter((l) => !l.description || l.description.length < 10).map((l) => l.path.join('.')),
    [],
  );
  for (const path of [
    'registrationServer',
    'servers.phlr',
    'servers.ocsp',
    'servers.hss',
    'preliminary.kPimsi',
  ]) {
    assert.ok(doc.includes(`| \`${path}\``), `${path} is not in ${DOC}`);
  }
});

function inconsistent(err: unknown, field?: string): boolean {
  return (
    err instanceof SimcredError &&
    err.code === 'SIMCRED_PKI_INCONSISTENT' &&
    (field === undefined || err.message.includes(field))
  );
}

describe('factory images of manufactured devices', () => {
  const tmp = tempDir('simcred-image-');
  const dir = join(tmp.path, 'pki');
  let dsimIds: string[];
  const imageFile = (dsimId: string) => join(deviceDir(dir, dsimId), 'factory.json');

  before(async () => {
    await initPki(dir);
    const made = await manufactureDevices({
      dir,
      count: 3,
      registrationServers: ['https://registration.test:4'],
      servers: SERVERS,
      workers: 0,
    });
    dsimIds = made.devices.map((d) => d.dsimId);
  });
  after(() => tmp.cleanup());

  test('each image is version 2, satisfies the schema and names the servers given at manufacture', async () => {
    for (const dsimId of dsimIds) {
      const json: unknown = JSON.parse(readFileSync(imageFile(dsimId), 'utf8'));
      const image = factoryImageSchema.parse(json);
      assert.equal(image.version, 2);
      assert.deepEqual(image.servers, SERVERS);
      assert.deepEqual(deviceEndpoints(await readFactoryImage(dir, dsimId)), {
        registrationServer: 'https://registration.test:4',
        registrationServers: ['https://registration.test:4'],
        phlrUrl: SERVERS.phlr,
        ocspUrl: SERVERS.ocsp,
        hssUrl: SERVERS.hss,
      });
    }
  });

  test('a device agent takes its servers from the image: its first request goes to servers.phlr', async () => {
    const dsimId = dsimIds[0]!;
    // A stand-in PHLR on loopback that records what reaches it and answers "down".
    const seen: string[] = [];
    const phlr = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ code: 'SIMCRED_DEPENDENCY_UNAVAILABLE', message: 'stand-in' }));
    });
    phlr.listen(0, '127.0.0.1');
    await once(phlr, 'listening');
    const original = readFileSync(imageFile(dsimId), 'utf8');
    const image = JSON.parse(original) as { servers: Record<string, string> };
    image.servers.phlr = `http://127.0.0.1:${(phlr.address() as AddressInfo).port}`;
    writeFileSync(imageFile(dsimId), JSON.stringify(image));
    const device = await loadFactoryImage(dir, dsimId);
    const client = new PeerClient({ tls: { ca: [device.image.trustRoots.operator] }, timeoutMs: 5000 });
    try {
      const agent = DeviceAgent.fromFactoryImage(device, { client, maxAttempts: 1 });
      await assert.rejects(
        agent.onboard(),
        (err: unknown) => err instanceof SimcredError && err.status === 503,
      );
      assert.deepEqual(seen, [`${phlrChallenge.method} ${phlrChallenge.path}`]);
    } finally {
      await client.close();
      phlr.close();
      writeFileSync(imageFile(dsimId), original);
    }
  });

  test('a tampered image is refused with the bad field named', async () => {
    const dsimId = dsimIds[1]!;
    const original = readFileSync(imageFile(dsimId), 'utf8');
    const image = JSON.parse(original) as Record<string, unknown>;
    try {
      for (const [change, field] of [
        [{ servers: { ...SERVERS, hss: 'ftp://hss.test' } }, 'servers.hss'],
        [{ certificate: '../../operator/root.key.pem' }, 'certificate'],
        [{ preliminary: { pimsi: '1', kPimsi: 'x', opcPimsi: 'y' } }, 'preliminary.pimsi'],
        [{ colour: 'blue' }, 'colour'],
        [{ version: 3 }, 'version'],
      ] as const) {
        writeFileSync(imageFile(dsimId), JSON.stringify({ ...image, ...change }));
        await assert.rejects(loadFactoryImage(dir, dsimId), (err) => inconsistent(err, field), field);
      }
    } finally {
      writeFileSync(imageFile(dsimId), original);
    }
  });

  test('a version-1 image still loads, but its device cannot find the servers unless told', async () => {
    const dsimId = dsimIds[2]!;
    const { servers: _servers, ...v1 } = JSON.parse(readFileSync(imageFile(dsimId), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(imageFile(dsimId), JSON.stringify({ ...v1, version: 1 }));
    const device = await loadFactoryImage(dir, dsimId);
    assert.equal(device.image.version, 1);
    assert.throws(
      () => deviceEndpoints(device.image),
      (err) => inconsistent(err, 'manufacture the device again'),
    );
    const report = await runFleet({ pkiDir: dir, dsimIds: [dsimId], concurrency: 1, maxAttempts: 1 });
    assert.equal(report.outcomes[0]!.error?.code, 'SIMCRED_PKI_INCONSISTENT');
  });

  test('`devices manufacture --phlr --ocsp --hss` burns the URLs in; a bad one is refused', async () => {
    const ok = await runCli([
      'devices',
      'manufacture',
      '--dir',
      dir,
      '--count',
      '1',
      '--phlr',
      SERVERS.phlr,
      '--ocsp',
      SERVERS.ocsp,
      '--hss',
      SERVERS.hss,
      '--json',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const { devices } = lastJsonLine<{ devices: { dsimId: string }[] }>(ok.stdout);
    const image = await readFactoryImage(dir, devices[0]!.dsimId);
    assert.deepEqual(image.version === 2 && image.servers, SERVERS);

    const bad = await runCli(['devices', 'manufacture', '--dir', dir, '--count', '1', '--hss', 'hss.test']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--hss must be an http\(s\) URL.*\(SIMCRED_CLI_ARGUMENT\)/);
  });
});
