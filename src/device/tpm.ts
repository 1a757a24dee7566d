/**
 * A TPM 2.0 as the device's trusted module uses it, driven through Debian's tpm2-tools (5.x) as child
 * processes over a TCTI (`swtpm:host=127.0.0.1,port=2321` for swtpm, `device:/dev/tpmrm0` on a real
 * device). What it does, and only this: keep a storage root key (SRK) at the TCG's persistent handle,
 * create the device key under it (ECC P-256, fixedTPM | fixedParent | sensitiveDataOrigin, sign and
 * decrypt), sign a SHA-256 digest with that key (ECDSA), compute an ECDH shared secret with it
 * (TPM2_ECDH_ZGen), and seal / unseal a small secret (a keyedhash data object). Every key leaves the
 * TPM only as a blob the TPM itself encrypted under the SRK: usable in this TPM, nowhere else.
 *
 * Without a resource manager (swtpm's socket has none) a loaded object stays in the TPM's few object
 * slots until flushed, and a flush of all transient objects would cut another caller's operation short.
 * So each operation loads what it needs, runs, and flushes objects and sessions in `finally`, and the operations on one TPM
 * (one TCTI) run one at a time in this process.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { p256KeyOfPoint } from '../crypto/xml-key-agreement.js';

/** TCG "TPM v2.0 Provisioning Guidance" §7.5.1: the storage root key's persistent handle. */
export const SRK_HANDLE = '0x81000001';
/** The SRK's template: ECC P-256 storage key (restricted decrypt, AES-128-CFB), name algorithm SHA-256. */
const SRK_ALGORITHM = 'ecc256:aes128cfb';
/**
 * The device key: sign (proofs, receipts, the CSR) and decrypt (ECDH for the package), the same key as
 * SK_dsim serves both in software; so its scheme is null and each command names its own. Created in
 * the TPM (sensitiveDataOrigin), never duplicable (fixedTPM, fixedParent).
 */
const DEVICE_KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|decrypt';
/** The sealed storage key: a keyedhash data object bound to this TPM. */
const SEALED_ATTRIBUTES = 'fixedtpm|fixedparent|userwithauth';
/** No TPM command here takes longer; a hung TCTI ends in SIMCRED_TPM_UNAVAILABLE. */
const TOOL_TIMEOUT_MS = 30_000;

/** An object the TPM made, as the TPM hands it out: TPM2B_PUBLIC and TPM2B_PRIVATE (encrypted under the SRK). */
export interface TpmObjectBlobs {
  publicBlob: Buffer;
  privateBlob: Buffer;
}

/** Operations in flight per TCTI (see the file comment): each waits for the one before. */
const queues = new Map<string, Promise<unknown>>();

/**
 * One TPM, reached over `tcti`.
 *
 * @example
 *   const tpm = new Tpm('swtpm:host=127.0.0.1,port=2321');
 *   await tpm.ensureStorageRootKey();
 *   const key = await tpm.createDeviceKey();
 *   const signature = await tpm.signDigest(key, createHash('sha256').update(message).digest());
 */
export class Tpm {
  constructor(readonly tcti: string) {}

  /** Creates the SRK and makes it persistent, unless the TPM holds one already (a factory step). */
  ensureStorageRootKey(): Promise<void> {
    return this.exclusive(async (dir) => {
      try {
        await this.tool(['tpm2_readpublic', '-c', SRK_HANDLE, '-o', join(dir, 'srk.pub')]);
        return;
      } catch (err) {
        if (!(err instanceof SimcredError) || err.code !== 'SIMCRED_TPM_REFUSED') throw err;
      }
      const context = join(dir, 'srk.ctx');
      await this.tool([
        'tpm2_createprimary',
        '-Q',
        '-C',
        'o',
        '-g',
        'sha256',
        '-G',
        SRK_ALGORITHM,
        '-c',
        context,
      ]);
      await this.tool(['tpm2_evictcontrol', '-Q', '-C', 'o', '-c', context, SRK_HANDLE]);
    });
  }

  /**
   * A new device key, made in the TPM under the SRK. Returns its blobs and its public key (SPKI DER,
   * read from the TPM2B_PUBLIC, so what is certified is exactly what the TPM will use).
   */
  createDeviceKey(): Promise<TpmObjectBlobs & { spkiDer: Buffer }> {
    return this.exclusive(async (dir) => {
      const blobs = await this.create(dir, ['-G', 'ecc256:null:null', '-a', DEVICE_KEY_ATTRIBUTES]);
      return { ...blobs, spkiDer: devicePublicKeyOfBlob(blobs.publicBlob).spkiDer };
    });
  }

  /** ECDSA over a SHA-256 digest with the device key, in the TPM; the signature as IEEE P1363 r‖s (64 bytes). */
  signDigest(key: TpmObjectBlobs, digest: Buffer): Promise<Buffer> {
    if (digest.length !== 32) throw new Error('a SHA-256 digest is 32 bytes');
    return this.exclusive(async (dir) => {
      const context = await this.load(dir, key, 'key');
      await writeFile(join(dir, 'digest'), digest);
      await this.tool([
        'tpm2_sign',
        '-c',
        context,
        '-g',
        'sha256',
        '-s',
        'ecdsa',
        '-d',
        '-f',
        'plain',
        '-o',
        join(dir, 'sig'),
        join(dir, 'digest'),
      ]);
      return ecdsaDerToP1363(await readFile(join(dir, 'sig')));
    });
  }

  /**
   * TPM2_ECDH_ZGen: Z = the x-coordinate of d·Q for the device key d and the peer's uncompressed
   * P-256 point Q (65 bytes), what the software path's diffieHellman returns. The point is checked to
   * be on the curve before the TPM sees it (the TPM checks too).
   */
  ecdhZ(key: TpmObjectBlobs, peerPoint: Uint8Array): Promise<Buffer> {
    p256KeyOfPoint(peerPoint);
    return this.exclusive(async (dir) => {
      const context = await this.load(dir, key, 'key');
      // TPM2B_ECC_POINT: size ‖ TPM2B x ‖ TPM2B y.
      const x = Buffer.from(peerPoint.subarray(1, 33));
      const y = Buffer.from(peerPoint.subarray(33, 65));
      await writeFile(join(dir, 'peer'), Buffer.concat([u16(68), u16(32), x, u16(32), y]));
      await this.tool(['tpm2_ecdhzgen', '-c', context, '-u', join(dir, 'peer'), '-o', join(dir, 'z')]);
      const out = await readFile(join(dir, 'z'));
      try {
        const xz = readTpm2b(out, 2);
        if (xz.value.length !== 32) throw new Error('Z is not 32 bytes');
        return Buffer.from(xz.value);
      } finally {
        out.fill(0);
      }
    });
  }

  /** Seals `secret` (≤ 128 bytes) to this TPM: a data object under the SRK, given on stdin, never on disk. */
  seal(secret: Buffer): Promise<TpmObjectBlobs> {
    return this.exclusive((dir) => this.create(dir, ['-i', '-', '-a', SEALED_ATTRIBUTES], secret));
  }

  /** The secret a {@link seal} holds, read from the TPM's stdout; SIMCRED_TPM_REFUSED in another TPM. */
  unseal(sealed: TpmObjectBlobs): Promise<Buffer> {
    return this.exclusive(async (dir) => {
      const context = await this.load(dir, sealed, 'sealed');
      return this.tool(['tpm2_unseal', '-c', context]);
    });
  }

  /** `tpm2_create` under the SRK, reading back the two blobs. */
  private async create(dir: string, args: string[], input?: Buffer): Promise<TpmObjectBlobs> {
    const pub = join(dir, 'new.pub');
    const priv = join(dir, 'new.priv');
    await this.tool(['tpm2_create', '-Q', '-C', SRK_HANDLE, ...args, '-u', pub, '-r', priv], input);
    return { publicBlob: await readFile(pub), privateBlob: await readFile(priv) };
  }

  /** Loads an object's blobs under the SRK; returns its context file (valid until the flush). */
  private async load(dir: string, blobs: TpmObjectBlobs, name: string): Promise<string> {
    await writeFile(join(dir, `${name}.pub`), blobs.publicBlob);
    await writeFile(join(dir, `${name}.priv`), blobs.privateBlob);
    const context = join(dir, `${name}.ctx`);
    await this.tool([
      'tpm2_load',
      '-Q',
      '-C',
      SRK_HANDLE,
      '-u',
      join(dir, `${name}.pub`),
      '-r',
      join(dir, `${name}.priv`),
      '-c',
      context,
    ]);
    return context;
  }

  /**
   * Runs `work` alone on this TPM, in a private scratch folder (blobs and context files, all of them
   * TPM-encrypted), then flushes every transient object and removes the folder.
   */
  private exclusive<T>(work: (dir: string) => Promise<T>): Promise<T> {
    const previous = queues.get(this.tcti) ?? Promise.resolve();
    const run = previous.then(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'simcred-tpm-'));
      try {
        return await work(dir);
      } finally {
        // The tools leave their objects and their sessions loaded (no resource manager): all go.
        await this.tool(['tpm2_flushcontext', '-t', '-l', '-s']).catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
    });
    const settled = run.catch(() => undefined);
    queues.set(this.tcti, settled);
    void settled.then(() => {
      if (queues.get(this.tcti) === settled) queues.delete(this.tcti);
    });
    return run;
  }

  /** One tpm2-tools command; its stdout. Errors carry the tool's own message (no secret is ever an argument). */
  private tool(argv: string[], input?: Buffer): Promise<Buffer> {
    const [command, ...args] = argv as [string, ...string[]];
    return new Promise((resolvePromise, reject) => {
      const child = spawn(command, args, {
        env: { ...process.env, TPM2TOOLS_TCTI: this.tcti },
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: TOOL_TIMEOUT_MS,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (cause) =>
        reject(
          new SimcredError('SIMCRED_TPM_UNAVAILABLE', `${command} cannot run (is tpm2-tools installed?)`, {
            cause,
          }),
        ),
      );
      child.on('close', (code, signal) => {
        if (code === 0) return resolvePromise(Buffer.concat(out));
        reject(toolError(command, Buffer.concat(err).toString('utf8'), signal));
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? Buffer.alloc(0));
    });
  }
}

/** A tool's failure as a stable code: the TPM unreachable, or the TPM saying no (with its reason). */
function toolError(command: string, stderr: string, signal: NodeJS.Signals | null): SimcredError {
  if (signal || /Could not load tcti|Cannot connect|Failed to connect|tcti.*(fail|error)/i.test(stderr)) {
    return new SimcredError('SIMCRED_TPM_UNAVAILABLE', `${command}: the TPM cannot be reached`);
  }
  // The tools' last line names the TPM's response code, e.g. "Eys_Load(0x1DF) - tpm:parameter(1):integrity check failed".
  const reason =
    stderr
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.startsWith('ERROR:') && !line.startsWith('ERROR: Unable to run'))
      .map((line) => line.replace(/^ERROR:\s*(esys:\S+\s*)?/, ''))
      .at(-1) ?? 'failed';
  return new SimcredError('SIMCRED_TPM_REFUSED', `${command}: ${reason.slice(0, 200)}`);
}

/**
 * The device key's public part from its TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2.5): an ECC NIST P-256 key
 * with the attributes the factory asked for. Returns its SPKI DER and attributes; throws
 * SIMCRED_PKI_INCONSISTENT for anything else, so a factory never certifies a key the TPM could export.
 *
 * @example
 *   const { spkiDer } = devicePublicKeyOfBlob(image.tpm.keyPublic);
 */
export function devicePublicKeyOfBlob(blob: Buffer): { spkiDer: Buffer; attributes: number } {
  const bad = (why: string): never => {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `the TPM key's public blob ${why}`);
  };
  try {
    const outer = readTpm2b(blob, 0);
    if (outer.end !== blob.length) bad('has trailing bytes');
    const p = outer.value;
    let at = 0;
    const type = p.readUInt16BE(at);
    const nameAlg = p.readUInt16BE(at + 2);
    const attributes = p.readUInt32BE(at + 4);
    at += 8;
    at = readTpm2b(p, at).end; // authPolicy
    const symmetric = p.readUInt16BE(at);
    at += 2;
    if (symmetric !== TPM_ALG_NULL) bad('is a storage key');
    const scheme = p.readUInt16BE(at);
    at += 2;
    if (scheme !== TPM_ALG_NULL) at += 2; // the scheme's hash
    const curve = p.readUInt16BE(at);
    const kdf = p.readUInt16BE(at + 2);
    at += 4;
    if (kdf !== TPM_ALG_NULL) at += 2;
    const x = readTpm2b(p, at);
    const y = readTpm2b(p, x.end);
    if (type !== TPM_ALG_ECC || curve !== TPM_ECC_NIST_P256 || nameAlg !== TPM_ALG_SHA256) {
      bad('is not an ECC P-256 key');
    }
    if ((attributes & REQUIRED_ATTRIBUTES) !== REQUIRED_ATTRIBUTES) {
      bad('lacks fixedTPM, fixedParent, sensitiveDataOrigin, sign or decrypt');
    }
    if (x.value.length !== 32 || y.value.length !== 32 || y.end !== p.length) bad('is malformed');
    const key = p256KeyOfPoint(Buffer.concat([Buffer.of(4), x.value, y.value]));
    return { spkiDer: key.export({ format: 'der', type: 'spki' }), attributes };
  } catch (err) {
    if (err instanceof SimcredError) throw err;
    return bad('is malformed');
  }
}

const TPM_ALG_ECC = 0x0023;
const TPM_ALG_NULL = 0x0010;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ECC_NIST_P256 = 0x0003;
/** TPMA_OBJECT bits (Part 2 §8.3): fixedTPM, fixedParent, sensitiveDataOrigin, decrypt, sign. */
const REQUIRED_ATTRIBUTES = 0x2 | 0x10 | 0x20 | 0x20000 | 0x40000;

function readTpm2b(bytes: Buffer, at: number): { value: Buffer; end: number } {
  const size = bytes.readUInt16BE(at);
  const end = at + 2 + size;
  if (end > bytes.length) throw new Error('truncated TPM2B');
  return { value: bytes.subarray(at + 2, end), end };
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

/** ECDSA-Sig-Value (SEQUENCE of two INTEGERs, what `tpm2_sign -f plain` writes) → r‖s, 32 bytes each. */
export function ecdsaDerToP1363(der: Buffer): Buffer {
  const fail = (): never => {
    throw new SimcredError('SIMCRED_TPM_REFUSED', 'the TPM signature is not an ECDSA-Sig-Value');
  };
  if (der[0] !== 0x30 || der[1] !== der.length - 2) fail();
  const parts: Buffer[] = [];
  let at = 2;
  for (let i = 0; i < 2; i++) {
    if (der[at] !== 0x02) fail();
    const length = der[at + 1]!;
    let value = der.subarray(at + 2, at + 2 + length);
    at += 2 + length;
    while (value.length > 32 && value[0] === 0) value = value.subarray(1);
    if (value.length > 32) fail();
    parts.push(Buffer.concat([Buffer.alloc(32 - value.length), value]));
  }
  if (at !== der.length) fail();
  return Buffer.concat(parts);
}

/** SHA-256 of a message, the digest {@link Tpm.signDigest} signs. */
export function sha256(message: Uint8Array): Buffer {
  return createHash('sha256').update(message).digest();
}
