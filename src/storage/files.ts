import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SimcredError } from '../errors/index.js';

/** Private keys and subscriber secrets: owner read/write only. */
export const SECRET_MODE = 0o600;
/** Certificates and manifests: world-readable. */
export const PUBLIC_MODE = 0o644;

/**
 * Turns a file-system failure into one SIMCRED_IO line naming the path and the OS reason
 * (ENOTDIR, EACCES …), never a stack trace.
 */
export function ioError(action: string, path: string, err: unknown): SimcredError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason = code ?? (err instanceof Error ? err.message : String(err));
  return new SimcredError('SIMCRED_IO', `cannot ${action} ${path}: ${reason}`, { cause: err });
}

/**
 * mkdir -p, one level at a time: Node 20's recursive mkdirSync never returns for a path under
 * /proc (it retries ENOENT forever), so the recursion is done here, where every error surfaces.
 */
export function ensureDir(path: string): void {
  const missing: string[] = [];
  let current = resolve(path);
  for (;;) {
    let stats;
    try {
      stats = statSync(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('create folder', path, err);
    }
    if (stats) {
      if (!stats.isDirectory())
        throw ioError('create folder', path, Object.assign(new Error(), { code: 'ENOTDIR' }));
      break;
    }
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('create folder', path, err);
    }
  }
}

/**
 * Writes a file and then forces its mode: the mode option of writeFileSync is filtered by the
 * umask and ignored for files that already exist, so chmod is what guarantees 0600 on keys.
 */
export function writeFile(path: string, data: string | Uint8Array, mode: number): void {
  try {
    writeFileSync(path, data, { mode });
    chmodSync(path, mode);
  } catch (err) {
    throw ioError('write', path, err);
  }
}

/** Like writeFile, but fails instead of replacing an existing file (a PKI never overwrites a key). */
export function createFile(path: string, data: string | Uint8Array, mode: number): void {
  try {
    writeFileSync(path, data, { mode, flag: 'wx' });
    chmodSync(path, mode);
  } catch (err) {
    throw ioError('create', path, err);
  }
}

export function appendFile(path: string, data: string, mode: number): void {
  try {
    appendFileSync(path, data, { mode });
    chmodSync(path, mode);
  } catch (err) {
    throw ioError('append to', path, err);
  }
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw ioError('read', path, err);
  }
}

export function fileExists(path: string): boolean {
  return existsSync(path);
}
