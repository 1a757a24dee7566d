// `simcred deploy haproxy`: the balanced roles it reads from the config and --instance, and the
// configuration it prints, checked by HAProxy itself (`haproxy -c`). The whole path, HAProxy in
// front of running instances, is test/flow/hosts.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { balancedRoles } from '../../src/cli/deploy-commands.js';
import { loadConfig } from '../../src/config/index.js';
import { isSimcredError } from '../../src/errors/index.js';
import { haproxyConfig } from '../../src/system/haproxy.js';
import { tempDir } from '../helpers/cli.js';

const config = loadConfig({
  overrides: {
    dataDir: '/tmp/simcred-deploy',
    urls: {
      credentialing: 'https://127.0.1.100:7401',
      provisioning: ['https://[::1]:7441', 'https://127.0.2.101:7442'],
    },
  },
});

test('each role bound at its public URL, its instances at their addresses and the config ports', () => {
  const roles = balancedRoles(config, [
    'credentialing=127.0.1.1,credentialing=localhost:7501',
    'provisioning=[::1]:7541,provisioning-2=127.0.2.1',
    'ocsp=::1',
  ]);
  assert.deepEqual(roles, [
    {
      name: 'credentialing',
      bind: { address: '127.0.1.100', port: 7401 },
      servers: [
        { address: '127.0.1.1', port: 7401 },
        { address: 'localhost', port: 7501 },
      ],
      health: 'https',
    },
    {
      name: 'provisioning-1',
      bind: { address: '::1', port: 7441 },
      servers: [{ address: '::1', port: 7541 }],
      health: 'https',
    },
    {
      name: 'provisioning-2',
      bind: { address: '127.0.2.101', port: 7442 },
      servers: [{ address: '127.0.2.1', port: 7442 }],
      health: 'https',
    },
    {
      name: 'ocsp',
      bind: { address: '127.0.0.1', port: 7420 },
      servers: [{ address: '::1', port: 7420 }],
      health: 'http',
    },
  ]);

  const dir = tempDir('simcred-haproxy-');
  try {
    const file = join(dir.path, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig(roles, { caFile: '/etc/ssl/certs/ca-certificates.crt' }));
    const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  } finally {
    dir.cleanup();
  }
});

test('a role that is not balanced, a server the config lacks or a bad address is refused', () => {
  for (const bad of [
    'portal=127.0.0.1',
    'credentialing-2=127.0.0.1',
    'provisioning-3=127.0.0.1',
    'credentialing=',
    'credentialing=127.0.0.1:0',
    'credentialing=127.0.0.1:70000',
    'credentialing=[127.0.0.1]',
    'credentialing=a b',
  ]) {
    assert.throws(
      () => balancedRoles(config, [bad]),
      (err: unknown) => isSimcredError(err) && err.code === 'SIMCRED_CLI_ARGUMENT',
      bad,
    );
  }
});
