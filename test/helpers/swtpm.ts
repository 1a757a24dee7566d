// A throwaway TPM 2.0 for tests: Debian's swtpm on loopback, its state in a temporary folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/ocsp/openssl.js';

export interface ThrowawayTpm {
  /** The TCTI tpm2-tools reach it by: `swtpm:host=127.0.0.1,port=N`. */
  tcti: string;
  /** Its state folder (NVRAM: the seeds, the persistent SRK). */
  stateDir: string;
  /** Kills swtpm and removes its state. */
  stop(): Promise<void>;
}

/** Why swtpm or tpm2-tools cannot be used here, or undefined. */
export function swtpmMissing(): string | undefined {
  for (const tool of ['swtpm', 'tpm2_createprimary', 'tpm2_ecdhzgen']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return undefined;
}

/**
 * Starts `swtpm socket --tpm2` on two free loopback ports (command, control), initialised and
 * started (not-need-init, startup-clear), and waits until it accepts connections.
 *
 * @example
 *   const tpm = await startSwtpm(); after(() => tpm.stop());
 */
export async function startSwtpm(): Promise<ThrowawayTpm> {
  // A missing tool fails the test rather than skipping it: `npm test` installs them.
  const missing = swtpmMissing();
  if (missing)
    throw new Error(`${missing}: scripts/setup.sh --test installs swtpm, swtpm-tools and tpm2-tools`);
  const stateDir = mkdtempSync(join(tmpdir(), 'simcred-swtpm-'));
  for (let attempt = 1; ; attempt++) {
    // The swtpm TCTI finds the control channel at the command port + 1.
    const port = await freePort();
    const ctrl = port + 1;
    const child = spawn(
      'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${stateDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    if (await listening(child, port)) {
      return {
        tcti: `swtpm:host=127.0.0.1,port=${port}`,
        stateDir,
        async stop() {
          await kill(child);
          rmSync(stateDir, { recursive: true, force: true });
        },
      };
    }
    await kill(child);
    // A port taken between freePort and swtpm's bind: try other ones.
    if (attempt === 5) {
      rmSync(stateDir, { recursive: true, force: true });
      throw new Error(`swtpm did not start: ${stderr}`);
    }
  }
}

/** True once `port` accepts a connection while the child lives; false if it exits first. */
async function listening(child: ChildProcess, port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return true;
    await sleep(50);
  }
  return false;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}
