// `simcred portal add-operator` and `simcred up --json` as a user runs them (child processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import { readManifest } from '../../src/pki/index.js';
import { PortalBrowser } from './api-client.js';

const PORTS_ANYWHERE = {
  SIMCRED_PORTS__CREDENTIALING: '0',
  SIMCRED_PORTS__REGISTRATION: '[0,0]',
  SIMCRED_PORTS__PROVISIONING: '[0,0]',
  SIMCRED_PORTS__HSS: '0',
  SIMCRED_PORTS__PHLR: '0',
  SIMCRED_PORTS__OCSP: '0',
  SIMCRED_PORTS__PORTAL: '0',
};

test('up --json prints one JSON line with every role URL, the portal included, once all listen', async () => {
  const dir = tempDir('simcred-portal-up-');
  try {
    const passwordFile = join(dir.path, 'password');
    writeFileSync(passwordFile, 'operator password 1\n');
    const added = await runCli([
      'portal',
      'add-operator',
      '--dir',
      dir.path,
      '--email',
      'Ops@Example.com',
      '--password-file',
      passwordFile,
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(lastJsonLine(added.stdout), {
      ...lastJsonLine(added.stdout),
      email: 'ops@example.com',
      kind: 'operator',
    });

    const child = spawn(process.execPath, [CLI, 'up', '--dir', dir.path, '--json'], {
      env: { ...process.env, ...PORTS_ANYWHERE },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('\n')) resolve(stdout);
        });
        void exited.then((code) => reject(new Error(`up exited (${code}): ${stdout}`)));
      });
      assert.equal(line.trim().split('\n').length, 1, 'one line');
      const urls = JSON.parse(line) as Record<string, string | string[]> & {
        metrics: Record<string, string>;
      };
      assert.deepEqual(Object.keys(urls).sort(), [
        'credentialing',
        'hss',
        'metrics',
        'ocsp',
        'phlr',
        'portal',
        'provisioning',
        'registration',
      ]);
      // The portal's process has a metrics listener, as every role's does, and it answers.
      assert.match(urls.metrics.portal ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const scraped = await fetch(urls.metrics.portal!);
      assert.equal(scraped.status, 200);
      assert.match(await scraped.text(), /simcred_http_requests_total/);
      const pkiDir = join(dir.path, 'pki');
      const root = readFileSync(join(pkiDir, readManifest(pkiDir).operator.root.cert), 'utf8');
      const browser = new PortalBrowser(urls.portal as string, root);
      try {
        const health = await browser.get('/health');
        assert.deepEqual(JSON.parse(health.text), { ...JSON.parse(health.text), role: 'portal', ok: true });
        const signedIn = await browser.signIn('/api/v1/session', {
          email: 'ops@example.com',
          password: 'operator password 1',
        });
        assert.equal(signedIn.statusCode, 200, signedIn.text);
        assert.equal((await browser.get('/api/v1/funnel')).statusCode, 200);
      } finally {
        await browser.close();
      }
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  } finally {
    dir.cleanup();
  }
});
