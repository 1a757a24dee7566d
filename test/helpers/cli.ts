import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The built CLI, as a user runs it. */
export const CLI = resolve('dist/src/cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `simcred ARGS…` in a child process and collects its output. */
export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

/** The JSON object a `--json` command prints as its last line. */
export function lastJsonLine<T = Record<string, unknown>>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'simcred-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A `simcred up` running in the background, in a process group of its own. */
export interface RunningUp {
  child: ChildProcess;
  /** Resolves with the exit code when the primary exits. */
  exited: Promise<number | null>;
  /** What every process of the pool wrote to stderr so far (the roles' logs). */
  stderr(): string;
}

/**
 * Starts `simcred up ARGS…` and resolves once it has printed its table (every role, every worker,
 * ready); rejects with its output if it exits first.
 *
 * @example
 *   const up = await startUp(['--dir', data, '--workers', '2'], env);
 *   process.kill(up.child.pid!, 'SIGTERM'); assert.equal(await up.exited, 0);
 */
export async function startUp(args: string[], env: Record<string, string>): Promise<RunningUp> {
  const child = spawn(process.execPath, [CLI, 'up', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('Ctrl-C stops every role')) resolve();
    });
    void exited.then((code) =>
      reject(new Error(`simcred up exited (${code}): ${stdout}${stderr.slice(-4000)}`)),
    );
  });
  return { child, exited, stderr: () => stderr };
}
