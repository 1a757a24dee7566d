/**
 * Network side of AKA (HE/AuC, TS 33.102 §6.3.2): authentication vectors, the RES check and AUTS
 * verification for resynchronisation (§6.3.5).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { AMF_BYTES, BLOCK_BYTES, Milenage } from './milenage.js';
import { openAuts, sqnToBuffer } from './sqn.js';

/** A subscriber's keys, or a {@link Milenage} already keyed with them (faster when reused). */
export type AkaKeys = { k: Buffer; opc: Buffer } | { milenage: Milenage };

/** One authentication vector (quintet) with the intermediate values a test tool shows (TS 33.102 §6.3.2). */
export interface AuthVector {
  rand: Buffer;
  xres: Buffer;
  ck: Buffer;
  ik: Buffer;
  ak: Buffer;
  /** AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A, 16 bytes. */
  autn: Buffer;
  macA: Buffer;
  /** The SQN this vector carries. */
  sqn: number;
  amf: Buffer;
}

function milenageOf(keys: AkaKeys): Milenage {
  return 'milenage' in keys ? keys.milenage : new Milenage(keys.k, keys.opc);
}

/**
 * Generates an authentication vector (TS 33.102 §6.3.2): XRES = f2, CK = f3, IK = f4, AK = f5,
 * MAC-A = f1(SQN, RAND, AMF), AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A. RAND is fresh random unless given.
 *
 * @example
 *   const v = generateVector({ k, opc, sqn: gen.next(), amf: Buffer.from('8000', 'hex') });
 *   // send v.rand and v.autn to the device, keep v.xres to compare with its RES
 */
export function generateVector(input: AkaKeys & { sqn: number; amf: Buffer; rand?: Buffer }): AuthVector {
  const rand = input.rand ?? randomBytes(BLOCK_BYTES);
  if (input.amf.length !== AMF_BYTES) throw new RangeError(`AMF must be ${AMF_BYTES} bytes`);
  const sqn = sqnToBuffer(input.sqn);
  const out = milenageOf(input).compute(rand, sqn, input.amf);
  const autn = Buffer.allocUnsafe(16);
  for (let i = 0; i < 6; i++) autn[i] = sqn[i]! ^ out.ak[i]!;
  input.amf.copy(autn, 6);
  out.macA.copy(autn, 8);
  return {
    rand: Buffer.from(rand),
    xres: out.res,
    ck: out.ck,
    ik: out.ik,
    ak: out.ak,
    autn,
    macA: out.macA,
    sqn: input.sqn,
    amf: Buffer.from(input.amf),
  };
}

/**
 * Compares the device's RES with XRES in constant time (TS 33.102 §6.3.3, last step at the serving
 * network). Throws SIMCRED_AKA_RES_MISMATCH when they differ.
 *
 * @example
 *   verifyRes(vector.xres, resFromDevice); // throws unless equal
 */
export function verifyRes(xres: Buffer, res: Buffer): void {
  if (res.length !== xres.length || !timingSafeEqual(res, xres)) {
    throw new SimcredError('SIMCRED_AKA_RES_MISMATCH', 'RES does not match XRES');
  }
}

/**
 * Verifies an AUTS against the RAND it answers and returns SQN_MS (TS 33.102 §6.3.5); the caller then
 * resynchronises its counter, e.g. `SqnGenerator.resync(sqnMs)`. Throws SIMCRED_AKA_AUTS_INVALID.
 *
 * @example
 *   const sqnMs = verifyAuts({ k, opc, rand: vector.rand, auts });
 *   gen.resync(sqnMs);
 */
export function verifyAuts(input: AkaKeys & { rand: Buffer; auts: Buffer }): number {
  return openAuts(milenageOf(input), input.rand, input.auts);
}
