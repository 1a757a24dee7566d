import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, DEFAULT_PORTS } from '../src/config/index.js';
import { SimcredError } from '../src/errors/index.js';
import { tempDir } from './helpers/cli.js';

test('defaults describe the embedded loopback setup', () => {
  const config = loadConfig({ overrides: { dataDir: '/tmp/simcred-x' } });
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.ports.ocsp, DEFAULT_PORTS.ocsp);
  assert.deepEqual(config.ports.registration, [...DEFAULT_PORTS.registration]);
  assert.equal(config.pkiDir, '/tmp/simcred-x/pki');
  assert.equal(config.database.kind, 'sqlite');
});

test('file then environment overrides apply, by field path', () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'simcred.json');
    writeFileSync(file, JSON.stringify({ ports: { ocsp: 9100 }, log: { level: 'warn' } }));
    const config = loadConfig({
      file,
      env: { SIMCRED_PORTS__OCSP: '9200', SIMCRED_REGISTRATION__TTL_SECONDS: '60' },
    });
    assert.equal(config.ports.ocsp, 9200);
    assert.equal(config.log.level, 'warn');
    assert.equal(config.registration.ttlSeconds, 60);
  } finally {
    dir.cleanup();
  }
});

test('invalid config names every bad field', () => {
  assert.throws(
    () => loadConfig({ overrides: { ports: { ocsp: 70000 }, log: { level: 'loud' } } }),
    (err: unknown) =>
      err instanceof SimcredError &&
      err.code === 'SIMCRED_CONFIG_INVALID' &&
      err.message.includes('ports.ocsp') &&
      err.message.includes('log.level'),
  );
  assert.throws(
    () => loadConfig({ overrides: { colour: 'blue' } }),
    (err: unknown) => err instanceof SimcredError && err.message.includes('colour'),
  );
});

test('an IMSI range that cannot give 15-digit IMSIs is refused at start', () => {
  assert.throws(
    () => loadConfig({ overrides: { hss: { plmn: '001020', capacity: 1_000_000_000 } } }),
    (err: unknown) => err instanceof SimcredError && err.message.includes('hss.capacity'),
  );
  assert.equal(loadConfig({ overrides: { hss: { plmn: '001020', capacity: 1000 } } }).hss.plmn, '001020');
});
