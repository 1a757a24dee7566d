// simcred demo --delivery omadm (docs/omadm.md): the whole flow from the command line, every device's
// package collected in an OMA DM session, XML packages included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DemoSummary } from '../../src/system/demo.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

test('simcred demo --delivery omadm --package-format xml: every device provisioned over OMA DM and attached', async () => {
  const dir = tempDir('simcred-demo-omadm-');
  try {
    const ports = ['CREDENTIALING', 'HSS', 'OCSP', 'PHLR', 'PORTAL'].map((r) => [`SIMCRED_PORTS__${r}`, '0']);
    const result = await runCli(
      [
        'demo',
        '--devices',
        '5',
        '--dir',
        dir.path,
        '--concurrency',
        '3',
        '--package-format',
        'xml',
        '--delivery',
        'omadm',
        '--json',
      ],
      {
        env: {
          ...Object.fromEntries(ports),
          SIMCRED_PORTS__REGISTRATION: '[0,0]',
          SIMCRED_PORTS__PROVISIONING: '[0,0]',
        },
      },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = lastJsonLine<DemoSummary>(result.stdout);
    assert.deepEqual(
      { provisioned: summary.provisioned, attached: summary.attached, delivery: summary.delivery },
      { provisioned: 5, attached: 5, delivery: 'omadm' },
    );
  } finally {
    dir.cleanup();
  }
});
