import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

const FREE_PORTS = {
  SIMCRED_PORTS__CREDENTIALING: '0',
  SIMCRED_PORTS__REGISTRATION: '[0,0]',
  SIMCRED_PORTS__PROVISIONING: '[0,0]',
  SIMCRED_PORTS__HSS: '0',
  SIMCRED_PORTS__OCSP: '0',
  SIMCRED_PORTS__PHLR: '0',
  SIMCRED_PORTS__PORTAL: '0',
};

test('simcred demo: counts from the modules and the HSS; a second run takes fresh devices', async () => {
  const dir = tempDir('simcred-demo-');
  try {
    for (const run of [1, 2]) {
      const result = await runCli(
        ['demo', '--devices', '12', '--dir', dir.path, '--concurrency', '4', '--json'],
        {
          env: FREE_PORTS,
        },
      );
      assert.equal(result.code, 0, result.stderr);
      const summary = lastJsonLine<Record<string, number>>(result.stdout);
      assert.equal(summary.devices, 12, `run ${run}`);
      assert.equal(summary.provisioned, 12);
      assert.equal(summary.failed, 0);
      assert.equal(summary.distinctImsis, 12);
      assert.equal(summary.hssSubscribers, 12);
      assert.equal(summary.manufactured, 12, 'devices that already hold credentials are not reused');
      assert.match(result.stdout, /provisioned 12, failed 0/);
    }
  } finally {
    dir.cleanup();
  }
});

test('simcred demo: bad arguments give one line and a non-zero exit', async () => {
  const result = await runCli(['demo', '--devices', '0']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /^simcred: error: .*SIMCRED_CLI_ARGUMENT/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});
