import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, DEFAULT_PORTS } from '../src/config/index.js';
import { SimcredError } from '../src/errors/index.js';
import { configuredUrls, listenAddress } from '../src/system/wiring.js';
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

test('listen and urls: a role on its own address, peers at public URLs (a load balancer), loopback by default', () => {
  const defaults = configuredUrls(loadConfig({ overrides: { dataDir: '/tmp/simcred-x' } }));
  assert.equal(defaults.credentialing, `https://127.0.0.1:${DEFAULT_PORTS.credentialing}`);
  assert.equal(defaults.ocsp, `http://127.0.0.1:${DEFAULT_PORTS.ocsp}`);

  const config = loadConfig({
    overrides: {
      dataDir: '/tmp/simcred-x',
      ports: { provisioning: [7441] },
      listen: { credentialing: '127.0.1.1', hss: '::1', portal: '0.0.0.0' },
      urls: { credentialing: 'https://cred.example.com/', provisioning: ['https://prov.example.com:7441'] },
    },
  });
  assert.equal(listenAddress(config, 'credentialing'), '127.0.1.1');
  assert.equal(listenAddress(config, 'registration'), '127.0.0.1');
  const urls = configuredUrls(config);
  assert.equal(urls.credentialing, 'https://cred.example.com', 'no trailing slash');
  assert.deepEqual(urls.provisioning, ['https://prov.example.com:7441']);
  assert.equal(urls.hss, `https://[::1]:${DEFAULT_PORTS.hss}`);
  const fromEnv = loadConfig({ env: { SIMCRED_LISTEN__OCSP: '127.0.6.1' } });
  assert.equal(configuredUrls(fromEnv).ocsp, `http://127.0.6.1:${DEFAULT_PORTS.ocsp}`);
  assert.equal(urls.portal, `https://127.0.0.1:${DEFAULT_PORTS.portal}`, 'a wildcard address is not a URL');
  assert.deepEqual(
    urls.registration,
    DEFAULT_PORTS.registration.map((p) => `https://127.0.0.1:${p}`),
  );

  // One public URL per server, and URLs of the right scheme.
  assert.throws(
    () =>
      loadConfig({
        overrides: { urls: { registration: ['https://reg.example.com'], hss: 'http://hss.example.com' } },
      }),
    (err: unknown) =>
      err instanceof SimcredError &&
      err.code === 'SIMCRED_CONFIG_INVALID' &&
      err.message.includes('urls.registration: 1 URLs for 2 registration servers') &&
      err.message.includes('urls.hss'),
  );
  assert.throws(
    () => loadConfig({ overrides: { listen: { nosuchrole: '127.0.0.1' } } }),
    (err: unknown) => err instanceof SimcredError && err.message.includes('nosuchrole'),
  );
});
