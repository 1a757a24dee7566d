// Counts the public-key operations a piece of work really does, at the primitives every simcred module
// reaches them through: node:crypto (sign, verify, diffieHellman, key generation, X509Certificate.verify)
// and WebCrypto (what jose and @peculiar/x509 use). HMACs, hashes and AES are not public-key work and
// are not counted. A process counts its own: test/bench/floor.test.ts runs each role in a process of
// its own (as in the field, where no role shares another's memoised checks) with
// crypto-count-preload.ts, and the devices in the test process.
import * as nodeCrypto from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';

export type OperationKind = 'sign' | 'verify' | 'keygen' | 'ecdh' | 'other';

export interface CountedOperation {
  kind: OperationKind;
  /** The primitive and algorithm, e.g. "subtle.sign ECDSA" or "X509Certificate.verify". */
  via: string;
}

let sink: ((operation: CountedOperation) => void) | undefined;
let installed = false;

function record(kind: OperationKind, via: string): void {
  sink?.({ kind, via });
}

type AnyFunction = (...args: unknown[]) => unknown;

function wrap(target: object, name: string, onCall: (args: unknown[]) => void): void {
  const holder = target as Record<string, AnyFunction>;
  const original = holder[name]!;
  holder[name] = function (this: unknown, ...args: unknown[]) {
    onCall(args);
    return original.apply(this, args);
  };
}

const algorithmName = (algorithm: unknown): string =>
  typeof algorithm === 'string' ? algorithm : String((algorithm as { name?: string }).name);
const ASYMMETRIC_SIGNATURES = new Set(['ECDSA', 'RSA-PSS', 'RSASSA-PKCS1-v1_5', 'Ed25519']);
const ASYMMETRIC_KEYS = new Set([...ASYMMETRIC_SIGNATURES, 'ECDH', 'X25519', 'RSA-OAEP']);
const KEY_AGREEMENT = new Set(['ECDH', 'X25519']);

/** Puts the counting wrappers in place (once per process; they count only inside countOperations). */
export function installOperationCounter(): void {
  if (installed) return;
  installed = true;
  // The CommonJS face of node:crypto, then its ESM named exports re-synced: a module's
  // `import { sign } from 'node:crypto'` reaches the wrapper too.
  const cjs = createRequire(import.meta.url)('node:crypto') as Record<string, AnyFunction>;
  wrap(cjs, 'sign', () => record('sign', 'crypto.sign'));
  wrap(cjs, 'verify', () => record('verify', 'crypto.verify'));
  wrap(cjs, 'diffieHellman', () => record('ecdh', 'crypto.diffieHellman'));
  wrap(cjs, 'generateKeyPairSync', (args) =>
    record('keygen', `crypto.generateKeyPairSync ${String(args[0])}`),
  );
  wrap(cjs, 'generateKeyPair', (args) => record('keygen', `crypto.generateKeyPair ${String(args[0])}`));
  wrap(cjs, 'publicEncrypt', () => record('other', 'crypto.publicEncrypt'));
  wrap(cjs, 'privateDecrypt', () => record('other', 'crypto.privateDecrypt'));
  syncBuiltinESMExports();
  wrap(nodeCrypto.X509Certificate.prototype, 'verify', () => record('verify', 'X509Certificate.verify'));
  const subtle = Object.getPrototypeOf(nodeCrypto.webcrypto.subtle) as object;
  const when = (names: Set<string>, kind: OperationKind, op: string) => (args: unknown[]) => {
    const name = algorithmName(args[0]);
    if (names.has(name)) record(kind, `subtle.${op} ${name}`);
  };
  wrap(subtle, 'sign', when(ASYMMETRIC_SIGNATURES, 'sign', 'sign'));
  wrap(subtle, 'verify', when(ASYMMETRIC_SIGNATURES, 'verify', 'verify'));
  wrap(subtle, 'generateKey', when(ASYMMETRIC_KEYS, 'keygen', 'generateKey'));
  wrap(subtle, 'deriveBits', when(KEY_AGREEMENT, 'ecdh', 'deriveBits'));
  wrap(subtle, 'deriveKey', when(KEY_AGREEMENT, 'ecdh', 'deriveKey'));
  for (const op of ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']) {
    wrap(subtle, op, (args) => {
      // wrapKey/unwrapKey name the wrapping algorithm fourth, encrypt/decrypt first.
      const algorithm = op === 'wrapKey' || op === 'unwrapKey' ? args[3] : args[0];
      if (algorithmName(algorithm) === 'RSA-OAEP') record('other', `subtle.${op} RSA-OAEP`);
    });
  }
}

/** Every operation from now on, as it happens (a process that only counts: the preload). */
export function countEveryOperation(onOperation: (operation: CountedOperation) => void): void {
  installOperationCounter();
  sink = onOperation;
}

/**
 * The public-key operations `work` caused, in order.
 *
 * @example
 *   installOperationCounter();
 *   const { operations } = await countOperations(() => agent.onboard());
 */
export async function countOperations<T>(
  work: () => Promise<T>,
): Promise<{ result: T; operations: CountedOperation[] }> {
  if (!installed) throw new Error('installOperationCounter() first');
  if (sink) throw new Error('countOperations does not nest');
  const operations: CountedOperation[] = [];
  sink = (operation) => operations.push(operation);
  try {
    return { result: await work(), operations };
  } finally {
    sink = undefined;
  }
}

export type OperationCounts = Record<OperationKind, number>;

/** How many of each kind. */
export function countByKind(operations: CountedOperation[]): OperationCounts {
  const counts: OperationCounts = { sign: 0, verify: 0, keygen: 0, ecdh: 0, other: 0 };
  for (const o of operations) counts[o.kind] += 1;
  return counts;
}
