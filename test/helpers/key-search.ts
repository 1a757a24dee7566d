import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under a folder, recursively. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * The files under `dir` that hold `secret` in any encoding a program would write it in: the raw
 * bytes, hex (either case), base64 or base64url.
 */
export function filesHolding(dir: string, secret: Buffer): string[] {
  const needles = [
    secret,
    Buffer.from(secret.toString('hex')),
    Buffer.from(secret.toString('hex').toUpperCase()),
    Buffer.from(secret.toString('base64').replace(/=+$/, '')),
    Buffer.from(secret.toString('base64url')),
  ];
  return filesUnder(dir).filter((file) => {
    const content = readFileSync(file);
    return needles.some((needle) => content.includes(needle));
  });
}
