/**
 * Milenage, the 3GPP example algorithm set for f1, f1*, f2, f3, f4, f5 and f5* (3GPP TS 35.206 §4),
 * on Node's own AES-128 (the kernel function E_K of TS 35.206 §4.1 is Rijndael with a 128-bit block).
 *
 * One {@link Milenage} instance holds one AES-128-ECB cipher keyed with K and reuses it for every block,
 * and computes the five output blocks OUT1..OUT5 of a vector in a single cipher call: a whole vector costs
 * two native AES calls. Build one instance per subscriber and keep it while that subscriber is served.
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { inspect } from 'node:util';

/** Length in bytes of K, OP, OPc and RAND (TS 35.206 §2.2: 128 bits). */
export const BLOCK_BYTES = 16;
/** Length in bytes of SQN and AK (48 bits). */
export const SQN_BYTES = 6;
/** Length in bytes of AMF (16 bits). */
export const AMF_BYTES = 2;

/** Everything one Milenage evaluation yields, in the spec's names (TS 35.206 §4.1). */
export interface MilenageOutput {
  /** f1: network authentication code MAC-A, 8 bytes. */
  macA: Buffer;
  /** f1*: resynchronisation authentication code MAC-S, 8 bytes. */
  macS: Buffer;
  /** f2: response RES (XRES at the network), 8 bytes. */
  res: Buffer;
  /** f3: cipher key CK, 16 bytes. */
  ck: Buffer;
  /** f4: integrity key IK, 16 bytes. */
  ik: Buffer;
  /** f5: anonymity key AK, 6 bytes. */
  ak: Buffer;
  /** f5*: resynchronisation anonymity key AK*, 6 bytes. */
  akStar: Buffer;
}

/**
 * Rotation amounts r1..r5 in bytes and the last byte of constants c1..c5 (TS 35.206 §4.1: r1 = 64,
 * r2 = 0, r3 = 32, r4 = 64, r5 = 96 bits; c1 = 0, c2 = 1, c3 = 2, c4 = 4, c5 = 8, all other bits zero).
 */
const R_BYTES = [8, 0, 4, 8, 12] as const;
const C_LAST = [0x00, 0x01, 0x02, 0x04, 0x08] as const;

function checkLength(name: string, value: Buffer, bytes: number): void {
  if (!Buffer.isBuffer(value) || value.length !== bytes) {
    throw new RangeError(
      `${name} must be ${bytes} bytes, got ${Buffer.isBuffer(value) ? value.length : typeof value}`,
    );
  }
}

function newCipher(k: Buffer): Cipher {
  checkLength('K', k, BLOCK_BYTES);
  const cipher = createCipheriv('aes-128-ecb', k, null);
  cipher.setAutoPadding(false);
  return cipher;
}

/** E_K over whole blocks; ECB keeps no state between calls, so the cipher is reused and never finalised. */
function encryptBlocks(cipher: Cipher, blocks: Buffer): Buffer {
  return cipher.update(blocks);
}

/**
 * OPc = OP ⊕ E_K(OP) (TS 35.206 §4.1, "derivation of OPc").
 *
 * @example
 *   const opc = computeOpc(Buffer.from('465b5ce8b199b49faa5f0a2ee238a6bc', 'hex'),
 *                          Buffer.from('cdc202d5123e20f62b6d676ac72cb318', 'hex'));
 *   opc.toString('hex'); // 'cd63cb71954a9f4e48a5994e37a02baf' (TS 35.208 test set 1)
 */
export function computeOpc(k: Buffer, op: Buffer): Buffer {
  checkLength('OP', op, BLOCK_BYTES);
  const out = encryptBlocks(newCipher(k), op);
  for (let i = 0; i < BLOCK_BYTES; i++) out[i]! ^= op[i]!;
  return out;
}

/**
 * Milenage keyed with one subscriber's K and OPc (TS 35.206 §4.1). Key material sits in private fields:
 * it does not show in `JSON.stringify`, `util.inspect` or `String(...)`.
 *
 * @example
 *   const m = new Milenage(k, opc);
 *   const { macA, res, ck, ik, ak } = m.compute(rand, sqn, amf);
 */
export class Milenage {
  readonly #cipher: Cipher;
  readonly #opc: Buffer;

  constructor(k: Buffer, opc: Buffer) {
    checkLength('OPc', opc, BLOCK_BYTES);
    this.#cipher = newCipher(k);
    this.#opc = Buffer.from(opc);
  }

  /**
   * Builds an instance from K and OP, deriving OPc first (TS 35.206 §4.1).
   *
   * @example
   *   const m = Milenage.fromOp(k, op);
   */
  static fromOp(k: Buffer, op: Buffer): Milenage {
    return new Milenage(k, computeOpc(k, op));
  }

  /** TEMP = E_K(RAND ⊕ OPc) (TS 35.206 §4.1). */
  #temp(rand: Buffer): Buffer {
    checkLength('RAND', rand, BLOCK_BYTES);
    const x = Buffer.allocUnsafe(BLOCK_BYTES);
    for (let i = 0; i < BLOCK_BYTES; i++) x[i] = rand[i]! ^ this.#opc[i]!;
    return encryptBlocks(this.#cipher, x);
  }

  /**
   * Writes the input block of OUTn into `dst` at `offset`: rot(value ⊕ OPc, r_n) ⊕ c_n, then ⊕ TEMP for
   * OUT1 only (TS 35.206 §4.1; for OUT2..OUT5 the value is TEMP itself, for OUT1 it is IN1).
   */
  #inputBlock(n: number, value: Buffer, temp: Buffer | null, dst: Buffer, offset: number): void {
    const r = R_BYTES[n - 1]!;
    for (let i = 0; i < BLOCK_BYTES; i++) {
      const j = (i + r) % BLOCK_BYTES;
      let b = value[j]! ^ this.#opc[j]!;
      if (temp) b ^= temp[i]!;
      dst[offset + i] = b;
    }
    dst[offset + BLOCK_BYTES - 1]! ^= C_LAST[n - 1]!;
  }

  /** OUTn = E_K(input) ⊕ OPc for each block of `outs`, in place. */
  #finish(outs: Buffer): Buffer {
    for (let i = 0; i < outs.length; i++) outs[i]! ^= this.#opc[i % BLOCK_BYTES]!;
    return outs;
  }

  /** OUT1 (TS 35.206 §4.1): IN1 = SQN ‖ AMF ‖ SQN ‖ AMF. */
  #out1(rand: Buffer, sqn: Buffer, amf: Buffer): Buffer {
    checkLength('SQN', sqn, SQN_BYTES);
    checkLength('AMF', amf, AMF_BYTES);
    const temp = this.#temp(rand);
    const in1 = Buffer.concat([sqn, amf, sqn, amf]);
    const block = Buffer.allocUnsafe(BLOCK_BYTES);
    this.#inputBlock(1, in1, temp, block, 0);
    return this.#finish(encryptBlocks(this.#cipher, block));
  }

  /** OUT2..OUT5 (TS 35.206 §4.1), in one cipher call: 64 bytes, OUT2 first. */
  #out2to5(temp: Buffer): Buffer {
    const blocks = Buffer.allocUnsafe(4 * BLOCK_BYTES);
    for (let n = 2; n <= 5; n++) this.#inputBlock(n, temp, null, blocks, (n - 2) * BLOCK_BYTES);
    return this.#finish(encryptBlocks(this.#cipher, blocks));
  }

  /**
   * f1: MAC-A = OUT1[0..63] (TS 35.206 §4.1).
   *
   * @example
   *   m.f1(rand, sqn, amf).toString('hex'); // 8 bytes
   */
  f1(rand: Buffer, sqn: Buffer, amf: Buffer): Buffer {
    return this.#out1(rand, sqn, amf).subarray(0, 8);
  }

  /**
   * f1*: MAC-S = OUT1[64..127] (TS 35.206 §4.1). For an AUTS, AMF is 0x0000 (TS 33.102 §6.3.3).
   *
   * @example
   *   m.f1star(rand, sqnMs, Buffer.alloc(2)); // MAC-S of an AUTS
   */
  f1star(rand: Buffer, sqn: Buffer, amf: Buffer): Buffer {
    return this.#out1(rand, sqn, amf).subarray(8, 16);
  }

  /**
   * f2, f3, f4 and f5 together: RES = OUT2[64..127], CK = OUT3, IK = OUT4, AK = OUT2[0..47] (TS 35.206 §4.1).
   *
   * @example
   *   const { res, ck, ik, ak } = m.f2345(rand);
   */
  f2345(rand: Buffer): { res: Buffer; ck: Buffer; ik: Buffer; ak: Buffer } {
    const out = this.#out2to5(this.#temp(rand));
    return {
      res: out.subarray(8, 16),
      ck: out.subarray(16, 32),
      ik: out.subarray(32, 48),
      ak: out.subarray(0, 6),
    };
  }

  /**
   * f2: RES (XRES) = OUT2[64..127] (TS 35.206 §4.1).
   *
   * @example
   *   m.f2(rand); // 8 bytes
   */
  f2(rand: Buffer): Buffer {
    return this.f2345(rand).res;
  }

  /**
   * f3: CK = OUT3 (TS 35.206 §4.1).
   *
   * @example
   *   m.f3(rand); // 16 bytes
   */
  f3(rand: Buffer): Buffer {
    return this.f2345(rand).ck;
  }

  /**
   * f4: IK = OUT4 (TS 35.206 §4.1).
   *
   * @example
   *   m.f4(rand); // 16 bytes
   */
  f4(rand: Buffer): Buffer {
    return this.f2345(rand).ik;
  }

  /**
   * f5: AK = OUT2[0..47] (TS 35.206 §4.1).
   *
   * @example
   *   m.f5(rand); // 6 bytes, conceals SQN in AUTN
   */
  f5(rand: Buffer): Buffer {
    return this.f2345(rand).ak;
  }

  /**
   * f5*: AK* = OUT5[0..47] (TS 35.206 §4.1); conceals SQN_MS in AUTS.
   *
   * @example
   *   m.f5star(rand); // 6 bytes
   */
  f5star(rand: Buffer): Buffer {
    return this.#out2to5(this.#temp(rand)).subarray(48, 54);
  }

  /**
   * All seven functions at once for one (RAND, SQN, AMF), in two AES calls (TS 35.206 §4.1).
   *
   * @example
   *   const out = new Milenage(k, opc).compute(rand, Buffer.from('ff9bb4d0b607', 'hex'), Buffer.from('b9b9', 'hex'));
   *   out.macA.toString('hex'); // '4a9ffac354dfafb3' (TS 35.208 test set 1)
   */
  compute(rand: Buffer, sqn: Buffer, amf: Buffer): MilenageOutput {
    checkLength('SQN', sqn, SQN_BYTES);
    checkLength('AMF', amf, AMF_BYTES);
    const temp = this.#temp(rand);
    const in1 = Buffer.concat([sqn, amf, sqn, amf]);
    const blocks = Buffer.allocUnsafe(5 * BLOCK_BYTES);
    this.#inputBlock(1, in1, temp, blocks, 0);
    for (let n = 2; n <= 5; n++) this.#inputBlock(n, temp, null, blocks, (n - 1) * BLOCK_BYTES);
    const out = this.#finish(encryptBlocks(this.#cipher, blocks));
    return {
      macA: out.subarray(0, 8),
      macS: out.subarray(8, 16),
      ak: out.subarray(16, 22),
      res: out.subarray(24, 32),
      ck: out.subarray(32, 48),
      ik: out.subarray(48, 64),
      akStar: out.subarray(64, 70),
    };
  }

  /** Never shows key material. */
  toString(): string {
    return 'Milenage { [keys redacted] }';
  }

  /** Never shows key material. */
  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
